package expr

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.starlark.net/starlark"
)

// Python's urllib.parse, csv, time.struct_time and datetime.date as Julep v1
// exposes them (evaluator.py's stdlib_urllib, stdlib_csv, stdlib_time,
// stdlib_datetime).

// namedTuple is a Python named tuple (ParseResult, struct_time): indexable
// and iterable like a tuple, with its fields and extra properties as
// attributes. It becomes a JSON list.
type namedTuple struct {
	typ    string
	fields []string
	vals   starlark.Tuple
	extra  starlark.StringDict
}

var (
	_ starlark.Indexable = (*namedTuple)(nil)
	_ starlark.HasAttrs  = (*namedTuple)(nil)
	_ starlark.Iterable  = (*namedTuple)(nil)
)

func (n *namedTuple) String() string {
	parts := make([]string, len(n.fields))
	for i, f := range n.fields {
		parts[i] = f + "=" + reprOf(n.vals[i])
	}
	return n.typ + "(" + strings.Join(parts, ", ") + ")"
}
func (n *namedTuple) Type() string               { return n.typ }
func (n *namedTuple) Freeze()                    { n.vals.Freeze() }
func (n *namedTuple) Truth() starlark.Bool       { return len(n.vals) > 0 }
func (n *namedTuple) Hash() (uint32, error)      { return n.vals.Hash() }
func (n *namedTuple) Len() int                   { return len(n.vals) }
func (n *namedTuple) Index(i int) starlark.Value { return n.vals[i] }
func (n *namedTuple) Iterate() starlark.Iterator { return n.vals.Iterate() }
func (n *namedTuple) AttrNames() []string {
	return append(append([]string(nil), n.fields...), n.extra.Keys()...)
}
func (n *namedTuple) Attr(name string) (starlark.Value, error) {
	for i, f := range n.fields {
		if f == name {
			return n.vals[i], nil
		}
	}
	if v, ok := n.extra[name]; ok {
		return v, nil
	}
	return nil, nil
}

func noneOr(s string, ok bool) starlark.Value {
	if !ok {
		return starlark.None
	}
	return starlark.String(s)
}

// urlSplit is urllib.parse.urlsplit / urlparse (withParams splits ";params"
// off the last path segment, as urlparse does).
func urlSplit(raw string, withParams bool) *namedTuple {
	s := raw
	scheme := ""
	if i := strings.IndexByte(s, ':'); i > 0 {
		ok := true
		for j, c := range s[:i] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
				ok = false
				break
			}
		}
		if ok {
			scheme, s = strings.ToLower(s[:i]), s[i+1:]
		}
	}
	netloc := ""
	if strings.HasPrefix(s, "//") {
		s = s[2:]
		end := strings.IndexAny(s, "/?#")
		if end < 0 {
			end = len(s)
		}
		netloc, s = s[:end], s[end:]
	}
	fragment := ""
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s, fragment = s[:i], s[i+1:]
	}
	query := ""
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s, query = s[:i], s[i+1:]
	}
	path, params := s, ""
	if withParams {
		last := strings.LastIndexByte(path, '/')
		if i := strings.IndexByte(path[last+1:], ';'); i >= 0 {
			path, params = path[:last+1+i], path[last+1+i+1:]
		}
	}
	// Properties of the netloc.
	userinfo, hostport := "", netloc
	hasUser := false
	if i := strings.LastIndexByte(netloc, '@'); i >= 0 {
		userinfo, hostport, hasUser = netloc[:i], netloc[i+1:], true
	}
	username, password := userinfo, ""
	hasPass := false
	if i := strings.IndexByte(userinfo, ':'); i >= 0 {
		username, password, hasPass = userinfo[:i], userinfo[i+1:], true
	}
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		if i := strings.IndexByte(hostport, ']'); i >= 0 {
			host = hostport[1:i]
			port = strings.TrimPrefix(hostport[i+1:], ":")
		}
	} else if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i+1:]
	}
	var portV starlark.Value = starlark.None
	if port != "" {
		if p, err := strconv.Atoi(port); err == nil && p >= 0 && p <= 65535 {
			portV = starlark.MakeInt(p)
		}
	}
	extra := starlark.StringDict{
		"hostname": noneOr(strings.ToLower(host), host != ""),
		"port":     portV,
		"username": noneOr(username, hasUser),
		"password": noneOr(password, hasPass),
	}
	if withParams {
		return &namedTuple{typ: "ParseResult", fields: []string{"scheme", "netloc", "path", "params", "query", "fragment"},
			vals: starlark.Tuple{starlark.String(scheme), starlark.String(netloc), starlark.String(path), starlark.String(params), starlark.String(query), starlark.String(fragment)}, extra: extra}
	}
	return &namedTuple{typ: "SplitResult", fields: []string{"scheme", "netloc", "path", "query", "fragment"},
		vals: starlark.Tuple{starlark.String(scheme), starlark.String(netloc), starlark.String(path), starlark.String(query), starlark.String(fragment)}, extra: extra}
}

