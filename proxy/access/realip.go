package access

import (
	"net"
	"net/netip"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

// realIP is ngx_http_realip_module for one request: when the connection
// comes from a trusted address, the client address is taken from
// real_ip_header. With X-Forwarded-For (or real_ip_recursive on any
// header) the list is read from the right, and with real_ip_recursive
// trusted addresses are skipped as nginx's ngx_http_get_forwarded_addr
// does.
func (p *Phase) realIP(r *route.Request) { RealIP(r, &p.realip) }

// RealIP applies a level's realip settings to r, once per request: the
// engine calls it with the virtual server's settings right after routing
// (nginx's post-read phase, so `return` answers and their logs see the
// real address too); the location's phase then does nothing if the
// server's already found the address (nginx's preaccess phase).
func RealIP(r *route.Request, rc *config.RealIP) {
	if r.ConnAddr != nil || (len(rc.From) == 0 && !rc.FromUnix) {
		return // already done for this request, or nothing to do
	}
	conn := r.RemoteAddr
	var cur netip.AddrPort
	unix := false
	switch a := conn.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return
		}
		cur = netip.AddrPortFrom(ip.Unmap(), uint16(a.Port))
	case *net.UnixAddr:
		unix = true
	default:
		return
	}
	trusted := func(a netip.Addr, unix bool) bool {
		if unix {
			return rc.FromUnix
		}
		for _, f := range rc.From {
			if f.Contains(a) {
				return true
			}
		}
		return false
	}
	var values []string
	switch h := rc.Header; h {
	case "", "X-Real-IP":
		if v, ok := firstHeader(r.Headers, "x-real-ip"); ok {
			values = []string{v}
		}
	case "X-Forwarded-For":
		values = allHeaders(r.Headers, "x-forwarded-for")
	default:
		if v, ok := firstHeader(r.Headers, h); ok {
			values = []string{v}
		}
	}
	if len(values) == 0 {
		return
	}
	found, changed := false, false
	for i := len(values) - 1; i >= 0; i-- {
		var rcv int
		rcv, cur, unix = forwarded(values[i], cur, unix, trusted, rc.Recursive)
		if rcv != fwdDeclined {
			changed = true
		}
		if !rc.Recursive {
			break
		}
		if rcv == fwdDeclined && found {
			break
		}
		if rcv != fwdOK {
			break
		}
		found = true
	}
	if !changed {
		return
	}
	r.ConnAddr = conn
	r.RemoteAddr = &net.TCPAddr{IP: cur.Addr().AsSlice(), Port: int(cur.Port())}
}

const (
	fwdDeclined = iota
	fwdDone
	fwdOK
)

// forwarded is ngx_http_get_forwarded_addr_internal for one header value:
// while the current address is trusted, take the rightmost address of
// the list (and with recursive, go on leftwards).
func forwarded(v string, cur netip.AddrPort, unix bool, trusted func(netip.Addr, bool) bool, recursive bool) (int, netip.AddrPort, bool) {
	found := false
	for {
		if !trusted(cur.Addr(), unix) {
			if found {
				return fwdDone, cur, unix
			}
			return fwdDeclined, cur, unix
		}
		v = strings.TrimRight(v, " ,")
		i := strings.LastIndexAny(v, " ,")
		elem := v[i+1:]
		a, ok := parseAddrPort(elem)
		if !ok {
			if found {
				return fwdDone, cur, unix
			}
			return fwdDeclined, cur, unix
		}
		cur, unix, found = a, false, true
		if i < 0 {
			return fwdOK, cur, unix
		}
		v = v[:i]
		if !recursive {
			return fwdOK, cur, unix
		}
	}
}

// parseAddrPort is ngx_parse_addr_port: an IPv4 or IPv6 address, with an
// optional port (IPv6 in brackets then).
func parseAddrPort(s string) (netip.AddrPort, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), 0), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	return netip.AddrPort{}, false
}

func firstHeader(hs []hpack.HeaderField, name string) (string, bool) {
	for i := range hs {
		if hs[i].Name == name {
			return hs[i].Value, true
		}
	}
	return "", false
}

func allHeaders(hs []hpack.HeaderField, name string) []string {
	var out []string
	for i := range hs {
		if hs[i].Name == name {
			out = append(out, hs[i].Value)
		}
	}
	return out
}
