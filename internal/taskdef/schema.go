package taskdef

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Our own, deliberately small schemas: the shape Julep's create accepts, not
// its generated 300-definition model (see FACTS.md; we do not copy it).
//
//go:embed schema/*.json
var schemaFS embed.FS

var printer = message.NewPrinter(language.English)

// noLoader refuses every URL: a task's input_schema comes from a request
// body, and resolving its $ref must never read files or reach the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external reference %s is not allowed", url)
}

var schemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	out := map[string]*jsonschema.Schema{}
	for _, name := range []string{"task", "agent"} {
		b, err := schemaFS.ReadFile("schema/" + name + ".json")
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		c := jsonschema.NewCompiler()
		c.UseLoader(noLoader{})
		url := "https://astra.invalid/schema/" + name + ".json"
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		s, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		out[name] = s
	}
	return out, nil
})

// schemaIssues validates v against one of the embedded schemas and turns
// each leaf failure into a one-line issue at the failing value's path.
func schemaIssues(name string, v any) []Issue {
	all, err := schemas()
	if err != nil {
		// The schemas are embedded and tested; reaching here is a build bug.
		return []Issue{{Message: "internal: " + err.Error(), Severity: SeverityError, Type: TypeSchema}}
	}
	err = all[name].Validate(v)
	var ve *jsonschema.ValidationError
	if err == nil || !errors.As(err, &ve) {
		return nil
	}
	var out []Issue
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		path := instancePath(v, e.InstanceLocation)
		msg := kindMessage(e.ErrorKind)
		if p, m, ok := splitRequired(e.ErrorKind, path); ok {
			path, msg = p, m
		}
		if seen[path+"\x00"+msg] {
			return
		}
		seen[path+"\x00"+msg] = true
		out = append(out, Issue{Path: path, Location: path, Message: msg, Severity: SeverityError, Type: TypeSchema})
	}
	walk(ve)
	return out
}

// instancePath turns a JSON pointer into our YAML path (main[2].prompt),
// using the value to tell list indexes from keys that look like numbers.
func instancePath(v any, tokens []string) string {
	path := ""
	cur := v
	for _, t := range tokens {
		switch c := cur.(type) {
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(c) {
				return joinKey(path, t)
			}
			path, cur = joinIndex(path, i), c[i]
		case map[string]any:
			path, cur = joinKey(path, t), c[t]
		default:
			return joinKey(path, t)
		}
	}
	return path
}

// splitRequired reports a missing property at the property's own path:
// "main[0].foreach.do: missing" reads better than a list at the parent.
func splitRequired(k jsonschema.ErrorKind, path string) (string, string, bool) {
	r, ok := k.(*kind.Required)
	if !ok || len(r.Missing) != 1 {
		return "", "", false
	}
	return joinKey(path, r.Missing[0]), "required but missing", true
}

func kindMessage(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		want := slices.Clone(k.Want)
		for i, w := range want {
			want[i] = typeName(w)
		}
		return fmt.Sprintf("want %s, got %s", strings.Join(want, " or "), typeName(k.Got))
	case *kind.Enum:
		var vs []string
		for _, v := range k.Want {
			b, _ := json.Marshal(v)
			vs = append(vs, string(b))
		}
		got, _ := json.Marshal(k.Got)
		return fmt.Sprintf("%s is not one of %s", got, strings.Join(vs, ", "))
	case *kind.Required:
		return "missing " + quoteAll(k.Missing)
	case *kind.AdditionalProperties:
		return "unknown key " + quoteAll(k.Properties)
	}
	return k.LocalizedString(printer)
}

func typeName(t string) string {
	switch t {
	case "object":
		return "a mapping"
	case "array":
		return "a list"
	case "null":
		return "null"
	case "integer":
		return "an integer"
	}
	return "a " + t
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// checkJSONSchema reports whether s is a JSON Schema we can compile (the
// task's input_schema: executions are validated against it).
func checkJSONSchema(s map[string]any) error {
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	const url = "https://astra.invalid/input_schema.json"
	if err := c.AddResource(url, s); err != nil {
		return err
	}
	_, err := c.Compile(url)
	return err
}
