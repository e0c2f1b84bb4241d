package engine

import (
	"sort"
	"strings"
)

// redactString replaces every secret value in s with a marker naming the
// secret. Longer values go first so a secret containing another is hidden whole.
func redactString(s string, secrets map[string]string) string {
	if len(secrets) == 0 || s == "" {
		return s
	}
	names := make([]string, 0, len(secrets))
	for n, v := range secrets {
		if len(v) >= 3 { // shorter values would shred ordinary text
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool { return len(secrets[names[i]]) > len(secrets[names[j]]) })
	for _, n := range names {
		s = strings.ReplaceAll(s, secrets[n], "[secret:"+n+"]")
	}
	return s
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
