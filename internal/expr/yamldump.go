package expr

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pyYAMLDump writes v as PyYAML's yaml.dump(v, Dumper=CSafeDumper) does,
// which is what Julep's yaml.dump and dump_yaml call: block style, keys
// sorted, sequences inside a mapping not indented, strings plain when they
// cannot be read back as anything else and single-quoted otherwise,
// non-ASCII and control characters double-quoted with escapes, plain and
// single-quoted scalars folded at spaces past column 80, and a plain scalar
// at the top level followed by the "..." document end.
func pyYAMLDump(v any) (string, error) {
	d := &yamlDumper{}
	if err := d.node(v, 0, ctxRoot); err != nil {
		return "", err
	}
	d.b.WriteByte('\n')
	if d.openEnded {
		d.b.WriteString("...\n")
	}
	return d.b.String(), nil
}

const (
	ctxRoot = iota
	ctxMapValue
	ctxSeqItem
)

type yamlDumper struct {
	b         strings.Builder
	col       int
	openEnded bool
}

func (d *yamlDumper) write(s string) {
	d.b.WriteString(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		d.col = utf8.RuneCountInString(s[i+1:])
	} else {
		d.col += utf8.RuneCountInString(s)
	}
}

func (d *yamlDumper) newline(indent int) {
	d.write("\n" + strings.Repeat(" ", indent))
}

// node writes v at the current position; indent is the column of the
// enclosing block's content.
func (d *yamlDumper) node(v any, indent int, ctx int) error {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			d.write("{}")
			return nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 || ctx == ctxMapValue {
				d.newline(indent)
			}
			d.scalar(k, indent, false)
			d.write(":")
			val := x[k]
			switch c := val.(type) {
			case map[string]any:
				if len(c) > 0 {
					if err := d.node(c, indent+2, ctxMapValue); err != nil {
						return err
					}
					continue
				}
			case []any:
				if len(c) > 0 {
					// PyYAML's indentless sequence under a mapping key.
					if err := d.node(c, indent, ctxMapValue); err != nil {
						return err
					}
					continue
				}
			}
			d.write(" ")
			if err := d.node(val, indent+2, ctxMapValue); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if len(x) == 0 {
			d.write("[]")
			return nil
		}
		for i, e := range x {
			if i > 0 || ctx == ctxMapValue {
				d.newline(indent)
			}
			d.write("- ")
			if err := d.node(e, indent+2, ctxSeqItem); err != nil {
				return err
			}
		}
		return nil
	case nil:
		d.write("null")
		d.openEnded = ctx == ctxRoot
	case bool:
		d.write(strconv.FormatBool(x))
		d.openEnded = ctx == ctxRoot
	case int64:
		d.write(strconv.FormatInt(x, 10))
		d.openEnded = ctx == ctxRoot
	case json.Number:
		d.openEnded = ctx == ctxRoot
		if strings.ContainsAny(string(x), ".eE") {
			f, _ := x.Float64()
			d.write(yamlFloat(f))
		} else {
			d.write(string(x))
		}
	case float64:
		d.write(yamlFloat(x))
		d.openEnded = ctx == ctxRoot
	case string:
		if ctx == ctxRoot {
			indent = 2
		}
		d.scalar(x, indent, ctx == ctxRoot)
	default:
		return fmt.Errorf("yaml.dump: cannot represent %T", v)
	}
	return nil
}

func yamlFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return ".nan"
	case math.IsInf(f, 1):
		return ".inf"
	case math.IsInf(f, -1):
		return "-.inf"
	}
	s := strings.ToLower(pyFloatRepr(f))
	if !strings.Contains(s, ".") && strings.Contains(s, "e") {
		s = strings.Replace(s, "e", ".0e", 1)
	}
	return s
}

// YAML 1.1 implicit types, as PyYAML's resolver has them: a string that
// matches one is quoted so that it reads back as a string.
var yamlImplicit = regexp.MustCompile(`^(?:` +
	`yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF` +
	`|~|null|Null|NULL` +
	`|[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)` +
	`|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+` +
	`|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?` +
	`|=|<<)$`)

func (d *yamlDumper) scalar(s string, indent int, root bool) {
	if s == "" {
		d.write("''")
		return
	}
	special, multiline, plainOK := false, false, true
	for i, r := range s {
		switch {
		case r == '\n':
			multiline = true
		case r >= 0x80 || r < 0x20 || r == 0x7f:
			special = true
		}
		if i == 0 && strings.ContainsRune("#,[]{}&*!|>'\"%@`", r) {
			plainOK = false
		}
		if i == 0 && strings.ContainsRune("?:-", r) && (len(s) == 1 || s[1] == ' ') {
			plainOK = false
		}
	}
	if strings.Contains(s, ": ") || strings.Contains(s, " #") || strings.HasSuffix(s, ":") ||
		s[0] == ' ' || s[len(s)-1] == ' ' || yamlImplicit.MatchString(s) {
		plainOK = false
	}
	switch {
	case special:
		d.doubleQuoted(s)
	case plainOK && !multiline:
		d.folded(s, indent)
		if root {
			d.openEnded = true
		}
	default:
		d.write("'")
		d.foldedQuoted(strings.ReplaceAll(s, "'", "''"), indent)
		d.write("'")
	}
}

// folded writes a plain scalar, turning a single space into a line break
// once the line is past column 80 (PyYAML's best_width).
func (d *yamlDumper) folded(s string, indent int) {
	words := strings.Split(s, " ")
	for i, w := range words {
		if i > 0 {
			if w != "" && words[i-1] != "" && d.col > 80 {
				d.newline(indent)
			} else {
				d.write(" ")
			}
		}
		d.write(w)
	}
}

func (d *yamlDumper) foldedQuoted(s string, indent int) {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if i > 0 {
			d.write("\n")
			if l != "" || i == len(lines)-1 {
				d.newline(indent)
			}
		}
		d.folded(l, indent)
	}
}

func (d *yamlDumper) doubleQuoted(s string) {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case 0:
			b.WriteString(`\0`)
		default:
			switch {
			case r >= 0x20 && r < 0x7f:
				b.WriteRune(r)
			case r <= 0xff:
				fmt.Fprintf(&b, `\x%02X`, r)
			case r <= 0xffff:
				fmt.Fprintf(&b, `\u%04X`, r)
			default:
				fmt.Fprintf(&b, `\U%08X`, r)
			}
		}
	}
	b.WriteByte('"')
	d.write(b.String())
}
