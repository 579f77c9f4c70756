package parser

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/tlsconf/tlstest"
)

// fakeLookup resolves only localhost, so tests never ask a DNS server.
func fakeLookup(_ context.Context, host string) ([]string, error) {
	if host == "localhost" {
		return []string{"127.0.0.1"}, nil
	}
	return nil, errors.New("not found")
}

// load writes files into a temp dir and loads nginx.conf from it.
func load(t *testing.T, files map[string]string, opt Options) (string, *config.Config, []Diagnostic, error) {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opt.LookupHost = fakeLookup
	cfg, warns, err := Load(filepath.Join(dir, "nginx.conf"), opt)
	return dir, cfg, warns, err
}

func mustLoad(t *testing.T, conf string) (*config.Config, []Diagnostic) {
	t.Helper()
	_, cfg, warns, err := load(t, map[string]string{"nginx.conf": conf}, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg, warns
}

// Each case is checked against the message nginx 1.22 gives for the same
// file (`nginx -t`), except those marked gproxy, which are our own.
func TestErrorMessages(t *testing.T) {
	tests := []struct{ conf, want string }{
		// Structure (tokenizer).
		{"events{}\nhttp {\n server {\n  listen 80;\n }\n", `[emerg] unexpected end of file, expecting "}" in F:6`},
		{"events{}\nhttp {\n server {\n  listen 80\n }\n}", `[emerg] unexpected "}" in F:5`},
		{"events{}\nhttp {\n}\n}\nfoo;\n", `[emerg] unexpected "}" in F:4`},
		{"events{}\nhttp{}\nfoo \"bar\n", `[emerg] unexpected end of file, expecting ";" or "}" in F:4`},
		{"events{}\nhttp{\"a\"b;}\n", `[emerg] unexpected "b" in F:2`},
		{"events{}\n;;", `[emerg] unexpected ";" in F:2`},
		// A directive error before a syntax error is reported first.
		{"events{}\nfrobnicate;\n}\n", `[emerg] unknown directive "frobnicate" in F:2`},
		// Lookup, context, terminator, arguments.
		{"events{}\nhttp{a\"b\";}\n", `[emerg] unknown directive "a"b"" in F:2`},
		{"events{}\nhttp{sendfile \"on\"}\n", `[emerg] unexpected "}" in F:2`},
		{"events{}\nhttp{server_tokens off {}}\n", `[emerg] directive "server_tokens" is not terminated by ";" in F:2`},
		{"events{}\nhttp{server;}\n", `[emerg] directive "server" has no opening "{" in F:2`},
		{"events{}\nhttp{worker_connections 1;}\n", `[emerg] "worker_connections" directive is not allowed here in F:2`},
		{"events{}\nhttp{if ($a = \"x\") {}}\n", `[emerg] "if" directive is not allowed here in F:2`},
		{"events{}\nhttp{server{location / {grpc_pass x y;}}}\n", `[emerg] invalid number of arguments in "grpc_pass" directive in F:2`},
		{"events{}\nhttp{server {\n  listen\n  80 foo;}}\n", `[emerg] invalid parameter "foo" in F:4`},
		{"events{}\nhttp{}\nhttp{}\n", `[emerg] "http" directive is duplicate in F:3`},
		{"http{}\n", `[emerg] no "events" section in configuration`},
		// Values.
		{"events{worker_connections 1o24;}\n", `[emerg] invalid number "1o24" in F:1`},
		{"events{}\nhttp{keepalive_requests 1o24;}\n", `[emerg] "keepalive_requests" directive invalid number in F:2`},
		{"events{}\nhttp{client_max_body_size 1x;}\n", `[emerg] "client_max_body_size" directive invalid value in F:2`},
		{"events{}\nhttp{grpc_buffer_size 1g;}\n", `[emerg] "grpc_buffer_size" directive invalid value in F:2`},
		{"events{}\nhttp{grpc_read_timeout 5x;}\n", `[emerg] "grpc_read_timeout" directive invalid value in F:2`},
		{"events{}\nhttp{ssl_session_timeout 500ms;}\n", `[emerg] "ssl_session_timeout" directive invalid value in F:2`},
		{"events{}\nhttp{grpc_next_upstream unavailable;}\n", `[emerg] invalid value "unavailable" in F:2`},
		{"events{}\nhttp{grpc_socket_keepalive x;}\n", `[emerg] invalid value "x" in "grpc_socket_keepalive" directive, it must be "on" or "off" in F:2`},
		{"events{}\nhttp{sendfile x;}\n", `[emerg] invalid value "x" in "sendfile" directive, it must be "on" or "off" in F:2`},
		{"events{}\nhttp{ssl_verify_client x;}\n", `[emerg] invalid value "x" in F:2`},
		{"events{}\nhttp{http2_chunk_size 0;}\n", `[emerg] the http2 chunk size cannot be zero in F:2`},
		{"events{}\nhttp{server{client_max_body_size 1m; client_max_body_size 2m;}}\n", `[emerg] "client_max_body_size" directive is duplicate in F:2`},
		{"worker_processes x;events{}\n", `[emerg] "worker_processes" directive invalid value in F:1`},
		{"error_log x bogus;events{}\n", `[emerg] invalid log level "bogus" in F:1`},
		// Upstreams.
		{"events{}\nhttp{upstream u {server 127.0.0.1:1 weight=0;}}\n", `[emerg] invalid parameter "weight=0" in F:2`},
		{"events{}\nhttp{upstream u {server 127.0.0.1:1 max_fails=x;}}\n", `[emerg] invalid parameter "max_fails=x" in F:2`},
		{"events{}\nhttp{upstream u {ip_hash; server 127.0.0.1:1 backup;}}\n", `[emerg] balancing method does not support parameter "backup" in F:2`},
		{"events{}\nhttp{upstream u {server nosuch.invalid:5;}}\n", `[emerg] host not found in upstream "nosuch.invalid:5" in F:2`},
		{"events{}\nhttp{upstream u {server 127.0.0.1:1;}\nupstream u {server 127.0.0.1:1;}}\n", `[emerg] duplicate upstream "u" in F:3`},
		{"events{}\nhttp{\nupstream u {}}\n", `[emerg] no servers are inside upstream in F:3`},
		{"events{}\nhttp{server{location / {\ngrpc_pass nosuch;}}}\n", `[emerg] no port in upstream "nosuch" in F:3`},
		{"events{}\nhttp{server{location / {\ngrpc_pass nosuch.invalid:50051;}}}\n", `[emerg] host not found in upstream "nosuch.invalid" in F:3`},
		{"events{}\nhttp{server{location / {grpc_pass http://127.0.0.1;}}}\n", `[emerg] invalid host in upstream "http://127.0.0.1" in F:2`},
		{"events{}\nhttp{server{location / {\ngrpc_pass u:1;}} upstream u {server 127.0.0.1:1;}}\n", `[emerg] upstream "u" may not have port 1 in F:3`},
		// http post-configuration checks come when http closes, before
		// errors after it.
		{"events{}\nhttp{server{location / {grpc_pass grpc://u;}}}\nupstream u {}\n", `[emerg] no port in upstream "u" in F:2`},
		// Servers and locations.
		{"events{}\nhttp{server {listen 70000;}}\n", `[emerg] invalid port in "70000" of the "listen" directive in F:2`},
		{"events{}\nhttp{server {listen 80 backlog=x;}}\n", `[emerg] invalid backlog "backlog=x" in F:2`},
		{"events{}\nhttp{server {listen 80 default_server;}\nserver {listen 80 default_server;}}\n", `[emerg] a duplicate default server for 0.0.0.0:80 in F:3`},
		{"events{}\nhttp{server {listen 80; listen 80;}}\n", `[emerg] a duplicate listen 0.0.0.0:80 in F:2`},
		{"events{}\nhttp{server{listen 443 ssl;}}\n", `[emerg] no "ssl_certificate" is defined for the "listen ... ssl" directive in F:2`},
		{"events{}\nhttp{server{location / {}\nlocation / {} }}\n", `[emerg] duplicate location "/" in F:3`},
		{"events{}\nhttp{server{server_name *;}}\n", `[emerg] server name "*" is invalid in F:2`},
		{"events{}\nhttp{server{location = /a { location /a/b {} } }}\n", `[emerg] location "/a/b" cannot be inside the exact location "/a" in F:2`},
		{"events{}\nhttp{server{location /a { location /b {} } }}\n", `[emerg] location "/b" is outside location "/a" in F:2`},
		{"events{}\nhttp{server{location /a { location @b {} } }}\n", `[emerg] named location "@b" can be on the server level only in F:2`},
		{"events{}\nhttp{server{location ~ (a {}}}\n", `[emerg] pcre2_compile() failed: missing closing parenthesis in "(a" in F:2`},
		// Rewrite.
		{"events{}\nhttp{server{return 1000;}}\n", `[emerg] invalid return code "1000" in F:2`},
		{"events{}\nhttp{server{if (a) {}}}\n", `[emerg] invalid condition "a" in F:2`},
		{"events{}\nhttp{server{if ($a {}}}\n", `[emerg] invalid condition "$a" in F:2`},
		{"events{}\nhttp{server{if ($a == b) {}}}\n", `[emerg] unexpected "==" in condition in F:2`},
		// Logs, variables, maps.
		{"events{}\nhttp{access_log x main; log_format main \"$foo\";}\n", `[emerg] unknown log format "main" in F:2`},
		{"events{}\nhttp{log_format main \"$foo\";}\n", `[emerg] unknown "foo" variable`},
		{"events{}\nhttp{log_format combined \"x\";}\n", `[emerg] duplicate "log_format" name "combined" in F:2`},
		{"events{}\nhttp{log_format a escape=x \"$foo\";}\n", `[emerg] unknown log format escaping "x" in F:2`},
		{"events{}\nhttp{log_format a \"${ab\";}\n", `[emerg] the closing bracket in "ab" variable is missing in F:2`},
		{"events{}\nhttp{log_format a \"$\";}\n", `[emerg] invalid parameter "$" in F:2`},
		{"events{}\nhttp{map $a b {}}\n", `[emerg] invalid variable name "b" in F:2`},
		{"events{}\nhttp{map $a $b {a;}}\n", `[emerg] invalid number of the map parameters in F:2`},
		{"events{}\nhttp{map $a $b {a 1; a 2;}}\n", `[emerg] conflicting parameter "a" in F:2`},
		// Includes.
		{"include nosuch.conf;\n", `[emerg] open() "D/nosuch.conf" failed (2: No such file or directory) in F:1`},
		// gproxy's own verdicts.
		{"events{}\nhttp{server{location / {proxy_pass http://x;}}}\n", `[emerg] "proxy_pass" directive is not supported by gproxy in F:2`},
		{"events{}\nhttp{server{location / {content_by_lua_block { ngx.say(\"}\") }}}}\n", `[emerg] "content_by_lua_block" directive is not supported by gproxy in F:2`},
		{"events{}\nhttp{server{listen 80 proxy_protocol;}}\n", `[emerg] the "proxy_protocol" parameter of the "listen" directive is not supported by gproxy in F:2`},
		{"events{}\nhttp{server{location / {if ($uri) {grpc_pass 127.0.0.1:1;\ngrpc_pass 127.0.0.1:2;}}}}\n", `[emerg] "grpc_pass" directive is duplicate in F:3`},
		{"events{}\nhttp{server{if ($uri) {set $uri 1;}}}\n", `[emerg] the duplicate "uri" variable in F:2`},
		{"events{}\nhttp{server{rewrite ^ /x foo;}}\n", `[emerg] invalid parameter "foo" in F:2`},
		{"events{}\nhttp{server{error_page 404 =x /x;}}\n", `[emerg] invalid value "=x" in F:2`},
		{"events{}\nhttp{server{add_header a b never;}}\n", `[emerg] invalid parameter "never" in F:2`},
		{"events{}\nhttp{server{location ~ ^/a(?=b) {}}}\n", `[emerg] regex "^/a(?=b)" uses PCRE syntax that gproxy's RE2 engine does not support ((?=) in F:2`},
		{"events{}\nhttp{server{location / {grpc_pass 127.0.0.1:$x;}}}\n", `[emerg] unknown "x" variable`},
		{"events{}\nhttp{log_format a \"$request_body_file\";}\n", `[emerg] unknown "request_body_file" variable`},
	}
	for _, tt := range tests {
		dir, _, _, err := load(t, map[string]string{"nginx.conf": tt.conf}, Options{})
		want := strings.ReplaceAll(tt.want, "F:", filepath.Join(dir, "nginx.conf")+":")
		want = strings.ReplaceAll(want, "D/", dir+"/")
		if err == nil {
			t.Errorf("%q: no error, want %s", tt.conf, want)
			continue
		}
		var d *Diagnostic
		if !errors.As(err, &d) {
			t.Errorf("%q: error %T is not a *Diagnostic", tt.conf, err)
			continue
		}
		if got := err.Error(); got != want {
			t.Errorf("%q:\n got %s\nwant %s", tt.conf, got, want)
		}
	}
}

func TestIncludes(t *testing.T) {
	t.Run("relative, glob, nested, positions", func(t *testing.T) {
		dir, cfg, _, err := load(t, map[string]string{
			"nginx.conf":      "events{}\nhttp {\n  include conf.d/*.conf;\n  include \"up.conf\";\n}\n",
			"conf.d/b.conf":   "server {\n  listen 81;\n}\n",
			"conf.d/a.conf":   "\n\nserver {\n  listen 80;\n  include loc.inc;\n}\n",
			"conf.d/.hidden":  "garbage",
			"conf.d/x.conf.b": "garbage",
			"loc.inc":         "location / { grpc_pass u; }\n",
			"up.conf":         "upstream u { server 127.0.0.1:9; }\n",
		}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv := cfg.HTTP.Servers
		if len(srv) != 2 || srv[0].Listens[0].Address != "0.0.0.0:80" || srv[1].Listens[0].Address != "0.0.0.0:81" {
			t.Fatalf("servers in wrong order: %+v", srv)
		}
		if want := (config.Pos{File: filepath.Join(dir, "conf.d/a.conf"), Line: 3}); srv[0].Pos != want {
			t.Errorf("server pos %v, want %v", srv[0].Pos, want)
		}
		loc := srv[0].Locations[0]
		if loc.Pos.File != filepath.Join(dir, "loc.inc") || loc.GRPCPass.Upstream != cfg.HTTP.UpstreamByName["u"] {
			t.Errorf("location %+v", loc)
		}
		if len(cfg.Files) != 5 || cfg.Files[0].Path != filepath.Join(dir, "nginx.conf") {
			t.Errorf("files %d", len(cfg.Files))
		}
	})
	t.Run("glob matching nothing", func(t *testing.T) {
		if _, _, _, err := load(t, map[string]string{"nginx.conf": "include none/*.conf; events{}"}, Options{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stray brace in included file", func(t *testing.T) {
		dir, _, _, err := load(t, map[string]string{
			"nginx.conf": "events{}\nhttp { include s.conf; }\n",
			"s.conf":     "server {}\n}\nserver {}\n",
		}, Options{})
		want := `[emerg] unexpected "}" in ` + filepath.Join(dir, "s.conf") + ":2"
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %s", err, want)
		}
	})
	t.Run("unterminated block in included file", func(t *testing.T) {
		dir, _, _, err := load(t, map[string]string{
			"nginx.conf": "events{}\nhttp { include s.conf; }\n",
			"s.conf":     "server {\n",
		}, Options{})
		want := `[emerg] unexpected end of file, expecting "}" in ` + filepath.Join(dir, "s.conf") + ":2"
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %s", err, want)
		}
	})
	t.Run("loop", func(t *testing.T) {
		_, _, _, err := load(t, map[string]string{
			"nginx.conf": "events{}\ninclude a.conf;\n",
			"a.conf":     "include b.conf;\n",
			"b.conf":     "include a.conf;\n",
		}, Options{})
		if err == nil || !strings.Contains(err.Error(), "include loop") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("conf prefix", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "ev.conf"), []byte("events{}"), 0o644)
		_, _, err := LoadBytes("mem.conf", []byte("include ev.conf;"), Options{ConfPrefix: dir, LookupHost: fakeLookup})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestInheritance(t *testing.T) {
	cfg, _ := mustLoad(t, `
events {}
http {
    client_max_body_size 10m;
    grpc_set_header X-A a;
    grpc_set_header X-B b;
    access_log /tmp/a.log;
    grpc_read_timeout 1h30s;
    upstream u { server 127.0.0.1:1; }
    server {
        listen 127.0.0.1:8080;
        keepalive_timeout 500ms;
        location / {
            grpc_pass u;
            grpc_set_header X-C c;
            location /inner/ {
                client_max_body_size 0;
                access_log off;
            }
        }
        location /other {
            grpc_pass grpc://127.0.0.1:2;
        }
    }
}`)
	srv := cfg.HTTP.Servers[0]
	s := srv.Settings
	if s.ClientMaxBodySize != 10<<20 || !s.ClientMaxBodySizeSet || s.KeepaliveTimeout != 500*time.Millisecond || s.KeepaliveRequests != 1000 {
		t.Errorf("server settings %+v", s)
	}
	if s.GRPC.ReadTimeout != time.Hour+30*time.Second || s.GRPC.SendTimeout != 60*time.Second {
		t.Errorf("timeouts %v %v", s.GRPC.ReadTimeout, s.GRPC.SendTimeout)
	}
	names := func(hs []config.Header) (out []string) {
		for _, h := range hs {
			out = append(out, h.Name+"="+h.Value.Raw)
		}
		return
	}
	root := srv.Locations[0]
	if got := names(root.Settings.GRPC.SetHeaders); !reflect.DeepEqual(got, []string{"x-c=c"}) {
		t.Errorf("location / headers %v: a level that sets any replaces the inherited list", got)
	}
	other := srv.Locations[1]
	if got := names(other.Settings.GRPC.SetHeaders); !reflect.DeepEqual(got, []string{"x-a=a", "x-b=b"}) {
		t.Errorf("location /other headers %v", got)
	}
	if other.GRPCPass.Upstream.Name != "127.0.0.1:2" || !other.GRPCPass.Upstream.Implicit {
		t.Errorf("implicit upstream %+v", other.GRPCPass.Upstream)
	}
	inner := root.Locations[0]
	if inner.Settings.ClientMaxBodySize != 0 || !inner.Settings.AccessLogOff || len(inner.Settings.AccessLogs) != 0 {
		t.Errorf("inner %+v", inner.Settings)
	}
	if got := names(inner.Settings.GRPC.SetHeaders); !reflect.DeepEqual(got, []string{"x-c=c"}) {
		t.Errorf("nested location headers %v", got)
	}
	if root.Settings.AccessLogs[0].Path != "/tmp/a.log" || root.Settings.AccessLogs[0].Format != "combined" {
		t.Errorf("access log %+v", root.Settings.AccessLogs)
	}
	if root.Settings.KeepaliveTimeout != 500*time.Millisecond {
		t.Errorf("keepalive_timeout not inherited")
	}
	if !inner.Settings.ClientMaxBodySizeSet {
		t.Errorf("client_max_body_size 0 set explicitly must say so")
	}
	// Defaults.
	if got := cfg.HTTP.Servers[0].Settings.AccessLogs; len(got) != 1 || got[0].Path != "/tmp/a.log" {
		t.Errorf("access logs %+v", got)
	}
	d := other.Settings
	if d.LargeClientHeaderBuffers != (config.Buffers{Number: 4, Size: 8192}) || d.HTTP2MaxConcurrentStreams != 128 ||
		!reflect.DeepEqual(d.GRPC.NextUpstream, []string{"error", "timeout"}) || d.GRPC.ConnectTimeout != time.Minute {
		t.Errorf("defaults %+v", d)
	}
}

func TestMainAndUpstream(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(`
worker_processes auto;
worker_rlimit_nofile 65536;
error_log logs/err.log warn;
error_log stderr;
daemon off;
events { worker_connections 4096; }
http {
    upstream backends {
        least_conn;
        server 127.0.0.1:50051 weight=5 max_conns=100 max_fails=3 fail_timeout=30s;
        server [::1]:50052 backup;
        server localhost:50053 down;
        server unix:/tmp/g.sock;
        keepalive 32;
        keepalive_timeout 30s;
    }
    upstream h { hash $http_x_key consistent; server 127.0.0.1:1; }
    upstream r { random two least_conn; server 127.0.0.1:1; }
    server {
        listen [::1]:8443 ssl http2 default_server reuseport backlog=1024 ipv6only=on;
        listen localhost:8080;
        listen unix:/tmp/gp.sock;
        server_name Example.COM *.example.com .example.org mail.* ~^(?<sub>.+)\.example\.net$;
        http2 on;
        ssl_certificate cert.pem;
        ssl_certificate_key cert.key;
        location = /exact {}
        location ^~ /noregex {}
        location ~* \.PROTO$ {}
        location @named {}
    }
}`), 0o644)
	kp := tlstest.New(t, nil, tlstest.Options{})
	os.WriteFile(filepath.Join(dir, "cert.pem"), kp.CertPEM(), 0o644)
	os.WriteFile(filepath.Join(dir, "cert.key"), kp.KeyPEM(), 0o644)
	cfg, _, err := Load(filepath.Join(dir, "nginx.conf"), Options{Prefix: "/pfx", LookupHost: fakeLookup})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WorkerProcesses != 0 || cfg.WorkerRlimitNofile != 65536 || cfg.Daemon || cfg.WorkerConnections != 4096 {
		t.Errorf("main %+v", cfg)
	}
	if cfg.PID != "/pfx/logs/nginx.pid" || len(cfg.ErrorLogs) != 2 || cfg.ErrorLogs[0].Path != "/pfx/logs/err.log" ||
		cfg.ErrorLogs[0].Level != "warn" || cfg.ErrorLogs[1].Path != "stderr" || cfg.ErrorLogs[1].Level != "error" {
		t.Errorf("pid %q logs %+v", cfg.PID, cfg.ErrorLogs)
	}
	u := cfg.HTTP.UpstreamByName["backends"]
	if u.Balance.Method != "least_conn" || u.Keepalive != 32 || u.KeepaliveTimeout != 30*time.Second || u.KeepaliveTime != time.Hour {
		t.Errorf("upstream %+v", u)
	}
	want := []config.UpstreamServer{
		{Address: "127.0.0.1:50051", Weight: 5, MaxConns: 100, MaxFails: 3, FailTimeout: 30 * time.Second},
		{Address: "[::1]:50052", Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second, Backup: true},
		{Address: "localhost:50053", Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second, Down: true},
		{Address: "unix:/tmp/g.sock", Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second},
	}
	for i := range u.Servers {
		u.Servers[i].Pos = config.Pos{}
	}
	if !reflect.DeepEqual(u.Servers, want) {
		t.Errorf("servers\n got %+v\nwant %+v", u.Servers, want)
	}
	if h := cfg.HTTP.UpstreamByName["h"].Balance; h.Method != "hash" || !h.Consistent || h.Key.Parts[0].Var != "http_x_key" {
		t.Errorf("hash %+v", h)
	}
	if r := cfg.HTTP.UpstreamByName["r"].Balance; r.Method != "random" || !r.Two || r.TwoMethod != "least_conn" {
		t.Errorf("random %+v", r)
	}
	srv := cfg.HTTP.Servers[0]
	l0 := srv.Listens[0]
	if l0.Address != "[::1]:8443" || !l0.SSL || !l0.HTTP2 || !l0.DefaultServer || !l0.ReusePort || l0.Backlog != 1024 || !l0.IPv6Only {
		t.Errorf("listen %+v", l0)
	}
	if srv.Listens[1].Address != "127.0.0.1:8080" || srv.Listens[2].Network != "unix" || srv.Listens[2].Address != "/tmp/gp.sock" {
		t.Errorf("listens %+v", srv.Listens)
	}
	kinds := []config.NameKind{config.NameExact, config.NameWildcardStart, config.NameWildcardStart, config.NameWildcardEnd, config.NameRegex}
	for i, k := range kinds {
		if srv.Names[i].Kind != k {
			t.Errorf("name %d %+v", i, srv.Names[i])
		}
	}
	if srv.Names[0].Name != "example.com" || !srv.Names[4].Regex.MatchString("a.example.net") {
		t.Errorf("names %+v", srv.Names)
	}
	if !srv.HTTP2 || srv.Settings.SSL.Certificates[0] != filepath.Join(dir, "cert.pem") {
		t.Errorf("http2 %v ssl %+v", srv.HTTP2, srv.Settings.SSL)
	}
	lk := []config.LocationKind{config.LocExact, config.LocPrefixNoRegex, config.LocRegexCaseless, config.LocNamed}
	for i, k := range lk {
		if srv.Locations[i].Kind != k {
			t.Errorf("location %d kind %v", i, srv.Locations[i].Kind)
		}
	}
	if !srv.Locations[2].Regex.MatchString("/a.proto") {
		t.Errorf("caseless regex does not match")
	}
}

func TestRewriteAndMap(t *testing.T) {
	cfg, _ := mustLoad(t, `
events {}
http {
    map $http_host $tenant {
        hostnames;
        default      none;
        example.com  ex;
        ~^www\d+\.   www;
        \default     lit;
    }
    log_format j escape=json '{"t":"$tenant","s":"$grpc_status"}';
    server {
        return 200 "ok\n";
        if ($request_method !~ ^(GET|POST)$ ) { return 405; }
        location / {
            if ($tenant = none) { return 403 "no tenant $host"; }
            access_log /tmp/j.log j buffer=32k flush=5s if=$tenant;
        }
    }
}`)
	m := cfg.HTTP.Maps[0]
	if m.Target != "tenant" || !m.Hostnames || m.Default.Raw != "none" || m.Exact["example.com"].Raw != "ex" ||
		m.Exact["default"].Raw != "lit" || !m.Regexes[0].Regex.MatchString("www12.x") {
		t.Errorf("map %+v", m)
	}
	if f := cfg.HTTP.LogFormats["j"]; f.Escape != "json" || len(f.Format.Parts) != 5 {
		t.Errorf("log format %+v", f)
	}
	srv := cfg.HTTP.Servers[0]
	if r := srv.Rewrite[0].Return; r.Code != 200 || r.Text.Raw != "ok\n" {
		t.Errorf("return %+v", r)
	}
	if c := srv.Rewrite[1].If.Cond; c.Op != "!~" || !c.Regex.MatchString("GET") || c.Left.Parts[0].Var != "request_method" {
		t.Errorf("if %+v", c)
	}
	loc := srv.Locations[0]
	if step := loc.Rewrite[0].If; step.Cond.Op != "=" || step.Body[0].Return.Code != 403 {
		t.Errorf("location if %+v", step)
	}
	al := loc.Settings.AccessLogs[0]
	if al.Buffer != 32<<10 || al.Flush != 5*time.Second || al.If == nil || al.If.Parts[0].Var != "tenant" {
		t.Errorf("access_log %+v", al)
	}
}

func TestWarnings(t *testing.T) {
	dir, _, warns, err := load(t, map[string]string{"nginx.conf": `events { multi_accept on; }
http {
    sendfile on;
    # each name is warned about once: sendfile again in the server below
    tcp_nopush on;
    upstream u { server 127.0.0.1:1; least_conn; ip_hash; }
    server { server_name a; sendfile off; }
    server { server_name a; }
}`}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "nginx.conf")
	want := []string{
		`[warn] "multi_accept" directive is ignored by gproxy in ` + f + ":1",
		`[warn] "sendfile" directive is ignored by gproxy in ` + f + ":3",
		`[warn] "tcp_nopush" directive is ignored by gproxy in ` + f + ":5",
		`[warn] load balancing method redefined in ` + f + ":6",
	}
	var got []string
	for _, w := range warns {
		got = append(got, w.Error())
	}
	if len(got) != 5 || !reflect.DeepEqual(got[:4], want) || !strings.HasPrefix(got[4], `[warn] conflicting server name "a" on 0.0.0.0:`) {
		t.Errorf("warnings\n got %q\nwant %q + conflicting server name", got, want)
	}
}

func TestGlobals(t *testing.T) {
	dir, cfg, _, err := load(t, map[string]string{"nginx.conf": "events{}"}, Options{Globals: "pid run/x.pid; daemon off;", Prefix: "/p"})
	if err != nil || cfg.PID != "/p/run/x.pid" || cfg.Daemon {
		t.Fatalf("err %v cfg %+v", err, cfg)
	}
	_, _, _, err = load(t, map[string]string{"nginx.conf": "events{}"}, Options{Globals: "bogus 1;"})
	if err == nil || err.Error() != `[emerg] unknown directive "bogus" in command line` {
		t.Fatalf("got %v", err)
	}
	_ = dir
	// nginx reads -g first, so the file's copy is the duplicate.
	dir, _, _, err = load(t, map[string]string{"nginx.conf": "daemon on; events{}"}, Options{Globals: "daemon off;"})
	if err == nil || err.Error() != `[emerg] "daemon" directive is duplicate in `+filepath.Join(dir, "nginx.conf")+":1" {
		t.Fatalf("got %v", err)
	}
}

func TestValues(t *testing.T) {
	times := []struct {
		in      string
		sec     bool
		want    time.Duration
		wantErr bool
	}{
		{"60", false, time.Minute, false},
		{"1h30s", false, time.Hour + 30*time.Second, false},
		{"500ms", false, 500 * time.Millisecond, false},
		{"1d 2h", false, 26 * time.Hour, false},
		{"500ms", true, 0, true},
		{"30s1h", false, 0, true},
		{"5x", false, 0, true},
		{"", false, 0, true},
	}
	for _, tt := range times {
		got, ok := parseTime(tt.in, tt.sec)
		if ok == tt.wantErr || (ok && got != tt.want) {
			t.Errorf("parseTime(%q, %v) = %v, %v", tt.in, tt.sec, got, ok)
		}
	}
	sizes := []struct {
		in   string
		off  bool
		want int64
		ok   bool
	}{
		{"10", false, 10, true}, {"8k", false, 8192, true}, {"1M", false, 1 << 20, true},
		{"1g", false, 0, false}, {"1g", true, 1 << 30, true}, {"1x", true, 0, false}, {"k", false, 0, false},
	}
	for _, tt := range sizes {
		var got int64
		var ok bool
		if tt.off {
			got, ok = parseOffset(tt.in)
		} else {
			got, ok = parseSize(tt.in)
		}
		if ok != tt.ok || got != tt.want {
			t.Errorf("size %q = %v %v", tt.in, got, ok)
		}
	}
}

func TestDirectives(t *testing.T) {
	ds := Directives()
	byName := map[string]DirectiveInfo{}
	for i, d := range ds {
		if i > 0 && ds[i-1].Name >= d.Name {
			t.Fatalf("not sorted or duplicate at %q", d.Name)
		}
		byName[d.Name] = d
	}
	checks := map[string]string{
		"grpc_pass": statusImplemented, "listen": statusImplemented, "sendfile": statusIgnored,
		"proxy_pass": statusUnsupported, "fastcgi_pass": statusUnsupported, "content_by_lua_block": statusUnsupported,
		"worker_connections": statusImplemented, "map": statusImplemented,
	}
	for name, st := range checks {
		if byName[name].Status != st {
			t.Errorf("%s: %q, want %q", name, byName[name].Status, st)
		}
	}
	if got := byName["server"].Contexts; !reflect.DeepEqual(got, []string{"http", "upstream"}) {
		t.Errorf("server contexts %v", got)
	}
	if len(ds) < 500 {
		t.Errorf("only %d directives", len(ds))
	}
}

func TestDefaultAccessLog(t *testing.T) {
	dir, cfg, _, err := load(t, map[string]string{"nginx.conf": "events{} http { server {} }"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.HTTP.Servers[0].Settings.AccessLogs
	if len(got) != 1 || got[0].Path != filepath.Join(dir, "logs/access.log") || got[0].Format != "combined" {
		t.Errorf("default access log %+v", got)
	}
}
