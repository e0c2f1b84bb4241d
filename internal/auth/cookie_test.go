package auth

import (
	"strings"
	"testing"
)

// Vectors computed outside Go, with Node's crypto.createHmac and
// encodeURIComponent, as Better Auth signs cookies.
var cookieVectors = []struct{ secret, token, cookie string }{
	{"better-auth-secret-0123456789abcdef", "Xk3tR9pLm2QvW8yZa5BcD7eF1gH4jK6n",
		"Xk3tR9pLm2QvW8yZa5BcD7eF1gH4jK6n.lTnk3%2Bh5TovLAwQC1p0T2A5E2ODRbl76EAfZLASLl1o%3D"},
	{"s3cr3t", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.viEpB%2FftmwJREIuo9jW8ataAuWCaDvS4vKcredjKRIU%3D"},
	{"ünïcödé-secret", "0123456789ABCDEFGHIJKLMNOPQRSTUV",
		"0123456789ABCDEFGHIJKLMNOPQRSTUV.WWfnzOAMBFKSVNayG7BSHs9GUyo7Q58ywtkxZzXatUc%3D"},
}

func TestSignMatchesBetterAuth(t *testing.T) {
	t.Parallel()
	for _, v := range cookieVectors {
		if got := Sign(v.secret, v.token); got != v.cookie {
			t.Errorf("Sign(%q, %q) = %q, want %q", v.secret, v.token, got, v.cookie)
		}
		tok, ok := Verify(v.secret, v.cookie)
		if !ok || tok != v.token {
			t.Errorf("Verify(%q) = %q, %v; want %q, true", v.cookie, tok, ok, v.token)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	v := cookieVectors[0]
	raw := strings.NewReplacer("%2B", "+", "%2F", "/", "%3D", "=").Replace(v.cookie)
	cases := map[string]struct{ secret, value string }{
		"wrong secret":         {"another-secret", v.cookie},
		"unsigned":             {v.secret, v.token},
		"empty":                {v.secret, ""},
		"only a dot":           {v.secret, "."},
		"no token":             {v.secret, v.cookie[strings.IndexByte(v.cookie, '.'):]},
		"truncated signature":  {v.secret, v.cookie[:len(v.cookie)-3]},
		"double encoded":       {v.secret, strings.ReplaceAll(v.cookie, "%", "%25")},
		"base64url signature":  {v.secret, strings.NewReplacer("%2B", "-", "%2F", "_", "%3D", "").Replace(v.cookie)},
		"other token same sig": {v.secret, "Y" + v.cookie[1:]},
		"bad escape":           {v.secret, v.cookie + "%zz"},
		"signature of other":   {v.secret, cookieVectors[1].cookie},
		"extra suffix":         {v.secret, v.cookie + "x"},
	}
	for name, c := range cases {
		if tok, ok := Verify(c.secret, c.value); ok {
			t.Errorf("%s: Verify accepted %q as token %q", name, c.value, tok)
		}
	}
	// "+" must not be read as a space: the raw (unescaped) form still verifies.
	if tok, ok := Verify(v.secret, raw); !ok || tok != v.token {
		t.Errorf("raw cookie %q: got %q, %v", raw, tok, ok)
	}
}

func FuzzVerify(f *testing.F) {
	for _, v := range cookieVectors {
		f.Add(v.secret, v.cookie)
	}
	f.Fuzz(func(t *testing.T, secret, value string) {
		tok, ok := Verify(secret, value)
		if ok && Sign(secret, tok) == "" {
			t.Fatal("verified a cookie that cannot be re-signed")
		}
	})
}
