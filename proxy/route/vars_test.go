package route

import (
	"context"
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"golang.org/x/net/http2/hpack"
)

func tcpAddr(s string) *net.TCPAddr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func sampleRequest(s *config.Server) *Request {
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("X", 2*3600))
	return &Request{
		Method:    "POST",
		Scheme:    "http",
		Authority: "API.Example.com:8443",
		Path:      "/pkg.Svc/Call%20Me?a=1&Foo=bar&empty=&b",
		Headers: []hpack.HeaderField{
			{Name: "content-type", Value: "application/grpc"},
			{Name: "user-agent", Value: "grpc-go/1.0"},
			{Name: "x-forwarded-for", Value: "10.0.0.1"},
			{Name: "x-multi", Value: "one"},
			{Name: "x-multi", Value: "two"},
			{Name: "cookie", Value: "a=1; Session=xyz"},
			{Name: "cookie", Value: "c=3"},
			{Name: "authorization", Value: "Basic dXNlcjpwYXNz"}, // user:pass
		},
		RemoteAddr:      tcpAddr("[::ffff:192.0.2.7]:51000"),
		LocalAddr:       tcpAddr("[::1]:8443"),
		Server:          s,
		Proto:           "HTTP/2.0",
		ConnID:          42,
		ConnRequests:    3,
		Start:           start,
		End:             start.Add(1234 * time.Millisecond),
		Status:          200,
		BytesSent:       512,
		BodyBytesSent:   300,
		RequestLength:   99,
		ResponseHeaders: []hpack.HeaderField{{Name: "content-type", Value: "application/grpc+proto"}},
		Upstreams: []UpstreamAttempt{
			{Addr: "127.0.0.1:50051", Status: 502, ResponseTime: 5 * time.Millisecond, ConnectTime: -1},
			{Addr: "127.0.0.1:50052", Status: 200, ResponseTime: 1500 * time.Millisecond, ConnectTime: 2 * time.Millisecond},
		},
		GRPCStatus:  "0",
		GRPCMessage: "ok",
	}
}

func TestExpandVariables(t *testing.T) {
	s := srv("[::1]:8443", "main.test", "other.test")
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{s}})
	r := sampleRequest(s)
	tests := []struct{ tpl, want string }{
		{"plain", "plain"},
		{"$remote_addr", "192.0.2.7"},
		{"$remote_port", "51000"},
		{"$server_addr", "::1"},
		{"$server_port", "8443"},
		{"$server_name", "main.test"},
		{"$scheme", "http"},
		{"$host", "api.example.com"},
		{"$request_method", "POST"},
		{"$request_uri", "/pkg.Svc/Call%20Me?a=1&Foo=bar&empty=&b"},
		{"$uri", "/pkg.Svc/Call Me"},
		{"$document_uri", "/pkg.Svc/Call Me"},
		{"$args", "a=1&Foo=bar&empty=&b"},
		{"$query_string", "a=1&Foo=bar&empty=&b"},
		{"$is_args", "?"},
		{"$content_type", "application/grpc"},
		{"$content_length", ""},
		{"$server_protocol", "HTTP/2.0"},
		{"$request", "POST /pkg.Svc/Call%20Me?a=1&Foo=bar&empty=&b HTTP/2.0"},
		{"$request_length", "99"},
		{"$remote_user", "user"},
		{"$time_local", "04/Mar/2026:05:06:08 +0200"},
		{"$time_iso8601", "2026-03-04T05:06:08+02:00"},
		{"$msec", strconv.FormatInt(r.End.Unix(), 10) + ".234"},
		{"$request_time", "1.234"},
		{"$connection", "42"},
		{"$connection_requests", "3"},
		{"$proxy_add_x_forwarded_for", "10.0.0.1, 192.0.2.7"},
		{"$status", "200"},
		{"$bytes_sent", "512"},
		{"$body_bytes_sent", "300"},
		{"$upstream_addr", "127.0.0.1:50051, 127.0.0.1:50052"},
		{"$upstream_status", "502, 200"},
		{"$upstream_response_time", "0.005, 1.500"},
		{"$upstream_connect_time", "-, 0.002"},
		{"$grpc_status", "0"},
		{"$grpc_message", "ok"},
		{"$http_user_agent", "grpc-go/1.0"},
		{"$HTTP_USER_AGENT", "grpc-go/1.0"},
		{"$http_x_multi", "one, two"},
		{"$http_cookie", "a=1; Session=xyz; c=3"},
		{"$http_host", "API.Example.com:8443"},
		{"$http_missing", ""},
		{"$sent_http_content_type", "application/grpc+proto"},
		{"$arg_a", "1"},
		{"$arg_foo", "bar"},
		{"$arg_empty", ""},
		{"$arg_b", ""},
		{"$cookie_session", "xyz"},
		{"$cookie_c", "3"},
		{"$cookie_none", ""},
		{"$pid", strconv.Itoa(os.Getpid())},
		{"[$remote_addr:$remote_port] ${request_method}x", "[192.0.2.7:51000] POSTx"},
	}
	for _, tc := range tests {
		if got := tb.Expand(tpl(tc.tpl), r); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.tpl, got, tc.want)
		}
		if got := string(tb.AppendExpand([]byte("pre:"), tpl(tc.tpl), r)); got != "pre:"+tc.want {
			t.Errorf("AppendExpand(%q) = %q, want %q", tc.tpl, got, "pre:"+tc.want)
		}
	}
}

