package route

import (
	"net"
	"testing"

	"github.com/gproxy/gproxy/parser/config"
	"golang.org/x/net/http2/hpack"
)

func TestRewrite(t *testing.T) {
	tb := mustNew(t, nil)
	r := &Request{
		Method: "GET", Scheme: "http", Authority: "Host.test:8080", Path: "/p?debug=1",
		Headers:   []hpack.HeaderField{{Name: "x-flag", Value: "0"}, {Name: "x-on", Value: "yes"}},
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080},
	}
	tests := []struct {
		name  string
		steps []config.RewriteStep
		want  *Action
	}{
		{"none", nil, nil},
		{"return text", []config.RewriteStep{ret(200, "hi $request_method\n")}, &Action{Code: 200, Body: "hi GET\n"}},
		{"return code only", []config.RewriteStep{ret(403, "")}, &Action{Code: 403}},
		{"return 444 closes", []config.RewriteStep{ret(444, "")}, &Action{Code: 444, Close: true}},
		{"return URL", []config.RewriteStep{ret(302, "https://example.com$uri")},
			&Action{Code: 302, Location: "https://example.com/p"}},
		{"relative redirect made absolute", []config.RewriteStep{ret(301, "/new$is_args$args")},
			&Action{Code: 301, Location: "http://host.test:8080/new?debug=1"}},
		{"first return wins", []config.RewriteStep{ret(204, ""), ret(500, "")}, &Action{Code: 204}},
		{"if $var true", []config.RewriteStep{ifStep("", "$http_x_on", "", ret(401, "on"))}, &Action{Code: 401, Body: "on"}},
		{"if $var \"0\" is false", []config.RewriteStep{ifStep("", "$http_x_flag", "", ret(401, "")), ret(200, "after")},
			&Action{Code: 200, Body: "after"}},
		{"if empty is false", []config.RewriteStep{ifStep("", "$http_missing", "", ret(401, ""))}, nil},
		{"if =", []config.RewriteStep{ifStep("=", "$arg_debug", "1", ret(418, ""))}, &Action{Code: 418}},
		{"if = false", []config.RewriteStep{ifStep("=", "$arg_debug", "2", ret(418, ""))}, nil},
		{"if !=", []config.RewriteStep{ifStep("!=", "$request_method", "POST", ret(405, ""))}, &Action{Code: 405}},
		{"if ~", []config.RewriteStep{ifStep("~", "$uri", "^/p$", ret(200, "m"))}, &Action{Code: 200, Body: "m"}},
		{"if ~ case-sensitive", []config.RewriteStep{ifStep("~", "$uri", "^/P$", ret(200, "m"))}, nil},
		{"if ~*", []config.RewriteStep{ifStep("~*", "$uri", "^/P$", ret(200, "m"))}, &Action{Code: 200, Body: "m"}},
		{"if !~", []config.RewriteStep{ifStep("!~", "$uri", "^/q", ret(200, "n"))}, &Action{Code: 200, Body: "n"}},
		{"if !~*", []config.RewriteStep{ifStep("!~*", "$uri", "^/P", ret(200, "n"))}, nil},
		{"if body without return falls through", []config.RewriteStep{
			ifStep("", "$http_x_on", "", ifStep("=", "$host", "other", ret(500, ""))), ret(200, "next")},
			&Action{Code: 200, Body: "next"}},
		{"nested if", []config.RewriteStep{ifStep("", "$http_x_on", "", ifStep("=", "$host", "host.test", ret(202, "")))},
			&Action{Code: 202}},
	}
	for _, tc := range tests {
		got := tb.Rewrite(tc.steps, r)
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestRewriteCaptures(t *testing.T) {
	s := srv("127.0.0.1:80", `~^(?P<tenant>[a-z]+)\.svc\.test$`)
	l := loc(`~ ^/(?P<pkg>[a-z]+)\.(\w+)/`)
	l.Rewrite = []config.RewriteStep{ret(200, "$tenant $pkg $1 $2")}
	s.Locations = []*config.Location{l}
	s.Rewrite = []config.RewriteStep{
		ifStep("~", "$http_x_v", `^v(\d+)$`, ifStep("=", "$1", "9", ret(410, "gone $1 $tenant"))),
	}
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{s}})
	lst := tb.Listeners()[0]

	r := &Request{Authority: "acme.svc.test", Path: "/shop.Cart/Add", Headers: []hpack.HeaderField{{Name: "x-v", Value: "v9"}}}
	if _, _, a := tb.Route(lst, r); a == nil || a.Code != 410 || a.Body != "gone 9 acme" {
		t.Fatalf("server if captures: %+v", a)
	}
	r = &Request{Authority: "acme.svc.test", Path: "/shop.Cart/Add"}
	if _, _, a := tb.Route(lst, r); a == nil || a.Body != "acme shop shop Cart" {
		t.Fatalf("location captures: %+v", a)
	}
}

