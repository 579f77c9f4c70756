package proxy

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gproxy/gproxy/proxy/access"
	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// gRPC status codes of access-phase refusals.
const (
	codePermissionDenied = 7
	codeUnauthenticated  = 16
)

// refusalCode is the gRPC status of a call the access phase refused:
//
//   - 401 (auth_basic) is UNAUTHENTICATED;
//   - 403 (deny, and any other 4xx the access checks give) is
//     PERMISSION_DENIED;
//   - a limit_req or limit_conn refusal, whatever limit_*_status says, is
//     RESOURCE_EXHAUSTED: a quota was exceeded. gRPC's own mapping of
//     HTTP 429 and 503 is UNAVAILABLE, which clients and retry policies
//     retry at once: against a rate limit that multiplies the load the
//     limit is there to shed, so gproxy says what happened instead;
//   - anything else (500 when a password could not be checked) is
//     INTERNAL.
func refusalCode(res *access.Result) int {
	switch {
	case res.Limited:
		return codeResourceExhausted
	case res.Status == http.StatusUnauthorized:
		return codeUnauthenticated
	case res.Status >= 400 && res.Status < 500:
		return codePermissionDenied
	}
	return codeInternal
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

// refuseStream answers an HTTP/2 stream the access phase refused, through
// the response phase (filter.go): the error_page configured for the
// status if there is one (the configuration wins), else a gRPC call gets
// a trailers-only gRPC status (with WWW-Authenticate for 401) and
// anything else nginx's error page for the status. It returns the fields
// and body length sent, for the access log.
func refuseStream(s *h2.Stream, r *route.Request, res *access.Result, reqEnded bool, rc *running, fc *filterCtx) ([]hpack.HeaderField, int) {
	fc = refusalFilter(fc, res)
	act := &route.Action{Code: res.Status}
	if page, pfc := rc.errorPage(act, fc); page != act {
		pfc = refusalFilter(pfc, res)
		fields, body := respond(s, page, pfc, r.Method)
		if !reqEnded {
			s.ResetAfterEnd(http2.ErrCodeNo)
		}
		return fields, body
	}
	if isGRPC(r) {
		fields := fc.headerPhase(trailersOnly(refusalCode(res), res.Message), http.StatusOK)
		fields = fc.trailerPhase(fields, http.StatusOK)
		s.WriteHeaders(fields, true)
		if !reqEnded {
			s.ResetAfterEnd(http2.ErrCodeNo)
		}
		return fields, 0
	}
	body := errorPage(res.Status)
	fields := fc.headerPhase([]hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(res.Status)}}, res.Status)
	fields = append(fields,
		hpack.HeaderField{Name: "content-type", Value: "text/html"},
		hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
	if r.Method == http.MethodHead {
		s.WriteHeaders(fields, true)
		return fields, 0
	}
	s.WriteHeaders(fields, false)
	s.WriteData([]byte(body), true)
	return fields, len(body)
}

// refusalFilter is fc with the refusal's own header fields
// (WWW-Authenticate) added to what the response phase sends.
func refusalFilter(fc *filterCtx, res *access.Result) *filterCtx {
	if len(res.Header) == 0 {
		return fc
	}
	c := *fc
	c.extra = res.Header
	return &c
}

// refuseHTTP1 answers an HTTP/1 request the access phase refused with
// nginx's status, headers and error page, or the configured error_page,
// through the response phase.
func refuseHTTP1(w http.ResponseWriter, req *http.Request, res *access.Result, rc *running, fc *filterCtx) (int, int) {
	fc = refusalFilter(fc, res)
	act := &route.Action{Code: res.Status}
	if page, pfc := rc.errorPage(act, fc); page != act {
		return h1Respond(w, req, page, refusalFilter(pfc, res))
	}
	hd := w.Header()
	for _, f := range fc.headerPhase(nil, res.Status) {
		hd.Add(f.Name, f.Value)
	}
	body := errorPage(res.Status)
	hd.Set("Content-Type", "text/html")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(res.Status)
	if req.Method == http.MethodHead {
		return res.Status, 0
	}
	n, _ := w.Write([]byte(body))
	return res.Status, n
}

// nginxTitles are nginx's reason phrases where they differ from Go's.
var nginxTitles = map[int]string{
	http.StatusUnauthorized:          "Authorization Required",
	http.StatusServiceUnavailable:    "Service Temporarily Unavailable",
	http.StatusMovedPermanently:      "Moved Permanently",
	http.StatusRequestEntityTooLarge: "Request Entity Too Large",
}

// errorPage is nginx's built-in page for an error status, signed gproxy.
func errorPage(code int) string {
	text, ok := nginxTitles[code]
	if !ok {
		text = http.StatusText(code)
	}
	title := strconv.Itoa(code) + " " + text
	return "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
		"</h1></center>\r\n<hr><center>gproxy</center>\r\n</body>\r\n</html>\r\n"
}
