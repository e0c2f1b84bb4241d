// Package clientip finds a request's client address, believing
// X-Forwarded-For only from the reverse proxies an operator named.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the peers whose X-Forwarded-For is believed. The zero value
// trusts no one: the client is the TCP peer.
type Proxies struct{ nets []netip.Prefix }

// Parse reads ASTRA_TRUSTED_PROXIES entries: CIDRs ("10.0.0.0/8") or single
// addresses ("127.0.0.1", "::1").
func Parse(entries []string) (Proxies, error) {
	var p Proxies
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if pfx, err := netip.ParsePrefix(e); err == nil {
			p.nets = append(p.nets, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return Proxies{}, fmt.Errorf("%q is not an IP address or CIDR", e)
		}
		a = a.Unmap()
		p.nets = append(p.nets, netip.PrefixFrom(a, a.BitLen()))
	}
	return p, nil
}

// Trusted reports whether addr is one of the proxies.
func (p Proxies) Trusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, n := range p.nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// Of returns r's client address. From a trusted peer, X-Forwarded-For is
// read right to left (each proxy appends the address it saw) and the first
// address that is not itself a trusted proxy is the client: entries to its
// left were written by the client and prove nothing.
func (p Proxies) Of(r *http.Request) string {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if !p.Trusted(peer) {
		return peer.String()
	}
	hops := forwarded(r.Header.Values("X-Forwarded-For"))
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // garbage from further left cannot be trusted either
		}
		client = a.Unmap()
		if !p.Trusted(client) {
			break
		}
	}
	return client.String()
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// forwarded splits every X-Forwarded-For header into its hops, in order.
func forwarded(values []string) []string {
	var out []string
	for _, v := range values {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				out = append(out, h)
			}
		}
	}
	return out
}
