package route

import (
	"encoding/base64"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"golang.org/x/net/http2/hpack"
)

// resolve maps a variable name (without '$') to how its value is found:
// the configuration's own definitions first (a map or set variable may
// define one of gproxy's own variables, $grpc_status: the user's wins),
// then the table's fixed names, named captures, families and $0..$9.
// Names are case-insensitive in nginx; the parser hands them over as
// written, so a name with upper-case letters is lowered here (allocating,
// but only for such unusual names).
func (t *Table) resolve(name string) (varRef, bool) {
	if m, ok := t.maps[name]; ok {
		return varRef{v: mapRow, m: m}, true
	}
	if slot, ok := t.setSlots[name]; ok {
		return varRef{v: setRow, n: slot}, true
	}
	if v, ok := byName[name]; ok {
		return varRef{v: v}, true
	}
	if slot, ok := t.named[name]; ok {
		return varRef{v: namedRow, n: slot}, true
	}
	for _, v := range families {
		if strings.HasPrefix(name, v.name) && len(name) > len(v.name) {
			return varRef{v: v, arg: name[len(v.name):]}, true
		}
	}
	if len(name) == 1 && '0' <= name[0] && name[0] <= '9' {
		return varRef{v: captureRow, n: int(name[0] - '0')}, true
	}
	if lower := strings.ToLower(name); lower != name {
		return t.resolve(lower)
	}
	return varRef{}, false
}

// Known reports whether name (without '$') is a variable this table can
// expand: a built-in, a header/argument/cookie family member, a map target,
// a named capture of some regex in the configuration, or $0..$9.
func (t *Table) Known(name string) bool {
	_, ok := t.resolve(name)
	return ok
}

// maxDepth bounds map-in-map evaluation; New rejects cycles, so this only
// guards against very deep chains.
const maxDepth = 16

// Expand returns the value of a template for a request. Unknown variables
// expand to "" (New rejects them in the configuration's own templates). A
// template that is one literal, or one variable whose value is already held
// as a string (method, path, a header, ...), costs no allocation; otherwise
// the result string is the only allocation.
func (t *Table) Expand(tpl config.Template, r *Request) string {
	return t.expand(tpl, r, 0)
}

func (t *Table) expand(tpl config.Template, r *Request, depth int) string {
	switch len(tpl.Parts) {
	case 0:
		return ""
	case 1:
		p := tpl.Parts[0]
		if p.Var == "" {
			return p.Literal
		}
		if ref, ok := t.resolve(p.Var); ok {
			if s, ok := t.stringValue(ref, r); ok {
				return s
			}
		}
	}
	// A stack buffer would escape (map values expand recursively), so
	// borrow one; the result string is then the only allocation.
	bp := expandBufs.Get().(*[]byte)
	b := t.appendExpand((*bp)[:0], tpl, r, depth)
	s := string(b)
	if cap(b) <= 4096 {
		*bp = b
		expandBufs.Put(bp)
	}
	return s
}

var expandBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// AppendExpand appends the value of a template to dst, allocating nothing
// beyond growing dst (and what the variables themselves need: a map whose
// source has upper-case letters, regex captures, $remote_user).
func (t *Table) AppendExpand(dst []byte, tpl config.Template, r *Request) []byte {
	return t.appendExpand(dst, tpl, r, 0)
}

func (t *Table) appendExpand(dst []byte, tpl config.Template, r *Request, depth int) []byte {
	for _, p := range tpl.Parts {
		if p.Var == "" {
			dst = append(dst, p.Literal...)
			continue
		}
		if ref, ok := t.resolve(p.Var); ok {
			dst = t.appendValue(dst, ref, r, depth)
		}
	}
	return dst
}

// stringValue returns values that exist as strings already, so the caller
// needs no buffer. ok is false for values that must be formatted.
func (t *Table) stringValue(ref varRef, r *Request) (string, bool) {
	if ref.v == nil || ref.v.str == nil {
		return "", false
	}
	return ref.v.str(t, ref, r)
}

