package yamlsize

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckBytes(t *testing.T) {
	t.Parallel()
	bomb := "a: &a " + strings.Repeat("x", 200_000) + "\nb: [" + strings.Repeat("*a, ", 1000) + "]\n"
	var e *Error
	if err := CheckBytes([]byte(bomb)); !errors.As(err, &e) || e.Line != 2 || !strings.Contains(err.Error(), "190.9 MB, over the limit of 4.0 MB (alias at line 2, column") {
		t.Fatalf("bomb: %v", err)
	}
	// Nested aliases (billion laughs) are measured once per anchor.
	var b strings.Builder
	b.WriteString("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 30; i++ {
		b.WriteString("l" + itoa(i) + ": &l" + itoa(i) + " [" + strings.Repeat("*l"+itoa(i-1)+", ", 10) + "]\n")
	}
	if err := CheckBytes([]byte(b.String())); !errors.As(err, &e) || e.Size <= 1<<60 {
		t.Fatalf("laughs: %v", err)
	}
	for _, ok := range []string{"", "a: 1", "a: &a [1, 2]\nb: *a\n", "a: &a [*a]\n", ": : :"} {
		if err := CheckBytes([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
