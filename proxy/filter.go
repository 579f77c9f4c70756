package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

// The response phase. Every answer gproxy gives passes through it, whoever
// made it: a proxied gRPC response (call.HandleHeaders), an error gproxy
// makes for a call (trailers-only or an error page), `return` and nginx's
// built-in pages (respond), and HTTP/1.1 (h1Respond). It is nginx's header
// filter chain reduced to what gproxy implements: Server and Date as the
// core header filter sends them, then add_header, and add_trailer on the
// trailers, each with nginx's rules.

// filterCtx is what the phase needs to know of one response: the settings
// that apply (the location's, an if block's, or the error page's), the
// variables' table and request.
type filterCtx struct {
	st  *config.Settings
	tbl *route.Table
	r   *route.Request
	// extra are fields the answer's maker adds before add_header's
	// (WWW-Authenticate of an auth_basic refusal).
	extra []hpack.HeaderField
}

// serverHeader is the Server field of every response: nginx sends its name
// there (with its version unless server_tokens is off); gproxy sends its
// own name without a version.
const serverHeader = "gproxy"

// addsFor reports whether add_header (or add_trailer) fields without
// "always" apply to a response of this status: nginx's list in
// ngx_http_headers_filter.
func addsFor(status int) bool {
	switch status {
	case 200, 201, 204, 206, 301, 302, 303, 304, 307, 308:
		return true
	}
	return false
}

// headerPhase appends the fields every response gets after the ones its
// maker set (:status first): server and date, then the add_header fields
// that apply to status.
func (f *filterCtx) headerPhase(fields []hpack.HeaderField, status int) []hpack.HeaderField {
	fields = append(fields,
		hpack.HeaderField{Name: "server", Value: serverHeader},
		hpack.HeaderField{Name: "date", Value: httpDate()})
	if f != nil {
		fields = append(fields, f.extra...)
	}
	return f.appendAdds(fields, f.adds(false), status)
}

// trailerPhase appends the add_trailer fields that apply to status.
func (f *filterCtx) trailerPhase(fields []hpack.HeaderField, status int) []hpack.HeaderField {
	return f.appendAdds(fields, f.adds(true), status)
}

func (f *filterCtx) adds(trailers bool) []config.AddHeader {
	if f == nil || f.st == nil {
		return nil
	}
	if trailers {
		return f.st.AddTrailers
	}
	return f.st.AddHeaders
}

// hasTrailers reports whether add_trailer has anything for status.
func (f *filterCtx) hasTrailers(status int) bool {
	for _, h := range f.adds(true) {
		if h.Always || addsFor(status) {
			return true
		}
	}
	return false
}

func (f *filterCtx) appendAdds(fields []hpack.HeaderField, adds []config.AddHeader, status int) []hpack.HeaderField {
	ok := addsFor(status)
	for _, h := range adds {
		if !h.Always && !ok {
			continue
		}
		// An empty value adds nothing, as in nginx.
		if v := f.tbl.Expand(h.Value, f.r); v != "" {
			fields = append(fields, hpack.HeaderField{Name: strings.ToLower(h.Name), Value: v})
		}
	}
	return fields
}

// httpDate is the Date field value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.sec == now {
		return d.text
	}
	d := &dateText{sec: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	sec  int64
	text string
}

var cachedDate atomic.Pointer[dateText]