// parseQSL is urllib.parse.parse_qsl: pairs split on "&", "+" as space,
// percent-decoding; blank values dropped unless keep_blank_values.
func parseQSL(qs string, keepBlank bool) [][2]string {
	var out [][2]string
	for _, part := range strings.Split(qs, "&") {
		if part == "" {
			continue
		}
		k, v, hasEq := strings.Cut(part, "=")
		if !hasEq && !keepBlank {
			continue
		}
		if v == "" && !keepBlank {
			continue
		}
		out = append(out, [2]string{pyUnquotePlus(k), pyUnquotePlus(v)})
	}
	return out
}

func pyUnquotePlus(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return strings.ReplaceAll(s, "+", " ")
	}
	return u
}

func urlParseMembers(existing starlark.StringDict) starlark.StringDict {
	oneURL := func(name string, params bool) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var s string
			var scheme string
			var frag bool = true
			if err := starlark.UnpackArgs(b.Name(), args, kw, "url", &s, "scheme?", &scheme, "allow_fragments?", &frag); err != nil {
				return nil, err
			}
			r := urlSplit(s, params)
			if r.vals[0] == starlark.String("") && scheme != "" {
				r.vals[0] = starlark.String(scheme)
			}
			return r, nil
		})
	}
	qsArgs := func(b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (string, bool, error) {
		var s string
		var keep, strict bool
		if err := starlark.UnpackArgs(b.Name(), args, kw, "qs", &s, "keep_blank_values?", &keep, "strict_parsing?", &strict); err != nil {
			return "", false, err
		}
		return s, keep, nil
	}
	m := starlark.StringDict{}
	for k, v := range existing {
		m[k] = v
	}
	m["urlparse"] = oneURL("urlparse", true)
	m["urlsplit"] = oneURL("urlsplit", false)
	m["parse_qsl"] = starlark.NewBuiltin("parse_qsl", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		s, keep, err := qsArgs(b, args, kw)
		if err != nil {
			return nil, err
		}
		var out []starlark.Value
		for _, p := range parseQSL(s, keep) {
			out = append(out, starlark.Tuple{starlark.String(p[0]), starlark.String(p[1])})
		}
		return starlark.NewList(out), nil
	})
	m["parse_qs"] = starlark.NewBuiltin("parse_qs", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		s, keep, err := qsArgs(b, args, kw)
		if err != nil {
			return nil, err
		}
		d := starlark.NewDict(0)
		for _, p := range parseQSL(s, keep) {
			cur, found, _ := d.Get(starlark.String(p[0]))
			if !found {
				cur = starlark.NewList(nil)
				_ = d.SetKey(starlark.String(p[0]), cur)
			}
			_ = cur.(*starlark.List).Append(starlark.String(p[1]))
		}
		return d, nil
	})
	// urlencode takes a mapping or a sequence of pairs; quote_via is quote_plus.
	enc := existing["urlencode"].(*starlark.Builtin)
	m["urlencode"] = starlark.NewBuiltin("urlencode", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		if len(args) == 1 {
			if _, ok := args[0].(*starlark.Dict); !ok {
				if it := starlark.Iterate(args[0]); it != nil {
					d := starlark.NewDict(0)
					var pairs []string
					var e starlark.Value
					for it.Next(&e) {
						pair, ok := e.(starlark.Indexable)
						if !ok || pair.Len() != 2 {
							it.Done()
							return nil, fmt.Errorf("not a valid non-string sequence or mapping object")
						}
						k, err := pyStrE(pair.Index(0))
						if err != nil {
							it.Done()
							return nil, err
						}
						v, err := pyStrE(pair.Index(1))
						if err != nil {
							it.Done()
							return nil, err
						}
						if len(pairs) > maxValueBytes/8 {
							it.Done()
							return nil, textTooLarge("string")
						}
						pairs = append(pairs, url.QueryEscape(k)+"="+url.QueryEscape(v))
					}
					it.Done()
					_ = d
					return starlark.String(strings.Join(pairs, "&")), nil
				}
			}
		}
		return enc.CallInternal(t, args, kw)
	})
	return m
}

