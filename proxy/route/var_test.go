package route

import (
	"testing"

	"github.com/gproxy/gproxy/parser/config"
	"golang.org/x/net/http2/hpack"
)

// TestAppendVarFound pins which variables nginx calls "not found" (its
// access log prints "-" for them) and which are found but empty; the
// expectations come from nginx 1.22's access log for the same requests.
func TestAppendVarFound(t *testing.T) {
	tb := mustNew(t, &config.HTTP{})
	bare := &Request{Method: "GET", Path: "/q?", Proto: "HTTP/1.1", RemoteAddr: tcpAddr("127.0.0.1:1")}
	full := &Request{
		Method: "GET", Path: "/c?y=2&e=", Proto: "HTTP/1.1", Authority: "a.test",
		Headers: []hpack.HeaderField{
			{Name: "user-agent", Value: ""},
			{Name: "authorization", Value: "Basic dXNlcjpwYXNz"},
			{Name: "content-type", Value: "text/x"},
			{Name: "cookie", Value: "x=0; a=1"},
		},
		ResponseHeaders: []hpack.HeaderField{{Name: "content-type", Value: "application/grpc"}},
		Upstreams:       []UpstreamAttempt{{Addr: "127.0.0.1:50051", Status: 200}},
		GRPCStatus:      "0",
	}
	emptyUser := &Request{Headers: []hpack.HeaderField{{Name: "authorization", Value: "Basic OnBhc3M="}}}
	cases := []struct {
		r     *Request
		name  string
		want  string
		found bool
	}{
		{bare, "args", "", false},
		{bare, "query_string", "", false},
		{bare, "is_args", "", true},
		{bare, "remote_user", "", false},
		{emptyUser, "remote_user", "", false},
		{bare, "content_type", "", false},
		{bare, "content_length", "", false},
		{bare, "arg_x", "", false},
		{bare, "cookie_a", "", false},
		{bare, "http_referer", "", false},
		{bare, "sent_http_x_nope", "", false},
		{bare, "upstream_addr", "", false},
		{bare, "upstream_status", "", false},
		{bare, "grpc_status", "", false},
		{bare, "grpc_message", "", false},
		{bare, "status", "000", true},
		{bare, "uri", "/q", true},
		{bare, "https", "", true},
		{bare, "remote_addr", "127.0.0.1", true},
		{full, "args", "y=2&e=", true},
		{full, "arg_y", "2", true},
		{full, "arg_e", "", true},
		{full, "http_user_agent", "", true},
		{full, "http_host", "a.test", true},
		{full, "remote_user", "user", true},
		{full, "content_type", "text/x", true},
		{full, "cookie_a", "1", true},
		{full, "cookie_x", "0", true},
		{full, "sent_http_content_type", "application/grpc", true},
		{full, "upstream_addr", "127.0.0.1:50051", true},
		{full, "grpc_status", "0", true},
	}
	for _, c := range cases {
		v, ok := tb.Var(c.name)
		if !ok {
			t.Fatalf("Var(%q) not known", c.name)
		}
		got, found := tb.AppendVar([]byte("x"), v, c.r)
		if string(got) != "x"+c.want || found != c.found {
			t.Errorf("$%s on %s: %q found=%v, want %q found=%v", c.name, c.r.Path, got[1:], found, c.want, c.found)
		}
	}
	if _, ok := tb.Var("no_such_var"); ok {
		t.Error("Var(no_such_var) is known")
	}
}

// TestAppendVarAllocations: the access log calls AppendVar for every
// variable of every line.
func TestAppendVarAllocations(t *testing.T) {
	tb, _, _, r := benchSetup(t)
	buf := make([]byte, 0, 256)
	for _, name := range []string{"remote_addr", "http_user_agent", "request", "status", "time_local", "args", "upstream_addr", "content_type"} {
		v, _ := tb.Var(name)
		if n := testing.AllocsPerRun(100, func() { buf, _ = tb.AppendVar(buf[:0], v, r) }); n > 0 {
			t.Errorf("AppendVar $%s: %.1f allocs", name, n)
		}
	}
}

// TestVariablesAgreeWithParser keeps route's variable table and the list
// the parser accepts the same, so a name -t accepts is never empty at run
// time and route knows nothing the parser would reject.
func TestVariablesAgreeWithParser(t *testing.T) {
	listed := map[string]bool{}
	for _, name := range config.Variables {
		listed[name] = true
		if _, ok := builtinVars[name]; !ok {
			t.Errorf("parser accepts $%s but route cannot evaluate it", name)
		}
	}
	for name := range builtinVars {
		if !listed[name] {
			t.Errorf("route evaluates $%s but config.Variables does not list it", name)
		}
	}
}
