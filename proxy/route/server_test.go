package route

import (
	"strings"
	"testing"

	"github.com/gproxy/gproxy/parser/config"
)

func TestServerSelection(t *testing.T) {
	first := srv("0.0.0.0:80", "first.test")
	exact := srv("0.0.0.0:80", "example.com", "www.example.com")
	starHead := srv("0.0.0.0:80", "*.example.com")
	deepHead := srv("0.0.0.0:80", "*.deep.example.com")
	dotHead := srv("0.0.0.0:80", ".example.org")
	tail := srv("0.0.0.0:80", "mail.*")
	longTail := srv("0.0.0.0:80", "mail.example.*")
	re1 := srv("0.0.0.0:80", `~^(?P<sub>[a-z]+)\.regex\.test$`)
	re2 := srv("0.0.0.0:80", `~\.test$`)
	def := srv("0.0.0.0:80", "default.test")
	def.Listens[0].DefaultServer = true
	servers := []*config.Server{first, exact, starHead, deepHead, dotHead, tail, longTail, re1, re2, def}
	tb := mustNew(t, &config.HTTP{Servers: servers})
	l := tb.Listeners()[0]
	name := map[*config.Server]string{first: "first", exact: "exact", starHead: "*.example.com",
		deepHead: "*.deep.example.com", dotHead: ".example.org", tail: "mail.*", longTail: "mail.example.*",
		re1: "re1", re2: "re2", def: "default"}

	tests := []struct{ host, want string }{
		{"example.com", "exact"},
		{"EXAMPLE.com", "exact"},
		{"example.com:8080", "exact"},
		{"example.com.", "exact"},
		{"example.com.:80", "exact"},
		{"www.example.com", "exact"},                 // exact beats *.example.com
		{"api.example.com", "*.example.com"},         // leading wildcard
		{"a.b.example.com", "*.example.com"},         // any depth
		{"x.deep.example.com", "*.deep.example.com"}, // longest leading wildcard
		{"deep.example.com", "*.example.com"},        // *.deep... needs a label before it
		{"example.org", ".example.org"},              // .name matches itself
		{"www.example.org", ".example.org"},          // and its subdomains
		{"mail.foo.net", "mail.*"},                   // trailing wildcard
		{"mail.example.net", "mail.example.*"},       // longest trailing wildcard
		{"mail.example.com", "*.example.com"},        // leading wildcards before trailing ones
		{"abc.regex.test", "re1"},                    // first regex in order
		{"other.test", "re2"},                        // second regex
		{"first.test", "first"},
		{"nomatch.invalid", "default"}, // default_server
		{"", "default"},
		{"bad..host", "default"},
		{"bad/host", "default"},
		{"[::1]:80", "default"},
		{"[::1", "default"},
	}
	for _, tc := range tests {
		got := l.Server(tc.host)
		if name[got] != tc.want {
			t.Errorf("Server(%q) = %s, want %s", tc.host, name[got], tc.want)
		}
	}
}

func TestDefaultServerIsFirstWithoutFlag(t *testing.T) {
	a, b := srv("127.0.0.1:8080", "a.test"), srv("127.0.0.1:8080", "b.test")
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{a, b}})
	l := tb.Listeners()[0]
	if got := l.Server("zzz"); got != a {
		t.Fatalf("unknown host: got %v, want the first server", got.Names)
	}
	if l.DefaultServer() != a {
		t.Fatal("DefaultServer is not the first server")
	}
	if got := l.Server("B.TEST"); got != b {
		t.Fatalf("B.TEST: got %v", got.Names)
	}
}

func TestListeners(t *testing.T) {
	a := srv("0.0.0.0:80", "a")
	a.Listens = append(a.Listens, config.Listen{Network: "tcp", Address: "[0::1]:8080", HTTP2: true, Backlog: 100})
	b := srv("0.0.0.0:80", "b")
	b.HTTP2 = true
	b.Listens[0].ReusePort = true
	b.Listens = append(b.Listens, config.Listen{Network: "unix", Address: "/tmp/x.sock", DefaultServer: true})
	c := srv("[::1]:8080", "c")
	c.Listens[0].DefaultServer = true
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{a, b, c}})
	ls := tb.Listeners()
	if len(ls) != 3 {
		t.Fatalf("got %d listeners, want 3", len(ls))
	}
	want := []struct {
		network, addr     string
		http2, reuse      bool
		backlog, nservers int
		def               *config.Server
	}{
		{"tcp", "0.0.0.0:80", true, true, 0, 2, a}, // b has `http2 on`
		{"tcp", "[::1]:8080", true, false, 100, 2, c},
		{"unix", "/tmp/x.sock", true, false, 0, 1, b}, // `http2 on` covers all of b's listens
	}
	for i, w := range want {
		l := ls[i]
		if l.Network != w.network || l.Address != w.addr || l.HTTP2 != w.http2 || l.ReusePort != w.reuse ||
			l.Backlog != w.backlog || len(l.Servers) != w.nservers || l.DefaultServer() != w.def {
			t.Errorf("listener %d = %+v, want %+v", i, l, w)
		}
	}
}

