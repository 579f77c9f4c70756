package route

import (
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"golang.org/x/net/http2/hpack"
)

// varKind names how a variable gets its value.
type varKind uint8

const (
	vNone varKind = iota
	vRemoteAddr
	vRemotePort
	vServerAddr
	vServerPort
	vServerName
	vScheme
	vHost
	vHostname
	vRequestMethod
	vRequestURI
	vURI
	vArgs
	vIsArgs
	vHTTPS
	vContentType
	vContentLength
	vServerProtocol
	vRequest
	vRequestID
	vRequestLength
	vRemoteUser
	vTimeLocal
	vTimeISO8601
	vMsec
	vRequestTime
	vConnection
	vConnectionRequests
	vPID
	vProxyAddXFF
	vStatus
	vBytesSent
	vBodyBytesSent
	vUpstreamAddr
	vUpstreamStatus
	vUpstreamResponseTime
	vUpstreamConnectTime
	vGRPCStatus
	vGRPCMessage
	vSSLProtocol
	vSSLCipher
	vSSLServerName
	vSSLSessionReused
	vSSLClientVerify
	vSSLClientSDN
	vSSLClientIDN
	vSSLClientSerial
	vSSLClientFingerprint
	vBinaryRemoteAddr
	vRealIPRemoteAddr
	vRealIPRemotePort
	vLimitReqStatus
	vLimitConnStatus
	// Families with an argument.
	vHTTP            // http_NAME
	vSentHTTP        // sent_http_NAME
	vUpstreamHTTP    // upstream_http_NAME
	vUpstreamTrailer // upstream_trailer_NAME
	vSentTrailer     // sent_trailer_NAME
	vArg             // arg_NAME
	vCookie          // cookie_NAME
	vMap             // a map target
	vSet             // a variable of set
	vCapture         // $0..$9
	vNamed           // a named regex capture
)

// builtinVars are the fixed-name variables gproxy knows.
var builtinVars = map[string]varKind{
	"remote_addr":               vRemoteAddr,
	"remote_port":               vRemotePort,
	"server_addr":               vServerAddr,
	"server_port":               vServerPort,
	"server_name":               vServerName,
	"scheme":                    vScheme,
	"host":                      vHost,
	"hostname":                  vHostname,
	"request_method":            vRequestMethod,
	"request_uri":               vRequestURI,
	"uri":                       vURI,
	"document_uri":              vURI,
	"args":                      vArgs,
	"query_string":              vArgs,
	"is_args":                   vIsArgs,
	"https":                     vHTTPS,
	"content_type":              vContentType,
	"content_length":            vContentLength,
	"server_protocol":           vServerProtocol,
	"request":                   vRequest,
	"request_id":                vRequestID,
	"request_length":            vRequestLength,
	"remote_user":               vRemoteUser,
	"time_local":                vTimeLocal,
	"time_iso8601":              vTimeISO8601,
	"msec":                      vMsec,
	"request_time":              vRequestTime,
	"connection":                vConnection,
	"connection_requests":       vConnectionRequests,
	"pid":                       vPID,
	"proxy_add_x_forwarded_for": vProxyAddXFF,
	"status":                    vStatus,
	"bytes_sent":                vBytesSent,
	"body_bytes_sent":           vBodyBytesSent,
	"upstream_addr":             vUpstreamAddr,
	"upstream_status":           vUpstreamStatus,
	"upstream_response_time":    vUpstreamResponseTime,
	"upstream_connect_time":     vUpstreamConnectTime,
	"grpc_status":               vGRPCStatus,
	"grpc_message":              vGRPCMessage,
	"ssl_protocol":              vSSLProtocol,
	"ssl_cipher":                vSSLCipher,
	"ssl_server_name":           vSSLServerName,
	"ssl_session_reused":        vSSLSessionReused,
	"ssl_client_verify":         vSSLClientVerify,
	"ssl_client_s_dn":           vSSLClientSDN,
	"ssl_client_i_dn":           vSSLClientIDN,
	"ssl_client_serial":         vSSLClientSerial,
	"ssl_client_fingerprint":    vSSLClientFingerprint,
	"binary_remote_addr":        vBinaryRemoteAddr,
	"realip_remote_addr":        vRealIPRemoteAddr,
	"realip_remote_port":        vRealIPRemotePort,
	"limit_req_status":          vLimitReqStatus,
	"limit_conn_status":         vLimitConnStatus,
}

// varRef is a resolved variable name.
type varRef struct {
	kind varKind
	arg  string // header, argument or cookie name; capture number
	n    int    // capture number or named-capture slot
	m    *mapVar
}

