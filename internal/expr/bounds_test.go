package expr

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// attackVectors are expressions that once drove a server to gigabytes (or
// ran for seconds past their 1 s limit) because sizes were charged after the
// work. Each must now be refused before it allocates.
var attackVectors = []struct {
	name, src, want string
}{
	{"replace blow-up", `$ ('a'*100000).replace('a', 'b'*100000)`, "would build a 9.3 GB string; the limit is 16 MB"},
	{"replace 32k", `$ ('a'*32000).replace('a', 'b'*32000)`, "would build a 976.6 MB string"},
	{"join blow-up", `$ ('x'*100000).join(['y'*1000]*1000)`, "would build a 96.2 MB string; the limit is 16 MB"},
	{"shared list result", `$ [[0]*3000]*3000`, "would build a 206.0 MB result; the limit is 16 MB"},
	{"shared list result 10k", `$ [[0]*10000]*10000`, "would build a 2.2 GB result"},
	{"huge repeat", `$ 'a'*10**10`, "would build a 9.3 GB string"},
	{"format string repeat", `$ '%s' * 10**9`, "would build a 1.9 GB string"},
	{"ljust", `$ 'x'.ljust(10**9)`, "would build a 953.7 MB string"},
	{"rjust fill", `$ 'x'.rjust(10**8, 'é')`, "would build a 190.7 MB string"},
	{"center", `$ 'x'.center(10**9)`, "would build a 953.7 MB string"},
	{"zfill", `$ '1'.zfill(10**9)`, "would build a 953.7 MB string"},
	{"f-string width", `$ f'{_:>1000000000}'`, "would build a 953.7 MB string"},
	{"format width", `$ format(1, '>1000000000')`, "would build a 953.7 MB string"},
	{"str.format width", `$ '{:>1000000000}'.format(1)`, "would build a 953.7 MB string"},
	{"percent width", `$ '%1000000000s' % 'x'`, "would build a 953.7 MB string"},
	{"list of range", `$ list(range(10**9))`, "range size exceeds maximum"},
	{"sorted range", `$ sorted(range(10**8))`, "range size exceeds maximum"},
	{"json.dumps shared", `$ json.dumps([[[0]*1000]*1000]*1000)`, "would build a 2.8 GB JSON string; the limit is 16 MB"},
	{"json.dumps shared compact", `$ json.dumps([[[0]*1000]*1000]*1000, separators=(',', ':'))`, "would build a 1.9 GB JSON string"},
	{"str shared", `$ str([[[0]*1000]*1000]*1000)`, "would build a 2.8 GB string"},
	{"repr shared dict", `$ repr([{'k': 'v' * 1000}] * 100000)`, "would build a 96.4 MB string"},
	{"f-string shared", `$ f'{[[[0]*1000]*1000]*1000}'`, "would build a 2.8 GB string"},
	{"percent shared", `$ '%s' % ([[[0]*1000]*1000]*1000,)`, "would build a 2.8 GB string"},
	{"percent many fields", `$ ('%s' * 1000) % tuple(['y' * 1000000] * 1000)`, "would build a string larger than 16 MB"},
	{"str.format many fields", `$ ('{0}' * 1000).format('y' * 1000000)`, "would build a string larger than 16 MB"},
	{"dump_yaml shared", `$ yaml.dump([[[0]*1000]*1000]*1000)`, "would build a"},
	{"concat", `$ ('a'*10000000) + ('b'*10000000)`, "would build a 19.1 MB string"},
	{"split pieces", `$ len(('a,'*5000000).split(','))`, "would build a 152.6 MB list"},
	{"iterate string", `$ len([c for c in 'a'*10000000])`, "would build a 305.2 MB list"},
	{"list of string", `$ len(list('a'*10000000))`, "would build a 305.2 MB list"},
	{"extend doubling", `$ [x.extend(x) for x in [[1]] for i in range(40)]`, "would build a 32 MB list"},
	{"sum of lists", `$ len(sum([[0]*100000]*1000, []))`, "memory budget"},
	{"strftime", `$ datetime.datetime(2024, 1, 2).strftime('%c' * 5000000)`, "would build a 114.4 MB string"},
	{"re.sub", `$ re.sub('', 'x'*100000, 'a'*100000)`, "would build a string larger than 16 MB"},
	{"load_yaml bomb", `$ load_yaml('a: &a ' + 'x'*200000 + '\nb: [' + '*a, ' * 1000 + ']')`, "YAML aliases expand the document to 190.9 MB"},
	{"string shared in result", `$ ['x'*1000000]*100`, "would build a 95.4 MB result"},
	{"urlencode", `$ urllib.parse.urlencode({'a': [[[0]*1000]*1000]*1000})`, "would build a 2.8 GB string"},
	{"dict items", `$ len({i: i for i in range(250000)}.items())`, "would build a 17.2 MB list"},
	{"enumerate", `$ len(list(enumerate('x' * 3000000)))`, "would build a"},
}

