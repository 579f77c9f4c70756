package route

import (
	"golang.org/x/net/http2/hpack"
)

// Var is one variable resolved against a Table once, for callers that
// expand variables one at a time: the access log escapes each value on its
// own and prints "-" for a variable nginx calls "not found".
type Var struct {
	ref varRef
}

// Var resolves a variable name (without '$'); ok is false for a name the
// table cannot expand.
func (t *Table) Var(name string) (v Var, ok bool) {
	ref, ok := t.resolve(name)
	return Var{ref: ref}, ok
}

// AppendVar appends the value of v for r, as AppendExpand appends it inside
// a template, allocating nothing beyond growing dst in the same cases.
// found is false where nginx marks the variable "not found" rather than
// empty: an absent request header, response header, argument or cookie,
// $args and $query_string without a query, $remote_user without Basic
// credentials or with an empty user name, $upstream_* before any upstream
// attempt, and gproxy's $grpc_status and $grpc_message when none was sent.
// dst is returned unchanged then.
func (t *Table) AppendVar(dst []byte, v Var, r *Request) (out []byte, found bool) {
	if v.ref.kind == vRemoteUser { // decoded once, not for found and again for the value
		u := remoteUser(r.header("authorization"))
		return append(dst, u...), u != ""
	}
	if !t.found(v.ref, r) {
		return dst, false
	}
	return t.appendValue(dst, v.ref, r, 0), true
}

// found reports whether a variable has a value for r, by nginx's rules.
func (t *Table) found(ref varRef, r *Request) bool {
	switch ref.kind {
	case vHTTP:
		return (ref.arg == "host" && r.Authority != "") || hasHeader(r.Headers, ref.arg)
	case vSentHTTP:
		return hasHeader(r.ResponseHeaders, ref.arg)
	case vUpstreamHTTP:
		return hasHeader(r.UpstreamHeaders, ref.arg)
	case vUpstreamTrailer:
		return hasHeader(r.UpstreamTrailers, ref.arg)
	case vSentTrailer:
		return hasHeader(r.ResponseTrailers, ref.arg)
	case vContentType:
		return hasHeader(r.Headers, "content_type")
	case vContentLength:
		return hasHeader(r.Headers, "content_length")
	case vArgs:
		return r.args() != ""
	case vArg:
		_, found := argValue(r.args(), ref.arg)
		return found
	case vCookie:
		_, found := cookieValue(r.Headers, ref.arg)
		return found
	case vUpstreamAddr, vUpstreamStatus, vUpstreamResponseTime, vUpstreamConnectTime:
		return len(r.Upstreams) > 0
	case vGRPCStatus:
		return r.GRPCStatus != ""
	case vGRPCMessage:
		return r.GRPCMessage != ""
	case vSSLProtocol, vSSLCipher, vSSLServerName, vSSLSessionReused, vSSLClientVerify,
		vSSLClientSDN, vSSLClientIDN, vSSLClientSerial, vSSLClientFingerprint:
		// nginx's ssl variables are not found when empty (no client
		// certificate, no SNI) or on a cleartext connection.
		v, ok := tlsValue(ref.kind, r.TLS)
		return ok && v != ""
	case vLimitReqStatus:
		return r.LimitReqStatus != ""
	case vLimitConnStatus:
		return r.LimitConnStatus != ""
	}
	return true
}

func hasHeader(hs []hpack.HeaderField, name string) bool {
	for i := range hs {
		if varNameMatches(hs[i].Name, name) {
			return true
		}
	}
	return false
}
