package auth

import (
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/astra-app/astra/internal/clientip"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
)

// TestSessionIPAddress: a session records X-Forwarded-For's client only
// when the peer is a trusted proxy; anyone else could write any address.
func TestSessionIPAddress(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u := &responder.User{Name: "Alice", Email: "alice@example.com"}
	if err := st.CreateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	proxies, err := clientip.Parse([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		proxies clientip.Proxies
		peer    string
		want    string
	}{
		{"untrusted peer", proxies, "203.0.113.9:4000", "203.0.113.9"},
		{"no proxies configured", clientip.Proxies{}, "10.0.0.2:4000", "10.0.0.2"},
		{"trusted proxy", proxies, "10.0.0.2:4000", "198.51.100.7"},
	} {
		s := New(st, Options{Secret: testSecret, Proxies: c.proxies})
		r := httptest.NewRequest("POST", "/api/auth/dev-login", nil)
		r.RemoteAddr = c.peer
		r.Header.Set("X-Forwarded-For", "198.51.100.7")
		sess, err := s.Start(t.Context(), httptest.NewRecorder(), r, u)
		if err != nil {
			t.Fatal(err)
		}
		if sess.IPAddress != c.want {
			t.Errorf("%s: session IP %q, want %q", c.name, sess.IPAddress, c.want)
		}
	}
}
