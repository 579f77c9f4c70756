package proxy

import (
	"net/http"
	"strconv"

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

// refuseStream answers an HTTP/2 stream the access phase refused, through
// the response phase like any error of nginx's: an error_page for the
// status wins; without one a gRPC call gets a trailers-only gRPC status
// and anything else nginx's page for the status. res.Header (the
// WWW-Authenticate challenge) goes with it. It returns the fields and body
// length sent, for the access log.
func refuseStream(s *h2.Stream, rc *running, fc *filterCtx, r *route.Request, res *access.Result, reqEnded bool) ([]hpack.HeaderField, int) {
	if isGRPC(r) {
		fields := failFields(rc, fc, refusalCode(res), res.Message, res.Status, r.Method)
		fields = append(fields, res.Header...)
		s.WriteHeaders(fields, true)
		if !reqEnded {
			s.ResetAfterEnd(http2.ErrCodeNo)
		}
		return fields, 0
	}
	act, pfc := rc.errorPage(&route.Action{Code: res.Status}, fc)
	if act.Close {
		s.Reset(http2.ErrCodeInternal)
		return nil, 0
	}
	fields, body, trailers := pageFields(act, pfc, r.Method)
	fields = append(fields, res.Header...)
	writeAnswer(s, fields, body, trailers)
	return fields, len(body)
}

// nginxTitles are nginx's reason phrases where they differ from Go's.
var nginxTitles = map[int]string{
	http.StatusUnauthorized:          "Authorization Required",
	http.StatusServiceUnavailable:    "Service Temporarily Unavailable",
	http.StatusMovedPermanently:      "Moved Permanently",
	http.StatusRequestEntityTooLarge: "Request Entity Too Large",
}

// builtinPage is nginx's built-in page for an error status, signed gproxy.
func builtinPage(code int) string {
	text, ok := nginxTitles[code]
	if !ok {
		text = http.StatusText(code)
	}
	title := strconv.Itoa(code) + " " + text
	return "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
		"</h1></center>\r\n<hr><center>gproxy</center>\r\n</body>\r\n</html>\r\n"
}