// errorCode is the HTTP status nginx answers for a call gproxy fails
// before the response started: 504 for timeouts, 413 for a body over
// client_max_body_size, 502 otherwise. 0 means nginx has no such error
// (grpc-timeout expiring is gproxy's own): no error_page applies.
func errorCode(grpcCode int, cause error) int {
	switch {
	case cause == errDeadline:
		return 0
	case cause == errBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case grpcCode == codeDeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// pageFields builds the response of an error page or `return` for the
// client: the fields and body respond sends. A gRPC request answered with
// no body whose fields carry grpc-status (the error page pattern
// `add_header grpc-status 14; return 204;`) is sent as a gRPC
// trailers-only response, :status 200 and the gRPC content type, because
// gRPC clients take any other :status as a transport failure and never
// read grpc-status; see README.
func pageFields(a *route.Action, f *filterCtx, method string) (fields []hpack.HeaderField, body string, trailers []hpack.HeaderField) {
	body, ctype := actionBody(a)
	if ctype == "text/plain" && f != nil && f.st != nil && f.st.DefaultType != "" {
		ctype = f.st.DefaultType
	}
	code := a.Code
	fields = []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(code)}}
	fields = f.headerPhase(fields, code)
	if body == "" && f != nil && f.r != nil && isGRPC(f.r) && headerValue(fields, "grpc-status") != "" {
		fields[0].Value = "200"
		gtype := "application/grpc"
		if f.st != nil && strings.HasPrefix(f.st.DefaultType, "application/grpc") {
			gtype = f.st.DefaultType
		}
		fields = append(fields, hpack.HeaderField{Name: "content-type", Value: gtype})
		fields = f.trailerPhase(fields, code)
		return fields, "", nil
	}
	if a.Location != "" {
		fields = append(fields, hpack.HeaderField{Name: "location", Value: a.Location})
	}
	if ctype != "" && code != http.StatusNoContent {
		fields = append(fields, hpack.HeaderField{Name: "content-type", Value: ctype})
	}
	if code != http.StatusNoContent && code != http.StatusNotModified {
		fields = append(fields, hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
	}
	if method == "HEAD" {
		body = ""
	}
	if body != "" && f.hasTrailers(code) {
		trailers = f.trailerPhase(nil, code)
	}
	return fields, body, trailers
}

// routeSettings are the settings that apply to a request Route placed: an
// if block's whose condition held, else the location's, else the
// server's.
func routeSettings(srv *config.Server, loc *route.Location, r *route.Request) *config.Settings {
	switch {
	case r.IfSettings != nil:
		return r.IfSettings
	case loc != nil:
		return &loc.Config.Settings
	case srv != nil:
		return &srv.Settings
	}
	return nil
}

// needsRequest reports whether responses under st expand variables or
// may become error pages, so a call must keep its request.
func needsRequest(st *config.Settings) bool {
	return len(st.AddHeaders)+len(st.AddTrailers)+len(st.ErrorPages) > 0
}

// errorPage replaces an error answer by the error page configured for its
// code, if any, with the settings of the page's location. An answer with a
// body (`return 404 "text"`), a redirect or 444 is sent as it is, as in
// nginx.
func (rc *running) errorPage(a *route.Action, f *filterCtx) (*route.Action, *filterCtx) {
	if a.Close || a.Body != "" || a.Location != "" || a.Code < 300 || f.st == nil || len(f.st.ErrorPages) == 0 {
		return a, f
	}
	p, ok := rc.table.ErrorPage(f.st, a.Code, f.r)
	if !ok {
		return a, f
	}
	return p.Action, &filterCtx{st: p.Settings, tbl: f.tbl, r: f.r}
}

// failFields are the fields answering a call gproxy fails before any
// response: the error page configured for the HTTP status nginx would
// send (httpCode) when there is one — the configuration wins — else
// gproxy's gRPC status as a trailers-only response with nginx's HTTP
// status (200 where nginx has none, httpCode 0), through the response
// phase. Error pages with a body are not used here (a gRPC client could
// not read it); they are answered as the built-in error.
func failFields(rc *running, f *filterCtx, grpcCode int, msg string, httpCode int, method string) []hpack.HeaderField {
	if httpCode != 0 && f.r != nil && f.st != nil && len(f.st.ErrorPages) > 0 {
		if p, ok := rc.table.ErrorPage(f.st, httpCode, f.r); ok && !p.Action.Close {
			pf := &filterCtx{st: p.Settings, tbl: f.tbl, r: f.r}
			if fields, body, _ := pageFields(p.Action, pf, method); body == "" {
				return fields
			}
		}
	}
	fields := trailersOnly(grpcCode, msg)
	status := http.StatusOK
	if httpCode != 0 {
		// nginx's status on the wire and in $status, the gRPC status for
		// the client: gRPC clients take grpc-status over :status when
		// both are there (gRPC's http-grpc-status-mapping.md).
		status = httpCode
		fields[0].Value = strconv.Itoa(httpCode)
	}
	fields = f.headerPhase(fields, status)
	return f.trailerPhase(fields, status)
}

// failAnswer is gproxy's answer to a request it fails before any
// response. A gRPC call gets failFields. Anything else (curl, a browser,
// an HTTP/1.x client carried by bridge.go) gets what nginx sends: the
// error_page for httpCode if there is one, else nginx's page for that
// status.
func failAnswer(rc *running, f *filterCtx, grpc bool, grpcCode int, msg string, httpCode int, method string) (fields []hpack.HeaderField, body string, trailers []hpack.HeaderField) {
	if grpc || httpCode == 0 {
		return failFields(rc, f, grpcCode, msg, httpCode, method), "", nil
	}
	act, pf := rc.errorPage(&route.Action{Code: httpCode}, f)
	if act.Close {
		act, pf = &route.Action{Code: httpCode}, f
	}
	return pageFields(act, pf, method)
}

// writeAnswer sends a complete response on s: fields, then body and
// trailers if any.
func writeAnswer(s *h2.Stream, fields []hpack.HeaderField, body string, trailers []hpack.HeaderField) {
	if body == "" && len(trailers) == 0 {
		s.WriteHeaders(fields, true)
		return
	}
	s.WriteHeaders(fields, false)
	if body != "" {
		s.WriteData([]byte(body), len(trailers) == 0)
	}
	if len(trailers) > 0 {
		s.WriteHeaders(trailers, true)
	}
}

// isGRPC reports whether a request is a gRPC call by its content-type
// (application/grpc, application/grpc+proto, ...).
func isGRPC(r *route.Request) bool {
	for _, h := range r.Headers {
		if h.Name == "content-type" {
			return strings.HasPrefix(h.Value, "application/grpc")
		}
	}
	return false
}
