package route

import (
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"time"

	"golang.org/x/net/http2/hpack"
)

// The variable table: one row per variable gproxy fills, with its name,
// flags and getter, as nginx's ngx_http_variable_t rows. Adding a variable
// is one row here; the parser's list of accepted names
// (parser/config/variables_gen.go) is generated from these rows by
// `go test ./proxy/route -run TestVariableList -update-vars`.

// varFlag describes a row.
type varFlag uint8

const (
	// varPrefix: the row is a family; its name is a prefix and the rest
	// of a variable's name is the row's argument (http_NAME).
	varPrefix varFlag = 1 << iota
	// varOwn: gproxy's own variable, which nginx does not have; a
	// configuration may define one of the same name (map, set), and its
	// definition wins.
	varOwn
)

// variable is one row. A value held as a string already is given by str
// (ok false: it must be formatted after all, e.g. a header sent twice);
// otherwise, or then, app appends it. found reports nginx's "not found"
// (false) as opposed to empty; nil means always found.
type variable struct {
	name  string
	flags varFlag
	str   func(t *Table, ref varRef, r *Request) (string, bool)
	app   func(t *Table, dst []byte, ref varRef, r *Request) []byte
	found func(t *Table, ref varRef, r *Request) bool
}

// varRef is a resolved variable name: a row with its argument, or one of
// the configuration's own variables (a map, a set variable, a capture).
type varRef struct {
	v   *variable
	arg string  // the family argument: header, argument or cookie name
	n   int     // capture number, named-capture or set slot
	m   *mapVar // for a map target
}

func str(f func(t *Table, r *Request) string) func(*Table, varRef, *Request) (string, bool) {
	return func(t *Table, _ varRef, r *Request) (string, bool) { return f(t, r), true }
}

func app(f func(t *Table, dst []byte, r *Request) []byte) func(*Table, []byte, varRef, *Request) []byte {
	return func(t *Table, dst []byte, _ varRef, r *Request) []byte { return f(t, dst, r) }
}

func upstreamsFound(_ *Table, _ varRef, r *Request) bool { return len(r.Upstreams) > 0 }

func upstreamList(k upstreamField) func(*Table, []byte, varRef, *Request) []byte {
	return app(func(_ *Table, dst []byte, r *Request) []byte {
		for i := range r.Upstreams {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendUpstream(dst, k, &r.Upstreams[i])
		}
		return dst
	})
}

// headerFamily is a family read from a list of header fields.
func headerFamily(name string, fields func(r *Request) []hpack.HeaderField, sep string) variable {
	return variable{name: name, flags: varPrefix,
		str: func(_ *Table, ref varRef, r *Request) (string, bool) { return headerValue(fields(r), ref.arg, "") },
		app: func(_ *Table, dst []byte, ref varRef, r *Request) []byte {
			return appendHeaderValues(dst, fields(r), ref.arg, sep)
		},
		found: func(_ *Table, ref varRef, r *Request) bool { return hasHeader(fields(r), ref.arg) },
	}
}

var (
	remoteUserVar = &variable{name: "remote_user",
		app: app(func(_ *Table, dst []byte, r *Request) []byte {
			return append(dst, remoteUser(r.header("authorization"))...)
		}),
		found: func(_ *Table, _ varRef, r *Request) bool { return remoteUser(r.header("authorization")) != "" }}
	schemeVar = &variable{name: "scheme", str: str(func(_ *Table, r *Request) string {
		if r.Scheme == "" {
			return "http"
		}
		return r.Scheme
	})}

	// Rows of the configuration's own variables, never listed by name.
	mapRow = &variable{name: "map"}
	setRow = &variable{name: "set", str: func(_ *Table, ref varRef, r *Request) (string, bool) {
		if ref.n < len(r.setVals) {
			return r.setVals[ref.n], true
		}
		return "", true
	}}
	captureRow = &variable{name: "$N", str: func(_ *Table, ref varRef, r *Request) (string, bool) { return r.capture(ref.n), true }}
	namedRow   = &variable{name: "named capture", str: func(_ *Table, ref varRef, r *Request) (string, bool) {
		if ref.n < len(r.namedCaps) {
			return r.namedCaps[ref.n], true
		}
		return "", true
	}}
)

