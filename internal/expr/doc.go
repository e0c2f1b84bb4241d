// Package expr evaluates the strings of Julep task definitions: Julep's
// Python expression language, compiled to Starlark (go.starlark.net) with a
// compatibility layer.
//
// # Which strings are expressions
//
// After trimming surrounding whitespace (as Julep does):
//   - "$ expr" is a Python expression;
//   - a string containing "{{" is a Jinja-style template: "{{" and "}}" become
//     "{" and "}" and the result is an f-string (so "{{{" yields a literal "{");
//   - strings starting "_." or "_[", of the form "[...]", containing "inputs["
//     or "outputs[", or equal to "_" are expressions (legacy rules; Julep also
//     requires "_[..." to end with "]", we do not);
//   - anything else is the body of a Python f-string: "{x}" interpolates,
//     "{{"/"}}" are literal braces, backslash escapes are processed.
//
// # Values
//
// Variables and results are JSON-like Go values: nil, bool, int64, float64,
// string, []any, map[string]any (int, float32, json.Number, map[string]string,
// []string, time.Time and JSON-marshalable structs are accepted as input).
// Numbers keep their Python kind: a json.Number with a "." or exponent is a
// float (2.0 stays 2.0), one without an int of any size; a Go float64 with an
// integral value of magnitude <= 2^53 becomes an int (Go's plain JSON
// decoding makes every number a float64, so range(_.n) works when n arrived
// as 3.0). Results: a whole float comes back as json.Number("2.0") so that
// it stays a float through JSON, an int beyond int64 as json.Number with all
// its digits. Tuples and sets come back as lists, dict keys
// as strings, datetimes as ISO strings; NaN and infinities are errors.
// vars["steps"], a list of step records, can also be indexed by a step's
// "label" (steps['fetch']), and so can inputs and outputs, as Julep keys
// them. Dicts allow attribute access (_.topic), also by python-box's name
// for a key ("foo-bar" as _.foo_bar); dict methods win over keys of the
// same name (_.items is the method). Strings count, index and slice code
// points, as Python's do. JulepRefusals reports what Julep v1's create-time
// validator would refuse.
//
// # Python supported beyond Starlark
//
// f-strings (nested, with !r/!s/!a, "=" and the format-spec mini-language:
// fill, align, sign, #, 0, width, "," and "_" grouping, precision, types
// s d b o x X c e E f F g G %), "%" formatting, str.format, "**", chained
// comparisons, "is"/"is not" (as ==/!=), set literals and comprehensions,
// generator expressions (evaluated as lists), iteration over strings,
// duplicate dict keys, Python str()/repr() of containers ({'a': None}),
// extra str/list/dict methods (zfill, ljust, center, casefold, format, sort,
// reverse, copy, count...), builtins sum, round, isinstance, type, map,
// filter, reduce, divmod, pow, format, hasattr, getattr, hex/oct/bin, and
// the modules json (Python's default dumps formatting), re (RE2 syntax, as
// Julep's re2), yaml, string, datetime, time, math, statistics, base64,
// random, urllib.parse, and the helpers load_json, dump_json, load_yaml,
// dump_yaml, extract_json, chunk_doc, search_regex, match_regex, plus NEWLINE,
// true, false, null.
//
// # Not supported
//
// Walrus (:=), complex
// numbers, bytes methods, "is" as identity on mutable values, keyword names
// as attributes (x.from is a syntax error, as in Python), `\N{...}` escapes,
// time zones other than UTC ("local" time is UTC), and recursion (a lambda
// calling itself fails fast). chunk_doc splits on sentence punctuation into
// chunks of about 1,000 characters instead of using a spaCy model.
//
// # Safety
//
// Every evaluation is bounded: 1 s of wall time (or the context's deadline),
// 5 million Starlark steps, and memory. Whatever can build a large value
// (repetition, +, replace, join, split, padding and format widths, %,
// str.format, f-strings, str/repr, json/yaml dumps and loads, base64, re,
// list/dict/set construction, list.extend, dict.items...) works out the size
// it is about to build and checks it first: one value may not exceed 16 MB
// ("expression would build a 9.3 GB string; the limit is 16 MB"), and all
// values an evaluation builds, its result included, 64 MB. The result is
// measured with shared references expanded ([[0]*3000]*3000 is 9 million
// numbers). load_yaml refuses documents whose aliases expand past 4 MB. The
// timeout cancels the interpreter and the loops inside builtins (a builtin
// comparing or sorting huge shared structures is bounded by the sizes above,
// not by the clock). range() is limited to 10^6 elements and integer powers
// to 2^16
// bits. Errors are one-line *responder.Error values with code EINVALID
// (context cancellation wraps ctx.Err()); secret values from vars["secrets"]
// are redacted from them.
package expr
