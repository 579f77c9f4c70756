package route

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/nginxtest"
	"golang.org/x/net/http2/hpack"
)

// These tests run the same routing configuration through a real nginx
// (when installed) and through route, and compare nginx's answers over
// HTTP/1.1 on 127.0.0.1 with Route's.

// startNginx runs nginx with the given http block body (every server must
// listen on {ADDR}) and returns the address it listens on.
func startNginx(t *testing.T, httpBody string) string {
	t.Helper()
	_, addr := nginxtest.Start(t, "access_log off;\n"+httpBody)
	return addr
}

// nginxGet sends one raw HTTP/1.1 request and returns status and body.
func nginxGet(t *testing.T, addr, host, target string, headers ...string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("%s %s: %v", host, target, err)
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("bad status line %q", line)
	}
	code, _ := strconv.Atoi(f[1])
	rest, _ := io.ReadAll(br)
	_, body, _ := strings.Cut(string(rest), "\r\n\r\n")
	return code, body
}

// lspec is a location written in nginx syntax with nested locations.
type lspec struct {
	spec string
	kids []lspec
}

// buildBoth turns specs into config locations whose `return 200 "Ln"`
// names them, and into the same nginx text.
func buildBoth(specs []lspec, next *int) ([]*config.Location, string) {
	var locs []*config.Location
	var b strings.Builder
	for _, s := range specs {
		*next++
		id := "L" + strconv.Itoa(*next)
		kids, kidText := buildBoth(s.kids, next)
		l := loc(s.spec, kids...)
		l.GRPCPass = nil
		l.Rewrite = []config.RewriteStep{ret(200, id)}
		locs = append(locs, l)
		mod, path, ok := strings.Cut(s.spec, " ")
		if !ok {
			mod, path = "", s.spec
		}
		fmt.Fprintf(&b, "location %s \"%s\" {\n%s return 200 \"%s\";\n}\n", mod, path, kidText, id)
	}
	return locs, b.String()
}

// compare checks that Route's answer equals nginx's for one request.
func compare(t *testing.T, tb *Table, addr, host, target string, hdrs []hpack.HeaderField) {
	t.Helper()
	var raw []string
	for _, h := range hdrs {
		raw = append(raw, h.Name+": "+h.Value)
	}
	code, body := nginxGet(t, addr, host, target, raw...)
	lh, _ := net.ResolveTCPAddr("tcp", addr)
	r := &Request{Method: "GET", Scheme: "http", Authority: host, Path: target, Headers: hdrs, Proto: "HTTP/1.1",
		RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, LocalAddr: lh}
	_, _, a := tb.Route(tb.Listeners()[0], r)
	gotCode, gotBody := 0, ""
	if a != nil {
		gotCode, gotBody = a.Code, a.Body
	}
	if testing.Verbose() {
		t.Logf("%q %q -> %d %q", host, target, code, body)
	}
	if gotCode != code || (code == 200 && gotBody != body) {
		t.Errorf("host %q target %q: route says %d %q, nginx says %d %q", host, target, gotCode, gotBody, code, body)
	}
}

func TestAgainstNginxLocations(t *testing.T) {
	specs := []lspec{
		{spec: "= /"}, {spec: "/"},
		{spec: "= /exact"}, {spec: "/exact"},
		{spec: "/documents/"},
		{spec: "^~ /images/"},
		{spec: `~* \.(gif|jpg|jpeg)$`},
		{spec: "/pkg.Svc/"}, {spec: "/pkg.Svc/Method"},
		{spec: "~ ^/pkg"},
		{spec: "/nest/", kids: []lspec{
			{spec: `~ ^/nest/.*\.x$`}, {spec: "/nest/deeper/"}, {spec: "^~ /nest/stop/"}, {spec: "= /nest/exact"},
		}},
		{spec: "^~ /noregex/", kids: []lspec{{spec: `~ \.y$`}}},
		{spec: `~ \.x$`},
		{spec: `~ /regex/`, kids: []lspec{{spec: `~ /regex/inner`}}},
		{spec: `~ \.z$`},
		{spec: "@named"},
	}
	n := 0
	locs, text := buildBoth(specs, &n)
	addr := startNginx(t, "server { listen {ADDR}; "+text+" }")
	s := srv(addr)
	s.Locations = locs
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{s}})

	targets := []string{
		"/", "/x", "/exact", "/exact/", "/exactly", "/documents/a.html", "/documents/a.jpg", "/documents/a.JPG",
		"/images/a.gif", "/a/../images/a.gif", "/%69mages/a.gif", "/images%2Fa.gif", "/pkg.Svc/Method", "/pkg.Svc/Other",
		"/nest/a.x", "/nest/deeper/a", "/nest/deeper/a.x", "/nest/stop/a.x", "/nest/stop/a.z", "/nest/exact",
		"/nest/exact/", "/nest/other", "/noregex/a.x", "/noregex/a.y", "/a.x", "/regex/inner", "/regex/outer",
		"/@named", "//nest///deeper/./a", "/nest/deeper/../a.x", "/x/%2e%2e/nest/q", "/a%2F..%2Fnest/deeper/",
		"/../x", "/a/../../x", "/a?b=/nest/a.x", "/a%3F.x", "/%41.x", "/a%00", "/a%zz",
	}
	for _, target := range targets {
		compare(t, tb, addr, "localhost", target, nil)
	}
}

