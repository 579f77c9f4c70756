package proxy

import (
	"strings"

	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

// hopByHop are headers that describe one connection, never forwarded.
func hopByHop(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// upstreamRequest builds the header list sent upstream, as
// ngx_http_grpc_module does: the client's :method and :path, :scheme of
// grpc_pass, :authority = the grpc_pass host (the upstream name) unless
// grpc_set_header sets Host (then a host field instead, as nginx sends
// it); then grpc_set_header values (an empty value
// removes the header); then the client's headers minus hop-by-hop ones,
// Host, Expect and those grpc_set_header names. TE is sent only as
// "trailers", and only when the client sent it. Content-Length passes.
func upstreamRequest(dst []hpack.HeaderField, fields []hpack.HeaderField, scheme, authority string,
	loc *route.Location, tbl *route.Table, r *route.Request) []hpack.HeaderField {
	var method, path string
	te := false
	for _, f := range fields {
		switch f.Name {
		case ":method":
			method = f.Value
		case ":path":
			path = f.Value
		case "te":
			te = strings.Contains(f.Value, "trailers")
		}
	}
	set := loc.SetHeaders
	if p, ok := r.UpstreamPath(); ok {
		path = p // rewrite or set $args changed it
	}
	dst = append(dst,
		hpack.HeaderField{Name: ":method", Value: method},
		hpack.HeaderField{Name: ":scheme", Value: scheme},
		hpack.HeaderField{Name: ":path", Value: path},
	)
	// grpc_set_header Host replaces :authority by a host field, as nginx
	// sends it (RFC 9113 section 8.3.1 allows either).
	hostSet := false
	for _, h := range set {
		hostSet = hostSet || h.Name == "host"
	}
	if !hostSet {
		dst = append(dst, hpack.HeaderField{Name: ":authority", Value: authority})
	}
	for _, h := range set {
		if v := tbl.Expand(h.Value, r); v != "" {
			dst = append(dst, hpack.HeaderField{Name: h.Name, Value: v})
		}
	}
	if te {
		dst = append(dst, hpack.HeaderField{Name: "te", Value: "trailers"})
	}
next:
	for _, f := range fields {
		if f.IsPseudo() || hopByHop(f.Name) {
			continue
		}
		switch f.Name {
		case "host", "expect", "te":
			continue
		}
		for _, h := range set {
			if h.Name == f.Name {
				continue next
			}
		}
		dst = append(dst, f)
	}
	return dst
}

// clientResponse filters upstream response headers (or trailers) for the
// client: hop-by-hop headers and the location's hidden ones are dropped
// (grpc_hide_header / grpc_pass_header, via route). The common case, no
// header to drop, returns fields itself without copying.
func clientResponse(fields []hpack.HeaderField, hide map[string]bool) []hpack.HeaderField {
	drop := func(f hpack.HeaderField) bool { return hopByHop(f.Name) || hide[f.Name] }
	i := 0
	for i < len(fields) && !drop(fields[i]) {
		i++
	}
	if i == len(fields) {
		return fields
	}
	out := append([]hpack.HeaderField(nil), fields[:i]...)
	for _, f := range fields[i+1:] {
		if !drop(f) {
			out = append(out, f)
		}
	}
	return out
}

// fieldsSize is the size a header list counts for in $bytes_sent and
// $request_length: each field as HTTP/1.1 would write it ("name: value"
// and CRLF). HPACK compresses what HTTP/2 actually sends; the codec does
// not report that size per stream.
func fieldsSize(fields []hpack.HeaderField) int64 {
	n := 0
	for i := range fields {
		n += len(fields[i].Name) + len(fields[i].Value) + 4
	}
	return int64(n)
}

// upstreamAuthority is the :authority sent upstream for a grpc_pass
// target: its name, except that a Unix socket (grpc://unix:/path) gets
// "localhost", as nginx sends: HTTP/2 servers built on nghttp2 or Node
// reject a socket path there.
func upstreamAuthority(name string) string {
	if strings.HasPrefix(name, "unix:") {
		return "localhost"
	}
	return name
}