// appendValue appends the value of one variable.
func (t *Table) appendValue(dst []byte, ref varRef, r *Request, depth int) []byte {
	if ref.v == mapRow {
		if depth >= maxDepth {
			return dst
		}
		return t.appendMap(dst, ref.m, r, depth+1)
	}
	if s, ok := t.stringValue(ref, r); ok {
		return append(dst, s...)
	}
	if ref.v != nil && ref.v.app != nil {
		return ref.v.app(t, dst, ref, r)
	}
	return dst
}

// upstreamField is which value of an upstream attempt a variable prints.
type upstreamField uint8

const (
	upAddr upstreamField = iota
	upStatus
	upResponseTime
	upConnectTime
)

func appendUpstream(dst []byte, k upstreamField, u *UpstreamAttempt) []byte {
	switch k {
	case upAddr:
		return append(dst, u.Addr...)
	case upStatus:
		if u.Status <= 0 {
			return append(dst, '-')
		}
		return strconv.AppendInt(dst, int64(u.Status), 10)
	case upResponseTime:
		if u.ResponseTime < 0 {
			return append(dst, '-')
		}
		return appendMillis(dst, u.ResponseTime)
	default:
		if u.ConnectTime < 0 {
			return append(dst, '-')
		}
		return appendMillis(dst, u.ConnectTime)
	}
}

// appendMillis formats d as nginx formats times: seconds with three
// decimals.
func appendMillis(dst []byte, d time.Duration) []byte {
	ms := d.Milliseconds()
	dst = strconv.AppendInt(dst, ms/1000, 10)
	dst = append(dst, '.')
	frac := ms % 1000
	dst = append(dst, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return dst
}

func (r *Request) end() time.Time {
	if r.End.IsZero() {
		return time.Now()
	}
	return r.End
}

// host is $host: the request's host name (from :authority or Host) without
// port, lower-case; else the server's primary name.
func (t *Table) host(r *Request) string {
	h := r.Authority
	if h == "" {
		h = r.header("host")
	}
	if n, ok := normalizeHost(h); ok {
		return n
	}
	return t.serverName(r.Server)
}

// serverName is $server_name (see primaryName).
func (t *Table) serverName(s *config.Server) string {
	if sr := t.servers[s]; sr != nil {
		return sr.name
	}
	return ""
}

// primaryName is nginx's $server_name for a server: its first name, "" if
// none, with the '~' of a regex kept, the leading dot of ".example.com"
// dropped and "$hostname" replaced by the machine's name.
func (t *Table) primaryName(s *config.Server) string {
	if len(s.Names) == 0 {
		return ""
	}
	n := s.Names[0]
	switch {
	case n.Kind == config.NameRegex && !strings.HasPrefix(n.Name, "~"):
		return "~" + n.Name
	case n.Kind == config.NameRegex:
		return n.Name
	case n.Name == "$hostname":
		return strings.ToLower(t.hostname)
	}
	return strings.TrimPrefix(n.Name, ".")
}

// appendIP appends the address part of a socket address as nginx prints
// $remote_addr: IPv4-mapped IPv6 as IPv4, "unix:" for Unix sockets.
func appendIP(dst []byte, a net.Addr) []byte {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return dst
		}
		return ip.Unmap().AppendTo(dst)
	case *net.UnixAddr:
		return append(dst, "unix:"...)
	case nil:
		return dst
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return dst
	}
	return append(dst, host...)
}

// appendBinaryIP is $binary_remote_addr: the address in network byte
// order, 4 bytes for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6,
// "unix:" for Unix sockets.
func appendBinaryIP(dst []byte, a net.Addr) []byte {
	switch a := a.(type) {
	case *net.TCPAddr:
		if ip4 := a.IP.To4(); ip4 != nil {
			return append(dst, ip4...)
		}
		return append(dst, a.IP.To16()...)
	case *net.UnixAddr:
		return append(dst, "unix:"...)
	}
	return dst
}

