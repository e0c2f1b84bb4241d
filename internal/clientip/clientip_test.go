package clientip

import (
	"net/http/httptest"
	"testing"
)

func TestOf(t *testing.T) {
	t.Parallel()
	trusted, err := Parse([]string{"10.0.0.0/8", "127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		proxies Proxies
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies: the peer, whatever the header says", Proxies{}, "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"untrusted peer: header ignored", trusted, "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted peer: the forwarded client", trusted, "127.0.0.1:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted peer, spoofed left entry: the first untrusted from the right", trusted, "10.1.1.1:5000", []string{"6.6.6.6, 198.51.100.7, 10.2.2.2"}, "198.51.100.7"},
		{"several headers are one list", trusted, "[::1]:5000", []string{"6.6.6.6", "198.51.100.7"}, "198.51.100.7"},
		{"trusted peer without header: the peer", trusted, "10.1.1.1:5000", nil, "10.1.1.1"},
		{"garbage hop stops the walk", trusted, "10.1.1.1:5000", []string{"198.51.100.7, nonsense"}, "10.1.1.1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := c.proxies.Of(r); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	if _, err := Parse([]string{"10.0.0.0/8", "not-an-ip"}); err == nil {
		t.Error("a bad entry was accepted")
	}
}
