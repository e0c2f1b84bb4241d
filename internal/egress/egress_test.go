package egress

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDefaultRanges(t *testing.T) {
	t.Parallel()
	p, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	p.own = []netip.Addr{netip.MustParseAddr("203.0.113.10")} // what the interfaces would say
	for addr, reason := range map[string]string{
		"127.0.0.1":          "loopback",
		"127.10.0.1":         "loopback",
		"::1":                "loopback",
		"::ffff:127.0.0.1":   "loopback",
		"169.254.169.254":    "link-local",
		"169.254.1.1":        "link-local",
		"fe80::1":            "link-local",
		"10.0.0.1":           "private",
		"172.16.0.1":         "private",
		"172.31.255.254":     "private",
		"192.168.1.1":        "private",
		"fc00::1":            "private",
		"fd12:3456::1":       "private",
		"100.64.0.1":         "shared",
		"0.0.0.0":            "unspecified",
		"::":                 "unspecified",
		"224.0.0.1":          "multicast",
		"ff02::1":            "multicast",
		"255.255.255.255":    "reserved",
		"64:ff9b::7f00:1":    "loopback", // NAT64 of 127.0.0.1
		"203.0.113.10":       "this server's own address",
		"::ffff:192.168.0.1": "private",
	} {
		err := p.CheckAddr(netip.MustParseAddr(addr))
		var re *RefusedError
		if !errors.As(err, &re) || !strings.Contains(re.Reason, reason) {
			t.Errorf("%s: %v, want refused as %s", addr, err, reason)
			continue
		}
		if !strings.Contains(err.Error(), "refused by the egress policy: ") || !strings.HasSuffix(err.Error(), "allow it with ASTRA_EGRESS_ALLOW") {
			t.Errorf("%s: unclear error %q", addr, err)
		}
	}
	for _, addr := range []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700::1111", "93.184.216.34"} {
		if err := p.CheckAddr(netip.MustParseAddr(addr)); err != nil {
			t.Errorf("%s refused: %v", addr, err)
		}
	}
}

func TestAllowByCIDRAndIP(t *testing.T) {
	t.Parallel()
	p, err := New([]string{"10.1.0.0/16", "127.0.0.1", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, ok := range map[string]bool{
		"10.1.2.3": true, "10.2.0.1": false, "127.0.0.1": true, "127.0.0.2": false, "fd00::5": true, "169.254.169.254": false,
	} {
		if err := p.CheckAddr(netip.MustParseAddr(addr)); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed=%v", addr, err, ok)
		}
	}
	if _, err := New([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

// get fetches url through p and returns the error, if any.
func get(p *Policy, url string) error {
	res, err := p.Client(5 * time.Second).Get(url)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return res.Body.Close()
}

// TestDialTime: the policy judges the address actually dialled, so a host
// name that resolves to loopback (as a rebinding name would) is refused,
// and an allowed name or endpoint is let through.
func TestDialTime(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "internal") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))

	p, _ := New(nil)
	err := get(p, "http://localhost:"+port+"/")
	var re *RefusedError
	if !errors.As(err, &re) || !re.Addr.IsLoopback() {
		t.Fatalf("localhost (resolving to loopback): %v, want a refusal", err)
	}
	if err := get(p, srv.URL); !errors.As(err, &re) {
		t.Errorf("%s: %v, want a refusal", srv.URL, err)
	}

	// A redirect to an internal address is dialled, and refused, too.
	redirector := httptest.NewServer(http.RedirectHandler("http://localhost:"+port+"/", http.StatusFound))
	defer redirector.Close()
	onlyRedirector, _ := New(nil)
	onlyRedirector.AllowEndpoint(redirector.URL)
	if err := get(onlyRedirector, redirector.URL); !errors.As(err, &re) {
		t.Errorf("redirect to localhost: %v, want a refusal", err)
	}

	byHost, _ := New([]string{"localhost"})
	if err := get(byHost, "http://localhost:"+port+"/"); err != nil {
		t.Errorf("allowed by host name: %v", err)
	}
	byEndpoint, _ := New(nil)
	byEndpoint.AllowEndpoint(srv.URL + "/v1/audio/speech")
	if err := get(byEndpoint, srv.URL+"/other"); err != nil {
		t.Errorf("configured endpoint: %v", err)
	}
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	if err := get(byEndpoint, other.URL); !errors.As(err, &re) {
		t.Errorf("another port of the endpoint's host: %v, want a refusal", err)
	}
}