func appendPort(dst []byte, a net.Addr) []byte {
	switch a := a.(type) {
	case *net.TCPAddr:
		if a.Port == 0 { // an address realip took from a header without a port
			return dst
		}
		return strconv.AppendInt(dst, int64(a.Port), 10)
	case *net.UnixAddr, nil:
		return dst
	}
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return dst
	}
	return append(dst, port...)
}

// varNameMatches reports whether a lower-case header name corresponds to
// the variable suffix want: nginx compares with '-' as '_' and ignores case.
func varNameMatches(header, want string) bool {
	if len(header) != len(want) {
		return false
	}
	for i := 0; i < len(header); i++ {
		h, w := header[i], want[i]
		if h == '-' {
			h = '_'
		}
		if 'A' <= h && h <= 'Z' {
			h += 'a' - 'A'
		}
		if 'A' <= w && w <= 'Z' {
			w += 'a' - 'A'
		}
		if h != w {
			return false
		}
	}
	return true
}

// headerValue returns the single field matching the variable suffix name;
// ok is false when several fields match (the caller then joins them).
// authority stands in for a missing Host field: in HTTP/2 nginx treats
// :authority as the Host header.
func headerValue(hs []hpack.HeaderField, name, authority string) (string, bool) {
	if authority != "" && name == "host" {
		return authority, true
	}
	found, n := "", 0
	for i := range hs {
		if varNameMatches(hs[i].Name, name) {
			found = hs[i].Value
			n++
		}
	}
	return found, n <= 1
}

func appendHeaderValues(dst []byte, hs []hpack.HeaderField, name, sep string) []byte {
	first := true
	for i := range hs {
		if varNameMatches(hs[i].Name, name) {
			if !first {
				dst = append(dst, sep...)
			}
			dst = append(dst, hs[i].Value...)
			first = false
		}
	}
	return dst
}

// argValue is $arg_NAME: the value of the first "NAME=value" pair of the
// query string, name compared without case, value not decoded.
// found says whether such a pair exists (nginx's "not found" otherwise).
func argValue(args, name string) (value string, found bool) {
	for args != "" {
		pair := args
		if i := strings.IndexByte(args, '&'); i >= 0 {
			pair, args = args[:i], args[i+1:]
		} else {
			args = ""
		}
		if len(pair) > len(name) && pair[len(name)] == '=' && strings.EqualFold(pair[:len(name)], name) {
			return pair[len(name)+1:], true
		}
	}
	return "", false
}

// cookieValue is $cookie_NAME: the value of the first cookie with that
// name (compared without case) in any Cookie field.
// found says whether such a cookie exists.
func cookieValue(hs []hpack.HeaderField, name string) (value string, found bool) {
	for i := range hs {
		if hs[i].Name != "cookie" {
			continue
		}
		v := hs[i].Value
		for v != "" {
			c := v
			if j := strings.IndexByte(v, ';'); j >= 0 {
				c, v = v[:j], v[j+1:]
			} else {
				v = ""
			}
			c = strings.TrimLeft(c, " \t")
			if len(c) > len(name) && c[len(name)] == '=' && strings.EqualFold(c[:len(name)], name) {
				return strings.TrimRight(c[len(name)+1:], " \t"), true
			}
		}
	}
	return "", false
}

// remoteUser is $remote_user: the user name of Basic authorization.
func remoteUser(auth string) string {
	if len(auth) < 6 || !strings.EqualFold(auth[:6], "basic ") {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth[6:]))
	if err != nil {
		return ""
	}
	user, _, _ := strings.Cut(string(raw), ":")
	return user
}

// capture returns $n of the last regex match that had captures.
func (r *Request) capture(n int) string {
	if 2*n+1 >= len(r.caps) || r.caps[2*n] < 0 {
		return ""
	}
	return r.capSubj[r.caps[2*n]:r.caps[2*n+1]]
}