// resolve maps a variable name (without '$') to how its value is found.
// Names are case-insensitive in nginx; the parser hands them over as
// written, so a name with upper-case letters is lowered here (allocating,
// but only for such unusual names).
func (t *Table) resolve(name string) (varRef, bool) {
	// A map of the configuration comes first: it may define one of
	// gproxy's own variables ($grpc_status), and the user's wins.
	if m, ok := t.maps[name]; ok {
		return varRef{kind: vMap, m: m}, true
	}
	if slot, ok := t.setSlots[name]; ok {
		return varRef{kind: vSet, n: slot}, true
	}
	if k, ok := builtinVars[name]; ok {
		return varRef{kind: k}, true
	}
	if slot, ok := t.named[name]; ok {
		return varRef{kind: vNamed, n: slot}, true
	}
	switch {
	case strings.HasPrefix(name, "http_") && len(name) > 5:
		return varRef{kind: vHTTP, arg: name[5:]}, true
	case strings.HasPrefix(name, "sent_http_") && len(name) > 10:
		return varRef{kind: vSentHTTP, arg: name[10:]}, true
	case strings.HasPrefix(name, "upstream_http_") && len(name) > 14:
		return varRef{kind: vUpstreamHTTP, arg: name[14:]}, true
	case strings.HasPrefix(name, "upstream_trailer_") && len(name) > 17:
		return varRef{kind: vUpstreamTrailer, arg: name[17:]}, true
	case strings.HasPrefix(name, "sent_trailer_") && len(name) > 13:
		return varRef{kind: vSentTrailer, arg: name[13:]}, true
	case strings.HasPrefix(name, "arg_") && len(name) > 4:
		return varRef{kind: vArg, arg: name[4:]}, true
	case strings.HasPrefix(name, "cookie_") && len(name) > 7:
		return varRef{kind: vCookie, arg: name[7:]}, true
	case len(name) == 1 && '0' <= name[0] && name[0] <= '9':
		return varRef{kind: vCapture, n: int(name[0] - '0')}, true
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
	switch ref.kind {
	case vServerName:
		return t.serverName(r.Server), true
	case vScheme:
		if r.Scheme == "" {
			return "http", true
		}
		return r.Scheme, true
	case vHost:
		return t.host(r), true
	case vHostname:
		return t.hostname, true
	case vRequestMethod:
		return r.Method, true
	case vRequestURI:
		return r.Path, true
	case vURI:
		u, _ := r.uri()
		return u, true
	case vArgs:
		return r.args(), true
	case vIsArgs:
		if r.args() != "" {
			return "?", true
		}
		return "", true
	case vHTTPS:
		if r.Scheme == "https" {
			return "on", true
		}
		return "", true
	case vContentType:
		return r.header("content-type"), true
	case vContentLength:
		return r.header("content-length"), true
	case vServerProtocol:
		return r.Proto, true
	case vPID:
		return t.pid, true
	case vGRPCStatus:
		return r.GRPCStatus, true
	case vGRPCMessage:
		return r.GRPCMessage, true
	case vSSLProtocol, vSSLCipher, vSSLServerName, vSSLSessionReused, vSSLClientVerify,
		vSSLClientSDN, vSSLClientIDN, vSSLClientSerial, vSSLClientFingerprint:
		return tlsValue(ref.kind, r.TLS)
	case vLimitReqStatus:
		return r.LimitReqStatus, true
	case vLimitConnStatus:
		return r.LimitConnStatus, true
	case vHTTP:
		return headerValue(r.Headers, ref.arg, r.Authority)
	case vSentHTTP:
		return headerValue(r.ResponseHeaders, ref.arg, "")
	case vUpstreamHTTP:
		return headerValue(r.UpstreamHeaders, ref.arg, "")
	case vUpstreamTrailer:
		return headerValue(r.UpstreamTrailers, ref.arg, "")
	case vSentTrailer:
		return headerValue(r.ResponseTrailers, ref.arg, "")
	case vArg:
		v, _ := argValue(r.args(), ref.arg)
		return v, true
	case vCookie:
		v, _ := cookieValue(r.Headers, ref.arg)
		return v, true
	case vCapture:
		return r.capture(ref.n), true
	case vSet:
		if ref.n < len(r.setVals) {
			return r.setVals[ref.n], true
		}
		return "", true
	case vNamed:
		if ref.n < len(r.namedCaps) {
			return r.namedCaps[ref.n], true
		}
		return "", true
	}
	return "", false
}

// appendValue appends the value of one variable.
func (t *Table) appendValue(dst []byte, ref varRef, r *Request, depth int) []byte {
	if s, ok := t.stringValue(ref, r); ok {
		return append(dst, s...)
	}
	switch ref.kind {
	case vRemoteAddr:
		return appendIP(dst, r.RemoteAddr)
	case vRemotePort:
		return appendPort(dst, r.RemoteAddr)
	case vBinaryRemoteAddr:
		return appendBinaryIP(dst, r.RemoteAddr)
	case vRealIPRemoteAddr:
		return appendIP(dst, r.realIPAddr())
	case vRealIPRemotePort:
		return appendPort(dst, r.realIPAddr())
	case vServerAddr:
		return appendIP(dst, r.LocalAddr)
	case vServerPort:
		return appendPort(dst, r.LocalAddr)
	case vRequest:
		dst = append(dst, r.Method...)
		dst = append(dst, ' ')
		dst = append(dst, r.Path...)
		dst = append(dst, ' ')
		return append(dst, r.Proto...)
	case vRequestID:
		if !r.idSet {
			var b [16]byte
			a, c := rand.Uint64(), rand.Uint64()
			for i := 0; i < 8; i++ {
				b[i], b[8+i] = byte(a>>(8*i)), byte(c>>(8*i))
			}
			hex.Encode(r.id[:], b[:])
			r.idSet = true
		}
		return append(dst, r.id[:]...)
	case vRequestLength:
		return strconv.AppendInt(dst, r.RequestLength, 10)
	case vRemoteUser:
		return append(dst, remoteUser(r.header("authorization"))...)
	case vTimeLocal:
		return r.end().AppendFormat(dst, "02/Jan/2006:15:04:05 -0700")
	case vTimeISO8601:
		return r.end().AppendFormat(dst, "2006-01-02T15:04:05-07:00")
	case vMsec:
		return appendMillis(dst, time.Duration(r.end().UnixMilli())*time.Millisecond)
	case vRequestTime:
		d := r.end().Sub(r.Start)
		if r.Start.IsZero() || d < 0 {
			d = 0
		}
		return appendMillis(dst, d)
	case vConnection:
		return strconv.AppendUint(dst, r.ConnID, 10)
	case vConnectionRequests:
		return strconv.AppendInt(dst, int64(r.ConnRequests), 10)
	case vProxyAddXFF:
		n := len(dst)
		dst = appendHeaderValues(dst, r.Headers, "x_forwarded_for", ", ")
		if len(dst) > n {
			dst = append(dst, ", "...)
		}
		return appendIP(dst, r.RemoteAddr)
	case vStatus:
		if r.Status <= 0 {
			return append(dst, "000"...)
		}
		return strconv.AppendInt(dst, int64(r.Status), 10)
	case vBytesSent:
		return strconv.AppendInt(dst, r.BytesSent, 10)
	case vBodyBytesSent:
		return strconv.AppendInt(dst, r.BodyBytesSent, 10)
	case vUpstreamAddr, vUpstreamStatus, vUpstreamResponseTime, vUpstreamConnectTime:
		for i, u := range r.Upstreams {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendUpstream(dst, ref.kind, &u)
		}
		return dst
	case vHTTP:
		// Several fields with this name: nginx joins them (cookies with "; ").
		sep := ", "
		if ref.arg == "cookie" {
			sep = "; "
		}
		return appendHeaderValues(dst, r.Headers, ref.arg, sep)
	case vSentHTTP:
		return appendHeaderValues(dst, r.ResponseHeaders, ref.arg, ", ")
	case vUpstreamHTTP:
		return appendHeaderValues(dst, r.UpstreamHeaders, ref.arg, ", ")
	case vUpstreamTrailer:
		return appendHeaderValues(dst, r.UpstreamTrailers, ref.arg, ", ")
	case vSentTrailer:
		return appendHeaderValues(dst, r.ResponseTrailers, ref.arg, ", ")
	case vMap:
		if depth >= maxDepth {
			return dst
		}
		return t.appendMap(dst, ref.m, r, depth+1)
	}
	return dst
}

func appendUpstream(dst []byte, k varKind, u *UpstreamAttempt) []byte {
	switch k {
	case vUpstreamAddr:
		return append(dst, u.Addr...)
	case vUpstreamStatus:
		if u.Status <= 0 {
			return append(dst, '-')
		}
		return strconv.AppendInt(dst, int64(u.Status), 10)
	case vUpstreamResponseTime:
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