func TestExpandDefaults(t *testing.T) {
	s := srv("127.0.0.1:80") // no server_name
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{s}})
	r := &Request{Path: "/", Server: s,
		RemoteAddr: &net.UnixAddr{Name: "@", Net: "unix"}, LocalAddr: &net.UnixAddr{Name: "/x.sock", Net: "unix"}}
	tests := []struct{ tpl, want string }{
		{"$scheme", "http"},
		{"$host", ""},
		{"$server_name", ""},
		{"$remote_addr", "unix:"},
		{"$remote_port", ""},
		{"$status", "000"},
		{"$upstream_addr", ""},
		{"$is_args", ""},
		{"$args", ""},
		{"$proxy_add_x_forwarded_for", "unix:"},
		{"$request_time", "0.000"},
		{"$remote_user", ""},
		{"$1", ""},
	}
	for _, tc := range tests {
		if got := tb.Expand(tpl(tc.tpl), r); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.tpl, got, tc.want)
		}
	}
	// $host falls back to the server's first name.
	named := srv("127.0.0.1:80", "fallback.test")
	tb = mustNew(t, &config.HTTP{Servers: []*config.Server{named}})
	if got := tb.Expand(tpl("$host"), &Request{Server: named}); got != "fallback.test" {
		t.Errorf("$host without Host = %q", got)
	}
}

func TestRequestIDStablePerRequest(t *testing.T) {
	tb := mustNew(t, nil)
	r1, r2 := &Request{}, &Request{}
	a, b := tb.Expand(tpl("$request_id"), r1), tb.Expand(tpl("$request_id"), r1)
	c := tb.Expand(tpl("$request_id"), r2)
	if a != b || a == c || len(a) != 32 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Fatalf("request ids %q %q %q", a, b, c)
	}
}

// TestConnectionVariablesOverSocket reads the address variables from a real
// loopback connection.
func TestConnectionVariablesOverSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var conn net.Conn
	select {
	case conn = <-accepted:
	case <-ctx.Done():
		t.Fatal("accept timed out")
	}
	if conn == nil {
		t.Fatal("accept failed")
	}
	defer conn.Close()

	tb := mustNew(t, nil)
	r := &Request{RemoteAddr: conn.RemoteAddr(), LocalAddr: conn.LocalAddr()}
	got := tb.Expand(tpl("$remote_addr $remote_port $server_addr $server_port"), r)
	_, cport, _ := net.SplitHostPort(client.LocalAddr().String())
	_, sport, _ := net.SplitHostPort(ln.Addr().String())
	if want := "127.0.0.1 " + cport + " 127.0.0.1 " + sport; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestMaps(t *testing.T) {
	maps := []*config.Map{
		{Source: tpl("$http_user_agent"), Target: "ua_kind", Default: tpl("other"),
			Exact: map[string]config.Template{"Curl/8": tpl("curl-exact")},
			Regexes: []config.MapRegex{
				{Regex: regexp.MustCompile(`^grpc-(?P<lang>[a-z]+)/`), Value: tpl("grpc:$lang")},
				{Regex: regexp.MustCompile(`(?i)^MOZILLA`), Value: tpl("browser")},
			}, Pos: pos(20)},
		{Source: tpl("$host"), Target: "tenant", Hostnames: true, Default: tpl("none"),
			Exact: map[string]config.Template{
				"api.example.com": tpl("exact"),
				"*.example.com":   tpl("head"),
				".example.org":    tpl("dot"),
				"www.*":           tpl("tail"),
			}, Pos: pos(21)},
		{Source: tpl("$ua_kind-$tenant"), Target: "combo", Default: tpl("[$ua_kind/$tenant]"),
			Regexes: []config.MapRegex{{Regex: regexp.MustCompile(`^curl-exact-(.*)$`), Value: tpl("c:$1")}}, Pos: pos(22)},
		{Source: tpl("$arg_x"), Target: "empty_src", Default: tpl("dflt"),
			Exact: map[string]config.Template{"": tpl("never")}, Pos: pos(23)},
	}
	tb := mustNew(t, &config.HTTP{Maps: maps})
	tests := []struct {
		ua, host, tpl, want string
	}{
		{"curl/8", "x", "$ua_kind", "curl-exact"}, // exact keys are case-insensitive
		{"grpc-go/1.2", "x", "$ua_kind", "grpc:go"},
		{"Mozilla/5", "x", "$ua_kind", "browser"},
		{"wget", "x", "$ua_kind", "other"},
		{"", "x", "$ua_kind", "other"},
		{"", "API.example.com", "$tenant", "exact"},
		{"", "a.example.com", "$tenant", "head"},
		{"", "example.org", "$tenant", "dot"},
		{"", "www.foo.bar", "$tenant", "tail"},
		{"", "example.com", "$tenant", "none"},
		{"wget", "a.example.com", "$combo", "[other/head]"},
		{"curl/8", "api.example.com", "$combo", "c:exact"},
		// nginx matches an empty source against the "" key
		// (TestAccessLogUserVariables checks it against nginx).
		{"", "", "$empty_src", "never"},
	}
	for _, tc := range tests {
		r := &Request{Authority: tc.host, Headers: []hpack.HeaderField{{Name: "user-agent", Value: tc.ua}}}
		if got := tb.Expand(tpl(tc.tpl), r); got != tc.want {
			t.Errorf("ua=%q host=%q %s = %q, want %q", tc.ua, tc.host, tc.tpl, got, tc.want)
		}
	}
}
