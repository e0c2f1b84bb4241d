package engine

import "github.com/astra-app/astra/internal/expr"

// redactString hides every secret value in s (expr.Redact's "[redacted]").
func redactString(s string, secrets map[string]string) string {
	return expr.Redact(s, secrets)
}

// redactValue redacts every string (and map key) inside a JSON-like value.
func redactValue(v any, secrets map[string]string) any {
	if len(secrets) == 0 {
		return v
	}
	switch v := v.(type) {
	case string:
		return redactString(v, secrets)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = redactValue(x, secrets)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[redactString(k, secrets)] = redactValue(x, secrets)
		}
		return out
	}
	return v
}
