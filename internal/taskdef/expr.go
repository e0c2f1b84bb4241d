package taskdef

import (
	"errors"
	"strings"
)

// checkExpression says whether a task string compiles under Julep's rules.
// It is the one place that knows who does the checking, so swapping in the
// expression package changes nothing else.
func checkExpression(s string) error {
	return fallbackCheck(s)
}

// fallbackCheck is a bracket and quote balance check of a "$ " expression,
// used until internal/expr lands.
func fallbackCheck(s string) error {
	t := strings.TrimSpace(s)
	body, ok := strings.CutPrefix(t, "$")
	if !ok {
		return nil
	}
	body = strings.TrimSpace(body)
	if body == "" {
		return errors.New("empty expression after $")
	}
	var stack []byte
	var quote byte
	for i := 0; i < len(body); i++ {
		ch := body[i]
		if quote != 0 {
			if ch == '\\' {
				i++
			} else if ch == quote {
				quote = 0
			}
			continue
		}
		switch ch {
		case '\'', '"':
			quote = ch
		case '(', '[', '{':
			stack = append(stack, ch)
		case ')', ']', '}':
			want := map[byte]byte{')': '(', ']': '[', '}': '{'}[ch]
			if len(stack) == 0 || stack[len(stack)-1] != want {
				return errors.New("unmatched " + string(ch))
			}
			stack = stack[:len(stack)-1]
		}
	}
	if quote != 0 {
		return errors.New("unterminated string")
	}
	if len(stack) > 0 {
		return errors.New("unclosed " + string(stack[len(stack)-1]))
	}
	return nil
}