// variables is the table. Families come after the fixed names; a name is
// looked up exactly first, then by prefix in this order.
var variables = []*variable{
	{name: "remote_addr", app: app(func(_ *Table, dst []byte, r *Request) []byte { return appendIP(dst, r.RemoteAddr) })},
	{name: "remote_port", app: app(func(_ *Table, dst []byte, r *Request) []byte { return appendPort(dst, r.RemoteAddr) })},
	{name: "binary_remote_addr", app: app(func(_ *Table, dst []byte, r *Request) []byte { return appendBinaryIP(dst, r.RemoteAddr) })},
	{name: "realip_remote_addr", app: app(func(_ *Table, dst []byte, r *Request) []byte { return appendIP(dst, r.realIPAddr()) })},
	{name: "realip_remote_port", app: app(func(_ *Table, dst []byte, r *Request) []byte { return appendPort(dst, r.realIPAddr()) })},
	{name: "server_addr", app: app(func(_ *Table, dst []byte, r *Request) []byte { return appendIP(dst, r.LocalAddr) })},
	{name: "server_port", app: app(func(_ *Table, dst []byte, r *Request) []byte { return appendPort(dst, r.LocalAddr) })},
	{name: "server_name", str: str(func(t *Table, r *Request) string { return t.serverName(r.Server) })},
	schemeVar,
	{name: "host", str: str(func(t *Table, r *Request) string { return t.host(r) })},
	{name: "hostname", str: str(func(t *Table, _ *Request) string { return t.hostname })},
	{name: "request_method", str: str(func(_ *Table, r *Request) string { return r.Method })},
	{name: "request_uri", str: str(func(_ *Table, r *Request) string { return r.Path })},
	{name: "uri", str: str(func(_ *Table, r *Request) string { u, _ := r.uri(); return u })},
	{name: "document_uri", str: str(func(_ *Table, r *Request) string { u, _ := r.uri(); return u })},
	{name: "args", str: str(func(_ *Table, r *Request) string { return r.args() }),
		found: func(_ *Table, _ varRef, r *Request) bool { return r.args() != "" }},
	{name: "query_string", str: str(func(_ *Table, r *Request) string { return r.args() }),
		found: func(_ *Table, _ varRef, r *Request) bool { return r.args() != "" }},
	{name: "is_args", str: str(func(_ *Table, r *Request) string {
		if r.args() != "" {
			return "?"
		}
		return ""
	})},
	{name: "https", str: str(func(_ *Table, r *Request) string {
		if r.Scheme == "https" {
			return "on"
		}
		return ""
	})},
	{name: "content_type", str: str(func(_ *Table, r *Request) string { return r.header("content-type") }),
		found: func(_ *Table, _ varRef, r *Request) bool { return hasHeader(r.Headers, "content_type") }},
	{name: "content_length", str: str(func(_ *Table, r *Request) string { return r.header("content-length") }),
		found: func(_ *Table, _ varRef, r *Request) bool { return hasHeader(r.Headers, "content_length") }},
	// $request_body: the body when it was read whole before proxying
	// (mirror_request_body), as in nginx; otherwise not found.
	{name: "request_body", app: app(func(_ *Table, dst []byte, r *Request) []byte { return append(dst, r.RequestBody...) }),
		found: func(_ *Table, _ varRef, r *Request) bool { return r.RequestBody != nil }},
	{name: "server_protocol", str: str(func(_ *Table, r *Request) string { return r.Proto })},
	{name: "request", app: app(func(_ *Table, dst []byte, r *Request) []byte {
		dst = append(dst, r.Method...)
		dst = append(dst, ' ')
		dst = append(dst, r.Path...)
		dst = append(dst, ' ')
		return append(dst, r.Proto...)
	})},
	{name: "request_id", app: app(func(_ *Table, dst []byte, r *Request) []byte {
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
	})},
	{name: "request_length", app: app(func(_ *Table, dst []byte, r *Request) []byte { return strconv.AppendInt(dst, r.RequestLength, 10) })},
	remoteUserVar,
	{name: "time_local", app: app(func(_ *Table, dst []byte, r *Request) []byte {
		return r.end().AppendFormat(dst, "02/Jan/2006:15:04:05 -0700")
	})},
	{name: "time_iso8601", app: app(func(_ *Table, dst []byte, r *Request) []byte {
		return r.end().AppendFormat(dst, "2006-01-02T15:04:05-07:00")
	})},
	{name: "msec", app: app(func(_ *Table, dst []byte, r *Request) []byte {
		return appendMillis(dst, time.Duration(r.end().UnixMilli())*time.Millisecond)
	})},
	{name: "request_time", app: app(func(_ *Table, dst []byte, r *Request) []byte {
		d := r.end().Sub(r.Start)
		if r.Start.IsZero() || d < 0 {
			d = 0
		}
		return appendMillis(dst, d)
	})},
	{name: "connection", app: app(func(_ *Table, dst []byte, r *Request) []byte { return strconv.AppendUint(dst, r.ConnID, 10) })},
	{name: "connection_requests", app: app(func(_ *Table, dst []byte, r *Request) []byte {
		return strconv.AppendInt(dst, int64(r.ConnRequests), 10)
	})},
	{name: "pid", str: str(func(t *Table, _ *Request) string { return t.pid })},
	{name: "proxy_add_x_forwarded_for", app: app(func(_ *Table, dst []byte, r *Request) []byte {
		n := len(dst)
		dst = appendHeaderValues(dst, r.Headers, "x_forwarded_for", ", ")
		if len(dst) > n {
			dst = append(dst, ", "...)
		}
		return appendIP(dst, r.RemoteAddr)
	})},
	{name: "status", app: app(func(_ *Table, dst []byte, r *Request) []byte {
		if r.Status <= 0 {
			return append(dst, "000"...)
		}
		return strconv.AppendInt(dst, int64(r.Status), 10)
	})},
	{name: "bytes_sent", app: app(func(_ *Table, dst []byte, r *Request) []byte { return strconv.AppendInt(dst, r.BytesSent, 10) })},
	{name: "body_bytes_sent", app: app(func(_ *Table, dst []byte, r *Request) []byte { return strconv.AppendInt(dst, r.BodyBytesSent, 10) })},
	{name: "upstream_addr", app: upstreamList(upAddr), found: upstreamsFound},
	{name: "upstream_status", app: upstreamList(upStatus), found: upstreamsFound},
	{name: "upstream_response_time", app: upstreamList(upResponseTime), found: upstreamsFound},
	{name: "upstream_connect_time", app: upstreamList(upConnectTime), found: upstreamsFound},
	{name: "grpc_status", flags: varOwn, str: str(func(_ *Table, r *Request) string { return r.GRPCStatus }),
		found: func(_ *Table, _ varRef, r *Request) bool { return r.GRPCStatus != "" }},
	{name: "grpc_message", flags: varOwn, str: str(func(_ *Table, r *Request) string { return r.GRPCMessage }),
		found: func(_ *Table, _ varRef, r *Request) bool { return r.GRPCMessage != "" }},
	{name: "limit_req_status", str: str(func(_ *Table, r *Request) string { return r.LimitReqStatus }),
		found: func(_ *Table, _ varRef, r *Request) bool { return r.LimitReqStatus != "" }},
	{name: "limit_conn_status", str: str(func(_ *Table, r *Request) string { return r.LimitConnStatus }),
		found: func(_ *Table, _ varRef, r *Request) bool { return r.LimitConnStatus != "" }},

	// Families.
	{name: "http_", flags: varPrefix,
		str: func(_ *Table, ref varRef, r *Request) (string, bool) {
			return headerValue(r.Headers, ref.arg, r.Authority)
		},
		app: func(_ *Table, dst []byte, ref varRef, r *Request) []byte {
			// Several fields with this name: nginx joins them (cookies
			// with "; ").
			sep := ", "
			if ref.arg == "cookie" {
				sep = "; "
			}
			return appendHeaderValues(dst, r.Headers, ref.arg, sep)
		},
		found: func(_ *Table, ref varRef, r *Request) bool {
			return (ref.arg == "host" && r.Authority != "") || hasHeader(r.Headers, ref.arg)
		}},
	ptr(headerFamily("sent_http_", func(r *Request) []hpack.HeaderField { return r.ResponseHeaders }, ", ")),
	ptr(headerFamily("sent_trailer_", func(r *Request) []hpack.HeaderField { return r.ResponseTrailers }, ", ")),
	ptr(headerFamily("upstream_http_", func(r *Request) []hpack.HeaderField { return r.UpstreamHeaders }, ", ")),
	ptr(headerFamily("upstream_trailer_", func(r *Request) []hpack.HeaderField { return r.UpstreamTrailers }, ", ")),
	{name: "arg_", flags: varPrefix,
		str: func(_ *Table, ref varRef, r *Request) (string, bool) {
			v, _ := argValue(r.args(), ref.arg)
			return v, true
		},
		found: func(_ *Table, ref varRef, r *Request) bool {
			_, found := argValue(r.args(), ref.arg)
			return found
		}},
	{name: "cookie_", flags: varPrefix,
		str: func(_ *Table, ref varRef, r *Request) (string, bool) {
			v, _ := cookieValue(r.Headers, ref.arg)
			return v, true
		},
		found: func(_ *Table, ref varRef, r *Request) bool {
			_, found := cookieValue(r.Headers, ref.arg)
			return found
		}},
}

func ptr(v variable) *variable { return &v }

// byName indexes the fixed-name rows; families lists the prefix rows.
var (
	byName   = map[string]*variable{}
	families []*variable
)

func init() {
	variables = append(variables, sslVars...)
	for _, v := range variables {
		if v.flags&varPrefix != 0 {
			families = append(families, v)
			continue
		}
		byName[v.name] = v
	}
}
