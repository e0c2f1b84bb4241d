// Package egress decides which addresses tasks may reach: a task's
// api_call must not become a way into this server, its network or the
// cloud's metadata service. The check runs at dial time on the address
// actually connected to, after DNS resolution, so a name that resolves (or
// re-resolves) to an internal address is refused all the same.
package egress

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Setting is the variable that opens what the policy refuses; errors name it.
const Setting = "ASTRA_EGRESS_ALLOW"

// RefusedError is a dial the policy refused.
type RefusedError struct {
	Addr   netip.Addr
	Reason string // "a loopback address", ...
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused by the egress policy: %s is %s; allow it with %s", e.Addr, e.Reason, Setting)
}

// blocked are the ranges refused by default, each with what it is.
var blocked = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address (cloud metadata services live at 169.254.169.254)"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("fc00::/7"), "a private (unique local) address"},
	{netip.MustParsePrefix("fec0::/10"), "a private (site-local) address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
}

// nat64 embeds an IPv4 address in its low 32 bits; the embedded address
// is what is really reached.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Policy is the set of refused and allowed destinations.
type Policy struct {
	nets      []netip.Prefix  // ASTRA_EGRESS_ALLOW CIDRs and IPs
	hosts     map[string]bool // ASTRA_EGRESS_ALLOW host names, lower case
	suffixes  []string        // "*.example.com" entries, as ".example.com"
	endpoints map[string]bool // configured endpoints, "host:port"
	own       []netip.Addr    // this machine's addresses
}

// New returns the default policy opened by allow (CIDRs, IPs, host names,
// or "*.example.com" for a domain's subdomains). The machine's interface
// addresses are refused as "this server's own address" unless allowed.
func New(allow []string) (*Policy, error) {
	p := &Policy{hosts: map[string]bool{}, endpoints: map[string]bool{}}
	for _, a := range allow {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
		case strings.Contains(a, "/"):
			pfx, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR", Setting, a)
			}
			p.nets = append(p.nets, pfx.Masked())
		default:
			if ip, err := netip.ParseAddr(strings.Trim(a, "[]")); err == nil {
				ip = ip.Unmap()
				p.nets = append(p.nets, netip.PrefixFrom(ip, ip.BitLen()))
			} else if s, ok := strings.CutPrefix(a, "*."); ok {
				p.suffixes = append(p.suffixes, "."+strings.ToLower(strings.TrimSuffix(s, ".")))
			} else {
				p.hosts[strings.ToLower(strings.TrimSuffix(a, "."))] = true
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if pfx, err := netip.ParsePrefix(a.String()); err == nil {
				p.own = append(p.own, pfx.Addr().Unmap())
			}
		}
	}
	return p, nil
}

// AllowEndpoint lets requests reach the host and port of an endpoint the
// operator configured (ASTRA_LLM_BASE_URL, ASTRA_TTS_URL, JULEP_BASE_URL)
// wherever it is: configuring it is the permission. Other ports of the
// same host stay under the policy.
func (p *Policy) AllowEndpoint(rawURL string) {
	if rawURL == "" {
		return
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p.endpoints[strings.ToLower(net.JoinHostPort(u.Hostname(), port))] = true
}

// hostAllowed reports whether a dial to host:port (as the URL named it,
// before resolution) is opened by name.
func (p *Policy) hostAllowed(address string) bool {
	if p.endpoints[strings.ToLower(address)] {
		return true
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if p.hosts[host] {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// CheckAddr returns a *RefusedError when ip may not be reached.
func (p *Policy) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, n := range p.nets {
		if n.Contains(ip) {
			return nil
		}
	}
	target := ip
	if nat64.Contains(ip) {
		b := ip.As16()
		target = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		for _, n := range p.nets {
			if n.Contains(target) {
				return nil
			}
		}
	}
	for _, b := range blocked {
		if b.prefix.Contains(target) {
			return &RefusedError{Addr: ip, Reason: b.reason}
		}
	}
	if target == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return &RefusedError{Addr: ip, Reason: "a broadcast address"}
	}
	for _, o := range p.own {
		if o == target {
			return &RefusedError{Addr: ip, Reason: "this server's own address"}
		}
	}
	return nil
}

// control checks the address a socket is about to connect to: for a
// host name, one of its resolved addresses (each is checked as it is tried).
func (p *Policy) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused by the egress policy: cannot read the address %q", address)
	}
	return p.CheckAddr(ap.Addr())
}

// DialContext dials through the policy with d's settings (nil: defaults).
func (p *Policy) DialContext(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	}
	checked := *d
	checked.Control = nil
	checked.ControlContext = p.control
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if p.hostAllowed(address) {
			return d.DialContext(ctx, network, address)
		}
		return checked.DialContext(ctx, network, address)
	}
}

// Client returns an HTTP client whose every connection, redirects
// included, goes through the policy.
func (p *Policy) Client(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Behind HTTP(S)_PROXY the dial is to the proxy (which must then be
	// allowed) and the proxy's rules govern the destination; requests to
	// loopback names are never proxied, so they still meet the policy.
	t.DialContext = p.DialContext(nil)
	return &http.Client{Timeout: timeout, Transport: t}
}