func TestRoute(t *testing.T) {
	api := srv("127.0.0.1:8080", "api.test")
	api.Rewrite = []config.RewriteStep{ifStep("=", "$http_x_block", "1", ret(403, "blocked"))}
	grpcLoc := loc("/pkg.Svc/")
	retLoc := loc("/health")
	retLoc.GRPCPass = nil
	retLoc.Rewrite = []config.RewriteStep{ret(200, "ok")}
	static := loc("/static/")
	static.GRPCPass = nil
	api.Locations = []*config.Location{grpcLoc, retLoc, static}
	other := srv("127.0.0.1:8080", "other.test")
	other.Rewrite = []config.RewriteStep{ret(301, "https://api.test$request_uri")}
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{api, other}})
	l := tb.Listeners()[0]

	tests := []struct {
		name      string
		r         Request
		wantSrv   *config.Server
		wantLoc   *config.Location
		wantCode  int
		wantExtra string
	}{
		{"proxied", Request{Authority: "api.test", Path: "/pkg.Svc/M"}, api, grpcLoc, 0, ""},
		{"host header when no authority", Request{Path: "/pkg.Svc/M", Headers: []hpack.HeaderField{{Name: "host", Value: "API.test"}}}, api, grpcLoc, 0, ""},
		{"server return before locations", Request{Authority: "other.test", Path: "/pkg.Svc/M?x"}, other, nil, 301, "https://api.test/pkg.Svc/M?x"},
		{"server if", Request{Authority: "api.test", Path: "/pkg.Svc/M", Headers: []hpack.HeaderField{{Name: "x-block", Value: "1"}}}, api, nil, 403, "blocked"},
		{"location return", Request{Authority: "api.test", Path: "/health"}, api, retLoc, 200, "ok"},
		{"no location", Request{Authority: "api.test", Path: "/nothing"}, api, nil, 404, ""},
		{"location without grpc_pass", Request{Authority: "api.test", Path: "/static/x"}, api, static, 404, ""},
		{"invalid host", Request{Authority: "a..b", Path: "/pkg.Svc/M"}, api, nil, 400, ""},
		{"invalid path", Request{Authority: "api.test", Path: "/../x"}, api, nil, 400, ""},
		{"unknown host uses default", Request{Authority: "zzz", Path: "/pkg.Svc/M"}, api, grpcLoc, 0, ""},
	}
	for _, tc := range tests {
		r := tc.r
		s, lc, a := tb.Route(l, &r)
		var gotLoc *config.Location
		if lc != nil {
			gotLoc = lc.Config
		}
		code, extra := 0, ""
		if a != nil {
			code, extra = a.Code, a.Body+a.Location
		}
		if s != tc.wantSrv || r.Server != s || gotLoc != tc.wantLoc || code != tc.wantCode || extra != tc.wantExtra {
			t.Errorf("%s: got srv=%v loc=%v action=%+v", tc.name, s.Names, gotLoc, a)
		}
	}
}
