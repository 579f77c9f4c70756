package access

import (
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/limit"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

// load parses an http block body and returns the phase of the location
// /t of its only server.
func load(t testing.TB, body string) *Phase {
	t.Helper()
	conf := "events {}\nhttp {\naccess_log off;\n" + body + "\n}\n"
	cfg, _, err := parser.LoadBytes(filepath.Join(t.TempDir(), "nginx.conf"), []byte(conf), parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := route.New(cfg.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	var zones Zones
	zones.Req, zones.Conn = limit.NewZones().Bind(cfg.HTTP.LimitReqZones, cfg.HTTP.LimitConnZones)
	var loc *config.Location
	for _, l := range cfg.HTTP.Servers[0].Locations {
		if l.Path == "/t" {
			loc = l
		}
	}
	p, err := New(&loc.Settings, loc.LimitExcept, tbl, zones, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func request(addr string, headers ...hpack.HeaderField) *route.Request {
	ip, port, _ := net.SplitHostPort(addr)
	pn := 0
	for _, c := range port {
		pn = pn*10 + int(c-'0')
	}
	return &route.Request{Method: "POST", Path: "/t", Proto: "HTTP/2.0", Headers: headers,
		RemoteAddr: &net.TCPAddr{IP: net.ParseIP(ip), Port: pn}}
}

func TestRealIP(t *testing.T) {
	p := load(t, `server { location /t {
		set_real_ip_from 127.0.0.1; set_real_ip_from 10.0.0.0/8;
		real_ip_header X-Forwarded-For; real_ip_recursive on;
		grpc_pass 127.0.0.1:1; } }`)
	for _, tc := range []struct {
		from string
		xff  []string
		want string
	}{
		{"127.0.0.1:5000", []string{"192.0.2.1"}, "192.0.2.1"},
		{"127.0.0.1:5000", []string{"192.0.2.1, 10.1.1.1"}, "192.0.2.1"},
		{"127.0.0.1:5000", []string{"192.0.2.1, 198.51.100.7, 10.1.1.1"}, "198.51.100.7"},
		{"127.0.0.1:5000", []string{"192.0.2.1", "10.1.1.1"}, "192.0.2.1"},
		{"127.0.0.1:5000", []string{"10.2.2.2, 10.1.1.1"}, "10.2.2.2"},
		{"127.0.0.1:5000", []string{"garbage"}, "127.0.0.1"},
		{"127.0.0.1:5000", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"192.0.2.9:5000", []string{"10.1.1.1"}, "192.0.2.9"}, // untrusted: header ignored
	} {
		var hs []hpack.HeaderField
		for _, v := range tc.xff {
			hs = append(hs, hpack.HeaderField{Name: "x-forwarded-for", Value: v})
		}
		r := request(tc.from, hs...)
		p.Run(r)
		got := r.RemoteAddr.(*net.TCPAddr).IP.String()
		if got != tc.want {
			t.Errorf("from %s XFF %q: $remote_addr %s, want %s", tc.from, tc.xff, got, tc.want)
		}
		if tc.want != "127.0.0.1" && tc.want != "192.0.2.9" && r.ConnAddr == nil {
			t.Errorf("from %s XFF %q: ConnAddr not kept", tc.from, tc.xff)
		}
	}
}

func TestSatisfyAndLimitExcept(t *testing.T) {
	p := load(t, `server { location /t {
		satisfy any; allow 10.0.0.0/8; deny all;
		limit_except GET { deny 10.0.0.1; }
		grpc_pass 127.0.0.1:1; } }`)
	for _, tc := range []struct {
		method, from string
		want         int
	}{
		{"GET", "10.0.0.1:1", 0},
		{"GET", "127.0.0.1:1", 403},
		{"POST", "10.0.0.1:1", 403},
		{"POST", "10.0.0.2:1", 0}, // limit_except's own rules: no rule matches, nothing denies
		{"POST", "127.0.0.1:1", 0},
	} {
		r := request(tc.from)
		r.Method = tc.method
		if got := p.Run(r).Status; got != tc.want {
			t.Errorf("%s from %s: %d, want %d", tc.method, tc.from, got, tc.want)
		}
	}
}

// BenchmarkLimits is the hot-path cost of a limit_req that never refuses
// and a limit_conn, keyed by $binary_remote_addr: Run plus Release. (The
// burst is large because nginx's clock, like gproxy's, has millisecond
// steps: calls within one millisecond all add to the excess.)
func BenchmarkLimits(b *testing.B) {
	p := load(b, `limit_req_zone $binary_remote_addr zone=rate:1m rate=100000000r/s;
		limit_conn_zone $binary_remote_addr zone=conn:1m;
		server { location /t { limit_req zone=rate burst=1000000 nodelay; limit_conn conn 1000; grpc_pass 127.0.0.1:1; } }`)
	r := request("127.0.0.1:5000")
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for range b.N {
		res := p.Run(r)
		if res.Status != 0 {
			b.Fatal(res.Status)
		}
		res.Held.Release()
	}
	// CPU time per call: steadier than wall time on a shared machine.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the user and system CPU time the process has used, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestUserFileChanges: an edited password file takes effect without a
// reload (within the one-second re-check); a file that disappears makes
// requests with credentials fail with 403, as nginx answers when it
// cannot find it.
func TestUserFileChanges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte("u:{PLAIN}one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := load(t, `server { location /t { auth_basic "R"; auth_basic_user_file `+path+`; grpc_pass 127.0.0.1:1; } }`)
	try := func(pw string) int {
		r := request("127.0.0.1:1", hpack.HeaderField{Name: "authorization",
			Value: "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+pw))})
		return p.Run(r).Status
	}
	if got := try("one"); got != 0 {
		t.Fatalf("password one: %d", got)
	}
	if err := os.WriteFile(path, []byte("u:{PLAIN}two-longer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for try("two-longer") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the new password never took effect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := try("one"); got != 401 {
		t.Errorf("old password: %d, want 401", got)
	}
	os.Remove(path)
	deadline = time.Now().Add(5 * time.Second)
	for try("two-longer") != 403 { // nginx: 403 for a missing file
		if time.Now().After(deadline) {
			t.Fatal("a missing file never failed requests")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUserFileVariables: a password file named with variables is chosen
// per request; a name that does not exist answers 403, as nginx.
func TestUserFileVariables(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.htpasswd"), []byte("u:{PLAIN}pa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := load(t, `server { location /t { auth_basic "R"; auth_basic_user_file `+dir+`/$http_x_tenant.htpasswd; grpc_pass 127.0.0.1:1; } }`)
	try := func(tenant, pw string) int {
		hs := []hpack.HeaderField{{Name: "x-tenant", Value: tenant}}
		if pw != "" {
			hs = append(hs, hpack.HeaderField{Name: "authorization", Value: "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+pw))})
		}
		return p.Run(request("127.0.0.1:1", hs...)).Status
	}
	for _, tc := range []struct {
		tenant, pw string
		want       int
	}{
		{"a", "pa", 0}, {"a", "pa", 0}, {"a", "x", 401}, {"a", "", 401}, {"b", "pa", 403}, {"b", "", 401},
	} {
		if got := try(tc.tenant, tc.pw); got != tc.want {
			t.Errorf("tenant %q password %q: %d, want %d", tc.tenant, tc.pw, got, tc.want)
		}
	}
}
