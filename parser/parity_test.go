package parser

import (
	"math"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Cases found by a differential sweep against nginx 1.22 (`nginx -t`):
// every implemented and ignored directive in every context, set twice,
// with too few or too many arguments and with bad values. The expected
// texts are nginx's.

// outcome loads conf and returns its first error ("" if none) and its
// warnings other than gproxy's "ignored by gproxy" ones, with the file's
// directory written "D/" and "F:" for the file.
func outcome(t *testing.T, conf string) (string, []string) {
	t.Helper()
	dir, _, warns, err := load(t, map[string]string{"nginx.conf": conf}, Options{})
	f := filepath.Join(dir, "nginx.conf")
	norm := func(s string) string {
		s = strings.ReplaceAll(s, f+":", "F:")
		return strings.ReplaceAll(s, dir+"/", "D/")
	}
	msg := ""
	if err != nil {
		msg = norm(err.Error())
	}
	var ws []string
	for _, w := range warns {
		if !strings.Contains(w.Msg, "ignored by gproxy") {
			ws = append(ws, norm(w.Error()))
		}
	}
	return msg, ws
}

func TestParityErrors(t *testing.T) {
	const srv = "events{}\nhttp{server{listen 127.0.0.1:1;\n"
	tests := []struct{ conf, want string }{
		// Ignored directives keep nginx's duplicate check, contexts,
		// argument counts and values.
		{"events{}\nhttp{\nsendfile on;\nsendfile on;}\n", `[emerg] "sendfile" directive is duplicate in F:4`},
		{"events{multi_accept on;\nmulti_accept on;}\n", `[emerg] "multi_accept" directive is duplicate in F:2`},
		{"pcre_jit on;\npcre_jit on;\nevents{}\n", `[emerg] "pcre_jit" directive is duplicate in F:2`},
		{srv + "location / {merge_slashes on;}}}\n", `[emerg] "merge_slashes" directive is not allowed here in F:3`},
		{srv + "map_hash_max_size 1;}}\n", `[emerg] "map_hash_max_size" directive is not allowed here in F:3`},
		{"env A B;\nevents{}\n", `[emerg] invalid number of arguments in "env" directive in F:1`},
		{"events{}\nhttp{etag yes;}\n", `[emerg] invalid value "yes" in "etag" directive, it must be "on" or "off" in F:2`},
		{"events{}\nhttp{if_modified_since later;}\n", `[emerg] invalid value "later" in F:2`},
		{"events{}\nhttp{gzip_comp_level 0;}\n", `[emerg] value must be between 1 and 9 in F:2`},
		{"events{}\nhttp{gzip_min_length 1g;}\n", `[emerg] "gzip_min_length" directive invalid value in F:2`},
		{"events{}\nhttp{gzip_buffers 0 4k;}\n", `[emerg] "gzip_buffers" directive invalid value in F:2`},
		{"events{}\nhttp{open_file_cache max=0;}\n", `[emerg] invalid "open_file_cache" parameter "max=0" in F:2`},
		{"events{}\nhttp{open_file_cache inactive=1s;}\n", `[emerg] "open_file_cache" must have the "max" parameter in F:2`},
		{"events{}\nhttp{open_log_file_cache inactive=1s;}\n", `[emerg] "open_log_file_cache" must have "max" parameter in F:2`},
		{"events{}\nhttp{disable_symlinks off from=/;}\n", `[emerg] "from=" cannot be used with "off" parameter in F:2`},
		{"events{}\nhttp{aio on;}\n", `[emerg] "aio on" is unsupported on this platform in F:2`},
		{"events{}\nhttp{open_file_cache_valid 10ms;}\n", `[emerg] "open_file_cache_valid" directive invalid value in F:2`},
		{"events{}\nhttp{http2_recv_buffer_size 32;}\n", `[emerg] "http2_recv_buffer_size" directive value is too small in F:2`},
		{"events{}\nhttp{http2_streams_index_size 3;}\n", `[emerg] "http2_streams_index_size" directive must be a power of two in F:2`},
		{"events{use kqueue;}\n", `[emerg] invalid event type "kqueue" in F:1`},
		{"worker_cpu_affinity 01x0;\nevents{}\n", `[emerg] invalid character "x" in "worker_cpu_affinity" in F:1`},
		{"worker_priority +-1;\nevents{}\n", `[emerg] "worker_priority" directive invalid number in F:1`},
		{"debug_points crash;\nevents{}\n", `[emerg] invalid value "crash" in F:1`},
		{"events{}\nhttp{upstream u {server 127.0.0.1:1; zone z 1k;}}\n", `[emerg] zone "z" is too small in F:2`},
		{"events{}\nhttp{gzip_disable a(;}\n", `[emerg] pcre2_compile() failed: missing closing parenthesis in "a(" in F:2`},
		{"events{}\nhttp{types {a/b x {}}}\n", `[emerg] unexpected "{" in F:2`},
		// Inside if, nginx has a location configuration of its own.
		{srv + "location / {gzip on; if ($uri) {gzip on;\ngzip on;}}}}\n", `[emerg] "gzip" directive is duplicate in F:4`},
		// ngx_parse_time: y and M are for seconds only; limits are int64.
		{"events{}\nhttp{grpc_read_timeout 1y;}\n", `[emerg] "grpc_read_timeout" directive invalid value in F:2`},
		{"events{}\nhttp{keepalive_requests 9223372036854775808;}\n", `[emerg] "keepalive_requests" directive invalid number in F:2`},
		{"events{}\nhttp{client_max_body_size 8589934592g;}\n", `[emerg] "client_max_body_size" directive invalid value in F:2`},
		// Addresses: nginx takes the first colon, and names empty hosts.
		{srv + "listen \"\";}}\n", `[emerg] no host in "" of the "listen" directive in F:3`},
		{srv + "listen :80;}}\n", `[emerg] no host in ":80" of the "listen" directive in F:3`},
		{srv + "listen 127.0.0.1:80:1;}}\n", `[emerg] invalid port in "127.0.0.1:80:1" of the "listen" directive in F:3`},
		{"events{}\nhttp{resolver \"\";}\n", `[emerg] no host in resolver "" in F:2`},
		{"events{}\nhttp{resolver ::1;}\n", `[emerg] invalid port in resolver "::1" in F:2`},
		{srv + "location / {grpc_pass [::1;}}}\n", `[emerg] invalid host in upstream "[::1" in F:3`},
		{srv + "location / {grpc_pass [::1];}}}\n", `[emerg] no port in upstream "[::1]" in F:3`},
		// Messages that name an argument name the one nginx names.
		{srv + "if ($host) x {}}}\n", `[emerg] invalid condition "x" in F:3`},
		{srv + "ssl_certificate nosuch.crt;}}\n", `[emerg] no "ssl_certificate_key" is defined for certificate "nosuch.crt"`},
		// Checks nginx makes once the configuration is read.
		{"events{worker_connections 1;}\nhttp{server{listen 127.0.0.1:1;}server{listen 127.0.0.1:2;}}\n",
			`[emerg] 1 worker_connections are not enough for 2 listening sockets`},
		{"events{}\nhttp{large_client_header_buffers 4 511;\nserver{listen 127.0.0.1:1;}\n}\n",
			`[emerg] the "large_client_header_buffers" size must be equal to or greater than "connection_pool_size" in F:4`},
		// ngx_conf_full_name appends as written; a directory fails at read.
		{"events{}\nhttp{include ./sub//a.conf;}\n", `[emerg] open() "D/./sub//a.conf" failed (2: No such file or directory) in F:2`},
		{"events{}\nhttp{include \"\";}\n", `[crit] pread() "D/" failed (21: Is a directory)`},
		// File serving: ignored, with nginx's checks.
		{"events{}\nhttp{client_body_temp_path /tmp 1 0;}\n", `[emerg] "client_body_temp_path" directive invalid value in F:2`},
		{"events{}\nhttp{proxy_temp_path /tmp 1 2 3 4;}\n", `[emerg] invalid number of arguments in "proxy_temp_path" directive in F:2`},
		{"events{}\nhttp{index \"\";}\n", `[emerg] index "" in "index" directive is invalid in F:2`},
		{"events{}\nhttp{root a;\nroot b;}\n", `[emerg] "root" directive is duplicate in F:3`},
	}
	for _, tt := range tests {
		if got, _ := outcome(t, tt.conf); got != tt.want {
			t.Errorf("%q:\n got %s\nwant %s", tt.conf, got, tt.want)
		}
	}
}

func TestParityAccepted(t *testing.T) {
	// Each of these is fine for nginx -t; the warnings are nginx's.
	const srv = "events{}\nhttp{server{listen 127.0.0.1:1;\n"
	tests := []struct {
		conf  string
		warns []string
	}{
		// Bitmask directives add up at one level; a repeated value warns.
		{"events{}\nhttp{grpc_next_upstream error;\ngrpc_next_upstream ERROR timeout;}\n", []string{`[warn] duplicate value "ERROR" in F:3`}},
		{"events{}\nhttp{ssl_protocols TLSv1.2;\nssl_protocols tlsv1.3;}\n", nil},
		{"events{}\nhttp{ssl_session_cache none;\nssl_session_cache off;}\n", nil},
		{"events{}\nhttp{keepalive_disable msie6;\nkeepalive_disable safari msie6;}\n", []string{`[warn] duplicate value "msie6" in F:3`}},
		{"events{}\nhttp{ssl_verify_client ON;}\n", nil},
		// MIME type lists start with text/html.
		{"events{}\nhttp{gzip_types text/html;}\n", []string{`[warn] duplicate MIME type "text/html" in F:2`}},
		{"events{}\nhttp{types {a/b x X;}\ntypes {c/d x;}}\n", []string{
			`[warn] duplicate extension "x", content type: "a/b", previous content type: "a/b" in F:2`,
			`[warn] duplicate extension "x", content type: "c/d", previous content type: "a/b" in F:3`}},
		// Obsolete and platform warnings.
		{"events{}\nhttp{http2_idle_timeout whatever;}\n", []string{`[warn] the "http2_idle_timeout" directive is obsolete, use the "keepalive_timeout" directive instead in F:2`}},
		{"events{}\nhttp{send_lowat 0;}\n", []string{`[warn] "send_lowat" is not supported, ignored in F:2`}},
		// Contexts nginx allows.
		{srv + "location / {if ($uri) {gzip on; sendfile on; charset utf-8; rewrite_log on;}}}}\n", nil},
		{srv + "if ($uri) {rewrite_log on; uninitialized_variable_warn off;}}}\n", nil},
		// File serving is ignored, with nginx's warnings.
		{srv + "root /x; index a /b; location / {if ($uri) {root /y;}}}}\n", nil},
		{"events{}\nhttp{index /a b; client_body_temp_path a 1 2 3; fastcgi_temp_path b; uwsgi_temp_path c; scgi_temp_path d; proxy_temp_path e;}\n",
			[]string{`[warn] only the last index in "index" directive should be absolute in F:2`}},
		// log_format compiles each argument on its own.
		{"events{}\nhttp{log_format f $remote_addr x;}\n", nil},
		// Times and numbers nginx takes.
		{"events{}\nhttp{grpc_read_timeout 1s30; keepalive_timeout 1h 10; ssl_session_timeout 300y;}\n", nil},
		{"events{}\nhttp{keepalive_requests 9223372036854775807; client_max_body_size 8589934591g;}\n", nil},
		// inet_aton forms of IPv4 addresses.
		{"events{}\nhttp{resolver 127.1 0x7f.0.0.1;\nupstream u {server 0;}}\n", nil},
		// Names are hashed only where several servers share an address.
		{"events{}\nhttp{server{listen 127.0.0.1:1; server_name a a;}}\n", nil},
		{"events{}\nhttp{server{listen 127.0.0.1:1;}\nserver{listen 127.0.0.1:1; server_name ~a;}\nserver{listen 127.0.0.1:1;}}\n",
			[]string{`[warn] conflicting server name "" on 127.0.0.1:1, ignored`}},
	}
	for _, tt := range tests {
		got, warns := outcome(t, tt.conf)
		if got != "" {
			t.Errorf("%q: %s", tt.conf, got)
			continue
		}
		if !reflect.DeepEqual(warns, tt.warns) {
			t.Errorf("%q: warnings\n got %q\nwant %q", tt.conf, warns, tt.warns)
		}
	}
}

func TestBitmaskAccumulates(t *testing.T) {
	cfg, _ := mustLoad(t, "events{}\nhttp{grpc_next_upstream error;\ngrpc_next_upstream http_502;\nserver{listen 127.0.0.1:1; location / {grpc_next_upstream timeout;}}}\n")
	s := cfg.HTTP.Servers[0]
	if want := []string{"error", "http_502"}; !reflect.DeepEqual(s.Settings.GRPC.NextUpstream, want) {
		t.Errorf("server: %q, want %q", s.Settings.GRPC.NextUpstream, want)
	}
	if want := []string{"timeout"}; !reflect.DeepEqual(s.Locations[0].Settings.GRPC.NextUpstream, want) {
		t.Errorf("location: %q, want %q (a level that sets it replaces the inherited set)", s.Locations[0].Settings.GRPC.NextUpstream, want)
	}
}

func TestParseTimeLimits(t *testing.T) {
	tests := []struct {
		in   string
		sec  bool
		want time.Duration
		ok   bool
	}{
		{"1y", true, 365 * 24 * time.Hour, true},
		{"1M", false, 0, false},
		{"0y", false, 0, false},
		{"1h30", false, time.Hour + 30*time.Second, true},
		{"1s500ms", false, 1500 * time.Millisecond, true},
		{"500ms1s", false, 0, false},
		{" 1", false, time.Second, true},
		{"1hm", false, time.Hour, true},
		{"h", false, 0, false},
		{"9223372036854775s", false, time.Duration(math.MaxInt64), true},
		{"9223372036854776s", false, 0, false},
		{"9223372036854775808", true, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseTime(tt.in, tt.sec)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseTime(%q, %v) = %v, %v; want %v, %v", tt.in, tt.sec, got, ok, tt.want, tt.ok)
		}
	}
}

func TestInetAton(t *testing.T) {
	tests := map[string]string{
		"0": "0.0.0.0", "127.1": "127.0.0.1", "0x7f.0.0.1": "127.0.0.1", "017.0.0.1": "15.0.0.1",
		"1.5": "1.0.0.5", "10.1.256": "10.1.1.0", "127.0.0.256": "", "1.2.3.4.5": "", "-1": "", "08": "", "a": "",
	}
	for in, want := range tests {
		ip, ok := inetAton(in)
		got := ""
		if ok {
			got = ip.String()
		}
		if got != want {
			t.Errorf("inetAton(%q) = %q, want %q", in, got, want)
		}
	}
	if _, ok := inetAton("::1"); ok || net.ParseIP("::1") == nil {
		t.Error("inetAton takes IPv4 forms only")
	}
}
