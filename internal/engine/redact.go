package engine

import (
	"maps"

	"github.com/astra-app/astra/internal/expr"
)

// redactString hides every secret value in s (expr.Redact's "[redacted]").
func redactString(s string, secrets map[string]string) string {
	return expr.Redact(s, secrets)
}

// redactValue redacts every string (and map key) inside a JSON-like value.
// What holds no secret is returned as it is, not copied: the caller can tell
// by identity that nothing was redacted.
func redactValue(v any, secrets map[string]string) any {
	if len(secrets) == 0 {
		return v
	}
	out, _ := redacted(v, secrets)
	return out
}

// redacted returns v redacted and whether that changed anything.
func redacted(v any, secrets map[string]string) (any, bool) {
	switch v := v.(type) {
	case string:
		r := redactString(v, secrets)
		return r, r != v
	case []any:
		var out []any
		for i, x := range v {
			r, changed := redacted(x, secrets)
			if changed && out == nil {
				out = append(make([]any, 0, len(v)), v...)
			}
			if out != nil {
				out[i] = r
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	case map[string]any:
		// One pass: each value is redacted once, however deep the nesting.
		type change struct {
			key, newKey string
			val         any
		}
		var changes []change
		for k, x := range v {
			r, c := redacted(x, secrets)
			if nk := redactString(k, secrets); c || nk != k {
				changes = append(changes, change{k, nk, r})
			}
		}
		if changes == nil {
			return v, false
		}
		out := maps.Clone(v)
		for _, c := range changes {
			delete(out, c.key)
		}
		for _, c := range changes {
			out[c.newKey] = c.val
		}
		return out, true
	}
	return v, false
}
