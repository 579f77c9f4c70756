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

// refuseStream answers an HTTP/2 stream the access phase refused: a gRPC
// call gets a trailers-only gRPC status (with WWW-Authenticate for 401);
// anything else gets nginx's error page for the status. It returns the
// fields and body length sent, for the access log.
func refuseStream(s *h2.Stream, r *route.Request, res *access.Result, reqEnded bool) ([]hpack.HeaderField, int) {
	if isGRPC(r) {
		fields := trailersOnly(refusalCode(res), res.Message)
		fields = append(fields, res.Header...)
		s.WriteHeaders(fields, true)
		if !reqEnded {
			s.ResetAfterEnd(http2.ErrCodeNo)
		}
		return fields, 0
	}
	body := errorPage(res.Status)
	fields := []hpack.HeaderField{
		{Name: ":status", Value: strconv.Itoa(res.Status)},
		{Name: "server", Value: "gproxy"},
		{Name: "content-type", Value: "text/html"},
		{Name: "content-length", Value: strconv.Itoa(len(body))},
	}
	fields = append(fields, res.Header...)
	if r.Method == http.MethodHead {
		s.WriteHeaders(fields, true)
		return fields, 0
	}
	s.WriteHeaders(fields, false)
	s.WriteData([]byte(body), true)
	return fields, len(body)
}

// refuseHTTP1 answers an HTTP/1 request the access phase refused with
// nginx's status, headers and error page.
func refuseHTTP1(w http.ResponseWriter, req *http.Request, res *access.Result) (int, int) {
	hd := w.Header()
	for _, f := range res.Header {
		hd.Add(f.Name, f.Value)
	}
	body := errorPage(res.Status)
	hd.Set("Server", "gproxy")
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