func TestNewErrors(t *testing.T) {
	dupDef := func() *config.HTTP {
		a, b := srv("0.0.0.0:80", "a"), srv("0.0.0.0:80", "b")
		a.Listens[0].DefaultServer, b.Listens[0].DefaultServer = true, true
		b.Listens[0].Pos = pos(9)
		return &config.HTTP{Servers: []*config.Server{a, b}}
	}
	dupLoc := func() *config.HTTP {
		s := srv("0.0.0.0:80")
		s.Locations = []*config.Location{loc("/a"), loc("^~ /a")}
		return &config.HTTP{Servers: []*config.Server{s}}
	}
	unknownVar := func() *config.HTTP {
		s := srv("0.0.0.0:80")
		s.Rewrite = []config.RewriteStep{ret(200, "x $nosuchvar")}
		return &config.HTTP{Servers: []*config.Server{s}}
	}
	unknownInHeader := func() *config.HTTP {
		s := srv("0.0.0.0:80")
		l := loc("/")
		l.Settings.GRPC.SetHeaders = []config.Header{{Name: "x-a", Value: tpl("$bogus")}}
		s.Locations = []*config.Location{l}
		return &config.HTTP{Servers: []*config.Server{s}}
	}
	mapCycle := func() *config.HTTP {
		return &config.HTTP{Maps: []*config.Map{
			{Source: tpl("$b"), Target: "a", Pos: pos(5)},
			{Source: tpl("$x"), Target: "b", Default: tpl("$a"), Pos: pos(6)},
		}}
	}
	dupMap := func() *config.HTTP {
		return &config.HTTP{Maps: []*config.Map{{Source: tpl("$uri"), Target: "host", Pos: pos(7)}}}
	}
	tests := []struct {
		name string
		h    *config.HTTP
		want string
	}{
		{"duplicate default", dupDef(), "a duplicate default server for 0.0.0.0:80 in /etc/nginx/nginx.conf:9"},
		{"duplicate location", dupLoc(), `duplicate location "/a" in /etc/nginx/nginx.conf:2`},
		{"unknown variable", unknownVar(), `unknown "nosuchvar" variable in /etc/nginx/nginx.conf:3`},
		{"unknown in header", unknownInHeader(), `unknown "bogus" variable in /etc/nginx/nginx.conf:2`},
		{"map cycle", mapCycle(), `cycle while evaluating variable`},
		{"map over builtin", dupMap(), `the duplicate "host" variable in /etc/nginx/nginx.conf:7`},
	}
	for _, tc := range tests {
		_, err := New(tc.h)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"example.com", "example.com", true},
		{"Example.COM:443", "example.com", true},
		{"example.com.", "example.com", true},
		{"[::1]:8080", "[::1]", true},
		{"[::1]", "[::1]", true},
		{"127.0.0.1:80", "127.0.0.1", true},
		{"", "", false},
		{":80", "", false},
		{".", "", false},
		{"a..b", "", false},
		{"a/b", "", false},
		{"a\x00b", "", false},
		{"[::1", "", false},
		{"[::1]x", "", false},
	}
	for _, tc := range tests {
		got, ok := normalizeHost(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("normalizeHost(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestWildcardAddressFolding(t *testing.T) {
	any80 := srv("0.0.0.0:80", "any.test")
	lo80 := srv("127.0.0.1:80", "lo.test")
	lo80b := srv("127.0.0.1:80", "lo2.test")
	own := srv("127.0.0.2:80", "own.test")
	own.Listens[0].ReusePort = true  // its own socket, as nginx's implied bind
	v6 := srv("[::1]:80", "v6.test") // not covered by the IPv4 wildcard
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{any80, lo80, lo80b, own, v6}})
	ls := tb.Listeners()
	var addrs []string
	for _, l := range ls {
		addrs = append(addrs, l.Address)
	}
	if strings.Join(addrs, " ") != "0.0.0.0:80 127.0.0.2:80 [::1]:80" {
		t.Fatalf("listeners %v", addrs)
	}
	w := ls[0]
	if len(w.Servers) != 3 {
		t.Errorf("wildcard listener servers = %d, want 3", len(w.Servers))
	}
	tests := []struct {
		local, host string
		want        *config.Server
	}{
		{"127.0.0.1:80", "lo2.test", lo80b},
		{"127.0.0.1:80", "any.test", lo80}, // wildcard servers do not answer on 127.0.0.1
		{"127.0.0.1:80", "", lo80},
		{"10.0.0.1:80", "lo.test", any80},
		{"10.0.0.1:80", "any.test", any80},
	}
	for _, tc := range tests {
		local := tcpAddr(tc.local)
		if got := w.ServerAt(local, tc.host); got != tc.want {
			t.Errorf("ServerAt(%s, %q) = %v", tc.local, tc.host, got.Names)
		}
		r := &Request{Authority: tc.host, Path: "/", LocalAddr: local}
		if s, _, _ := tb.Route(w, r); s != tc.want {
			t.Errorf("Route on %s for %q = %v", tc.local, tc.host, s.Names)
		}
	}
}

func TestServerNameVariable(t *testing.T) {
	tests := []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{[]string{"A.test", "b.test"}, "a.test"},
		{[]string{".example.org"}, "example.org"},
		{[]string{"*.example.org"}, "*.example.org"},
		{[]string{`~^x\.test$`}, `~^x\.test$`},
	}
	for _, tc := range tests {
		s := srv("127.0.0.1:80", tc.names...)
		tb := mustNew(t, &config.HTTP{Servers: []*config.Server{s}})
		if got := tb.Expand(tpl("$server_name"), &Request{Server: s}); got != tc.want {
			t.Errorf("%v: $server_name = %q, want %q", tc.names, got, tc.want)
		}
	}
}