// csvModule is Julep's stdlib_csv: reader and DictReader over a string
// (Julep wraps the data in io.StringIO).
func csvModule() starlark.Value {
	opts := func(name string, args starlark.Tuple, kw []starlark.Tuple, extra ...any) (string, *csv.Reader, error) {
		var data string
		delim := ","
		var dialect string = "excel"
		var skipInitial, strict bool
		var quotechar starlark.Value = starlark.String(`"`)
		var escapechar, lineterm, quoting, doublequote starlark.Value
		pairs := []any{"data", &data}
		pairs = append(pairs, extra...)
		pairs = append(pairs, "dialect?", &dialect, "delimiter?", &delim, "quotechar?", &quotechar, "escapechar?", &escapechar,
			"doublequote?", &doublequote, "skipinitialspace?", &skipInitial, "lineterminator?", &lineterm, "quoting?", &quoting, "strict?", &strict)
		if err := starlark.UnpackArgs(name, args, kw, pairs...); err != nil {
			return "", nil, err
		}
		if dialect == "excel-tab" {
			delim = "\t"
		}
		r := csv.NewReader(strings.NewReader(data))
		if len([]rune(delim)) != 1 {
			return "", nil, fmt.Errorf(`"delimiter" must be a 1-character string`)
		}
		r.Comma = []rune(delim)[0]
		r.FieldsPerRecord = -1
		r.LazyQuotes = !strict
		r.TrimLeadingSpace = skipInitial
		return data, r, nil
	}
	rows := func(r *csv.Reader) ([][]string, error) {
		var out [][]string
		for {
			rec, err := r.Read()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return nil, fmt.Errorf("csv.Error: %v", err)
			}
			out = append(out, rec)
		}
	}
	strList := func(xs []string) *starlark.List {
		vs := make([]starlark.Value, len(xs))
		for i, x := range xs {
			vs[i] = starlark.String(x)
		}
		return starlark.NewList(vs)
	}
	reader := starlark.NewBuiltin("reader", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		data, r, err := opts(b.Name(), args, kw)
		if err != nil {
			return nil, err
		}
		if err := budgetOf(t).reserve(parsedBytes*int64(len(data)), "list"); err != nil {
			return nil, err
		}
		recs, err := rows(r)
		if err != nil {
			return nil, err
		}
		out := make([]starlark.Value, len(recs))
		for i, rec := range recs {
			out[i] = strList(rec)
		}
		return starlark.NewList(out), nil
	})
	dictReader := starlark.NewBuiltin("DictReader", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var fieldnames, restkey, restval starlark.Value = starlark.None, starlark.None, starlark.None
		data, r, err := opts(b.Name(), args, kw, "fieldnames?", &fieldnames, "restkey?", &restkey, "restval?", &restval)
		if err != nil {
			return nil, err
		}
		if err := budgetOf(t).reserve(parsedBytes*int64(len(data)), "list"); err != nil {
			return nil, err
		}
		recs, err := rows(r)
		if err != nil {
			return nil, err
		}
		var names []string
		if fieldnames != starlark.None {
			it := starlark.Iterate(fieldnames)
			if it == nil {
				return nil, fmt.Errorf("DictReader: fieldnames must be a sequence")
			}
			var e starlark.Value
			for it.Next(&e) {
				s, _ := starlark.AsString(e)
				names = append(names, s)
			}
			it.Done()
		} else if len(recs) > 0 {
			names, recs = recs[0], recs[1:]
		}
		out := make([]starlark.Value, 0, len(recs))
		for _, rec := range recs {
			d := starlark.NewDict(len(names))
			for i, n := range names {
				if i < len(rec) {
					_ = d.SetKey(starlark.String(n), starlark.String(rec[i]))
				} else {
					_ = d.SetKey(starlark.String(n), restval)
				}
			}
			if len(rec) > len(names) {
				_ = d.SetKey(restkey, strList(rec[len(names):]))
			}
			out = append(out, d)
		}
		return starlark.NewList(out), nil
	})
	return module("csv", starlark.StringDict{
		"reader": reader, "DictReader": dictReader,
		"QUOTE_MINIMAL": starlark.MakeInt(0), "QUOTE_ALL": starlark.MakeInt(1), "QUOTE_NONNUMERIC": starlark.MakeInt(2),
		"QUOTE_NONE": starlark.MakeInt(3), "QUOTE_STRINGS": starlark.MakeInt(4), "QUOTE_NOTNULL": starlark.MakeInt(5),
	})
}

