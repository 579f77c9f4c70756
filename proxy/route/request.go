package route

import (
	"net"
	"net/url"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"golang.org/x/net/http2/hpack"
)

// Request is what route knows about one request (one HTTP/2 stream or one
// HTTP/1.1 request). The engine fills the exported fields; route keeps a few
// per-request results (normalised URI, $request_id, regex captures) in
// unexported fields, so a Request must not be shared between requests
// without being reset (`*r = route.Request{}`), nor used by two goroutines
// at once.
type Request struct {
	Method    string
	Scheme    string // "http" or "https"; "" means "http"
	Authority string // :authority, or the Host header for HTTP/1.1
	Path      string // the request target with its query string (:path)

	// Headers are the request's regular header fields, lower-case names,
	// in order (no pseudo-headers needed).
	Headers []hpack.HeaderField

	RemoteAddr net.Addr
	LocalAddr  net.Addr
	// ConnAddr is the connection's own client address when the realip
	// module replaced RemoteAddr ($realip_remote_addr); nil otherwise.
	ConnAddr net.Addr

	// Server is the virtual server chosen for the request; Route sets it.
	Server *config.Server

	// TLS is the connection's TLS state ($ssl_* variables); nil on a
	// cleartext connection.
	TLS *TLS
	// IfSettings are the settings of the last location-level if block
	// whose condition held and that sets any (add_header, error_page,
	// ...): nginx then uses the if block's configuration for the
	// request. nil otherwise.
	IfSettings *config.Settings

	// UpstreamHeaders and UpstreamTrailers are the response header and
	// trailer fields the upstream sent ($upstream_http_NAME,
	// $upstream_trailer_NAME); ResponseTrailers are the trailers sent to
	// the client ($sent_trailer_NAME).
	UpstreamHeaders  []hpack.HeaderField
	UpstreamTrailers []hpack.HeaderField
	ResponseTrailers []hpack.HeaderField

	Proto        string // "HTTP/2.0" or "HTTP/1.1"
	ConnID       uint64 // $connection
	ConnRequests int    // $connection_requests
	Start        time.Time

	// The fields below describe the response; the engine fills them as
	// the stream ends, before writing the access log. Zero values print
	// as nginx prints unknown values.

	// End is when the response was finished; zero means "now" for $msec,
	// $request_time, $time_local and $time_iso8601.
	End time.Time

	Status        int    // $status; 0 prints as "000"
	BytesSent     int64  // $bytes_sent
	BodyBytesSent int64  // $body_bytes_sent
	RequestLength int64  // $request_length
	RequestBody   []byte // $request_body: the whole body when it was read before proxying; nil otherwise

	// ResponseHeaders are the response header fields sent to the client,
	// lower-case names ($sent_http_NAME).
	ResponseHeaders []hpack.HeaderField

	// Upstreams lists each upstream attempt in order ($upstream_addr,
	// $upstream_status, $upstream_response_time, $upstream_connect_time
	// print them separated by ", ").
	Upstreams []UpstreamAttempt

	GRPCStatus  string // grpc-status sent to the client ($grpc_status)
	GRPCMessage string // grpc-message sent to the client ($grpc_message)

	// LimitReqStatus and LimitConnStatus are $limit_req_status and
	// $limit_conn_status: "PASSED", "DELAYED", "REJECTED",
	// "DELAYED_DRY_RUN", "REJECTED_DRY_RUN"; "" when no limit applied.
	LimitReqStatus  string
	LimitConnStatus string

	// IfPass is the grpc_pass of the last if block whose condition held
	// and that has one: the request is proxied there.
	IfPass *config.GRPCPass

	// Per-request results route computes once, and what set and rewrite
	// changed.
	setVals    []string // values of set variables, by Table slot
	argsVal    string   // the query string after set $args or rewrite
	argsSet    bool
	rewritten  bool // the URI or query string changed: see UpstreamPath
	uriChanged bool // a rewrite without flag changed the URI in this location
	uriVal     string
	uriState   uint8 // 0 not computed, 1 valid, 2 invalid
	idSet      bool
	id         [32]byte
	capSubj    string   // subject of the last regex match with captures
	caps       []int    // its submatch indexes ($0 $1 ...)
	namedCaps  []string // values of named captures, by Table slot
}

// UpstreamAttempt is one try of one upstream server for a request.
type UpstreamAttempt struct {
	Addr   string // "127.0.0.1:50051" or the upstream name when no server was chosen
	Status int    // HTTP status of the upstream response; 0 prints "-"
	// ResponseTime and ConnectTime print with millisecond resolution;
	// negative prints "-".
	ResponseTime time.Duration
	ConnectTime  time.Duration
}

// realIPAddr is the connection's client address, before realip.
func (r *Request) realIPAddr() net.Addr {
	if r.ConnAddr != nil {
		return r.ConnAddr
	}
	return r.RemoteAddr
}

// uri returns the normalised URI of the request (see NormalizePath),
// computing it once.
func (r *Request) uri() (string, bool) {
	switch r.uriState {
	case 1:
		return r.uriVal, true
	case 2:
		return "", false
	}
	u, ok := NormalizePath(r.Path)
	r.uriVal = u
	r.uriState = 2
	if ok {
		r.uriState = 1
	}
	return u, ok
}

// UpstreamPath is the :path to send upstream when rewrite or set $args
// changed the request (nginx then sends the URI, escaped, and the new
// query string); ok is false when the client's :path goes as it came.
func (r *Request) UpstreamPath() (path string, ok bool) {
	if !r.rewritten {
		return "", false
	}
	uri, _ := r.uri()
	p := (&url.URL{Path: uri}).EscapedPath()
	if a := r.args(); a != "" {
		p += "?" + a
	}
	return p, true
}

// args returns the query string of the request target, without '?'.
func (r *Request) args() string {
	if r.argsSet {
		return r.argsVal
	}
	for i := 0; i < len(r.Path); i++ {
		if r.Path[i] == '?' {
			return r.Path[i+1:]
		}
	}
	return ""
}

// header returns the first request header with the given lower-case name.
func (r *Request) header(name string) string {
	for i := range r.Headers {
		if r.Headers[i].Name == name {
			return r.Headers[i].Value
		}
	}
	return ""
}