func TestAttacksRefusedBeforeAllocating(t *testing.T) {
	// Not parallel: TotalAlloc is process-wide.
	vars := map[string]any{"_": "x"}
	for _, a := range attackVectors {
		t.Run(a.name, func(t *testing.T) {
			p, err := Compile(a.src)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = p.eval(context.Background(), vars, noClock)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("%s: no error", a.src)
			}
			msg := err.Error()
			if !strings.Contains(msg, a.want) {
				t.Errorf("%s: error %q, want it to contain %q", a.src, msg, a.want)
			}
			if strings.Contains(msg, "\n") || strings.Contains(msg, "timed out") {
				t.Errorf("%s: error %q is not a one-line size error", a.src, msg)
			}
			// The budget is 64 MB; the limit per value 16 MB. Anything near
			// the attack's size would be gigabytes.
			if d := after.TotalAlloc - before.TotalAlloc; d > 300<<20 {
				t.Errorf("%s allocated %d MB before failing", a.src, d>>20)
			}
		})
	}
}

// noClock is defaultLimits without the 1 s timeout: these tests are about
// sizes, and a loaded CI machine (or -race) must not turn them into timeouts.
var noClock = limits{timeout: time.Hour, maxSteps: defaultLimits.maxSteps, maxAlloc: defaultLimits.maxAlloc}

// Legitimate values up to the limits still work.
func TestLargeButAllowed(t *testing.T) {
	t.Parallel()
	cases := []struct{ src, want string }{
		{`$ len('a' * 10000000)`, `10000000`},
		{`$ len(('a'*1000).replace('a', 'bb'))`, `2000`},
		{`$ len(', '.join(['x'] * 100000))`, `299998`},
		{`$ len([[0]*100]*100)`, `100`},
		{`$ len(json.dumps([[0]*100]*100))`, `30200`},
		{`$ len('x'.ljust(1000000))`, `1000000`},
		{`$ len(f'{1:>100000}')`, `100000`},
		{`$ len(str(list(range(100000))))`, `688890`},
	}
	for _, c := range cases {
		p, err := Compile(c.src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.eval(context.Background(), nil, noClock)
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		if g := canon(t, got); g != c.want {
			t.Errorf("%s = %s, want %s", c.src, g, c.want)
		}
	}
}

// A shared reference within the limit converts in full.
func TestSharedReferenceResultWithinLimit(t *testing.T) {
	t.Parallel()
	p, err := Compile(`$ [[0]*300]*300`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.eval(context.Background(), nil, noClock)
	if err != nil {
		t.Fatal(err)
	}
	rows := got.([]any)
	if len(rows) != 300 || len(rows[299].([]any)) != 300 {
		t.Fatalf("got %d rows", len(rows))
	}
}

// The timeout stops loops inside builtins, not only the interpreter.
func TestCancelledBudgetStopsBuiltinLoops(t *testing.T) {
	t.Parallel()
	b := &budget{limit: 64 << 20}
	b.cancelled.Store(true)
	if err := b.reserve(1, "string"); err != errInterrupted {
		t.Fatalf("reserve after cancel = %v", err)
	}
	if err := b.alive(); err != errInterrupted {
		t.Fatalf("alive after cancel = %v", err)
	}
}

func TestHumanBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{12: "12 bytes", 16 << 20: "16 MB", 10_000_000_000: "9.3 GB", 1536: "1.5 KB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