// structTime is time.struct_time for t.
func structTime(t time.Time) *namedTuple {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return &namedTuple{typ: "time.struct_time",
		fields: []string{"tm_year", "tm_mon", "tm_mday", "tm_hour", "tm_min", "tm_sec", "tm_wday", "tm_yday", "tm_isdst"},
		vals: starlark.Tuple{starlark.MakeInt(y), starlark.MakeInt(int(mo)), starlark.MakeInt(d), starlark.MakeInt(h), starlark.MakeInt(mi),
			starlark.MakeInt(s), starlark.MakeInt((int(t.Weekday()) + 6) % 7), starlark.MakeInt(t.YearDay()), starlark.MakeInt(-1)},
		extra: starlark.StringDict{"tm_zone": starlark.None, "tm_gmtoff": starlark.None}}
}

// timeOf reads a struct_time (or a 9-tuple) back as a time.
func timeOf(v starlark.Value) (time.Time, bool) {
	seq, ok := v.(starlark.Indexable)
	if !ok || seq.Len() < 6 {
		return time.Time{}, false
	}
	var f [6]int
	for i := range f {
		if err := starlark.AsInt(seq.Index(i), &f[i]); err != nil {
			return time.Time{}, false
		}
	}
	return time.Date(f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], 0, time.UTC), true
}

// dateClass is datetime.date (Julep: datetime.datetime.date).
var dateClass = starlark.NewBuiltin("date", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var y, mo, d int
	if err := starlark.UnpackArgs(b.Name(), args, kw, "year", &y, "month", &mo, "day", &d); err != nil {
		return nil, err
	}
	t := time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC)
	if mo < 1 || mo > 12 || d < 1 || t.Day() != d || y < 1 || y > 9999 {
		return nil, fmt.Errorf("day is out of range for month")
	}
	return &datetimeValue{t: t, dateOnly: true}, nil
})

var _ = sort.Strings

func reprOf(v starlark.Value) string {
	if s, ok := v.(starlark.String); ok {
		return pyQuote(string(s))
	}
	return v.String()
}