func TestAgainstNginxServerNames(t *testing.T) {
	nameSets := []string{
		"first.test",
		"example.com www.example.com",
		"*.example.com",
		"*.deep.example.com",
		".example.org",
		"mail.*",
		"mail.example.*",
		`"~^(?<sub>[a-z]+)\.regex\.test$"`,
		`"~\.test$"`,
		"default.test",
	}
	var servers []*config.Server
	var text strings.Builder
	for i, ns := range nameSets {
		var names []string
		for _, n := range strings.Fields(ns) {
			names = append(names, strings.Trim(n, `"`))
		}
		s := srv("127.0.0.1:1", names...)
		body := "S" + strconv.Itoa(i)
		if strings.Contains(ns, "regex") {
			body += " $sub"
		}
		s.Rewrite = []config.RewriteStep{ret(200, body+" $host $server_name")}
		def := ""
		if ns == "default.test" {
			def = " default_server"
			s.Listens[0].DefaultServer = true
		}
		servers = append(servers, s)
		fmt.Fprintf(&text, "server { listen {ADDR}%s; server_name %s; return 200 \"%s $host $server_name\"; }\n", def, ns, body)
	}
	addr := startNginx(t, text.String())
	for _, s := range servers {
		s.Listens[0].Address = addr
	}
	tb := mustNew(t, &config.HTTP{Servers: servers})
	hosts := []string{
		"example.com", "EXAMPLE.com", "example.com:8080", "example.com.", "www.example.com", "api.example.com",
		"a.b.example.com", "x.deep.example.com", "deep.example.com", "example.org", "www.example.org",
		"mail.foo.net", "mail.example.net", "mail.example.com", "abc.regex.test", "Abc.Regex.Test", "other.test",
		"first.test", "nomatch.invalid", "bad..host", "[::1]:80", "127.0.0.1", "a.b", "-",
	}
	for _, h := range hosts {
		compare(t, tb, addr, h, "/", nil)
	}
}

func TestAgainstNginxVariables(t *testing.T) {
	maps := `
map $http_user_agent $ua_kind {
    default other;
    Curl/8 curl-exact;
    "~^grpc-(?<lang>[a-z]+)/" grpc:$lang;
    "~*^MOZILLA" browser;
}
map $host $tenant {
    hostnames;
    default none;
    api.example.com exact;
    *.example.com head;
    .example.org dot;
    www.* tail;
}
`
	body := `$uri|$args|$is_args|$host|$server_name|$arg_a|$arg_foo|$cookie_b|$http_x_y|$request_uri|$request_method|` +
		`$server_protocol|$scheme|$remote_addr|$content_type|$ua_kind|$tenant`
	checks := `if ($http_x_deny) { return 403; }
if ($arg_a = "9") { return 200 "nine"; }
if ($http_x_v ~ "^v(\d+)$") { return 200 "version $1"; }
if ($uri !~* "^/ok") { return 200 "not ok: $uri"; }`
	addr := startNginx(t, maps+"server { listen {ADDR}; server_name main.test; "+checks+" location / { return 200 \""+body+"\"; } }")

	s := srv(addr, "main.test")
	l := loc("/")
	l.GRPCPass = nil
	l.Rewrite = []config.RewriteStep{ret(200, body)}
	s.Locations = []*config.Location{l}
	s.Rewrite = []config.RewriteStep{
		ifStep("", "$http_x_deny", "", ret(403, "")),
		ifStep("=", "$arg_a", "9", ret(200, "nine")),
		ifStep("~", "$http_x_v", `^v(\d+)$`, ret(200, "version $1")),
		ifStep("!~*", "$uri", "^/ok", ret(200, "not ok: $uri")),
	}
	h := &config.HTTP{Servers: []*config.Server{s}, Maps: []*config.Map{
		{Source: tpl("$http_user_agent"), Target: "ua_kind", Default: tpl("other"),
			Exact: map[string]config.Template{"Curl/8": tpl("curl-exact")},
			Regexes: []config.MapRegex{
				{Regex: regexp.MustCompile(`^grpc-(?P<lang>[a-z]+)/`), Value: tpl("grpc:$lang")},
				{Regex: regexp.MustCompile(`(?i)^MOZILLA`), Value: tpl("browser")},
			}},
		{Source: tpl("$host"), Target: "tenant", Hostnames: true, Default: tpl("none"),
			Exact: map[string]config.Template{"api.example.com": tpl("exact"), "*.example.com": tpl("head"),
				".example.org": tpl("dot"), "www.*": tpl("tail")}},
	}}
	tb := mustNew(t, h)
	hf := func(kv ...string) []hpack.HeaderField {
		var out []hpack.HeaderField
		for i := 0; i < len(kv); i += 2 {
			out = append(out, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		host, target string
		hdrs         []hpack.HeaderField
	}{
		{"main.test", "/ok/p%20q?a=1&FOO=x", hf("user-agent", "curl/8", "cookie", "a=1; b=two", "x-y", "z")},
		{"API.Example.com:99", "/ok", hf("user-agent", "grpc-go/1.6", "content-type", "application/grpc")},
		{"a.example.com", "/ok//x/../y?", hf("user-agent", "Mozilla/5.0")},
		{"example.org.", "/ok", hf("user-agent", "wget")},
		{"www.foo.bar", "/ok", nil},
		{"main.test", "/ok", hf("x-deny", "1")},
		{"main.test", "/ok", hf("x-deny", "0")},
		{"main.test", "/ok?a=9", nil},
		{"main.test", "/ok", hf("x-v", "v42")},
		{"main.test", "/OK/a", nil},
		{"main.test", "/nope", nil},
	}
	for _, tc := range tests {
		compare(t, tb, addr, tc.host, tc.target, tc.hdrs)
	}
}
