package accesslog

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

func TestEscape(t *testing.T) {
	cases := []struct {
		mode escaping
		in   string
		want string
	}{
		{escDefault, "plain text/1.0", "plain text/1.0"},
		{escDefault, `a"b\c`, `a\x22b\x5Cc`},
		{escDefault, "\x00\x1f\x20\x7e\x7f\x80\xff", `\x00\x1F ~\x7F\x80\xFF`},
		{escDefault, "é\n", `\xC3\xA9\x0A`},
		{escJSON, `a"b\c`, `a\"b\\c`},
		{escJSON, "\n\r\t\b\f\x00\x1b\x1f", `\n\r\t\b\f\u0000\u001B\u001F`},
		{escJSON, "\x7fé", "\x7fé"},
		{escNone, "\"\\\x00é\n", "\"\\\x00é\n"},
	}
	for _, c := range cases {
		got := escape([]byte("pre:"+c.in), 4, c.mode)
		if string(got) != "pre:"+c.want {
			t.Errorf("escape(%d, %q) = %q, want %q", c.mode, c.in, got[4:], c.want)
		}
	}
}

// TestGRPCLine formats a finished gRPC call with the article's main format
// and a gRPC format, and checks every field.
func TestGRPCLine(t *testing.T) {
	h, s, dir := load(t, `
log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                '$status $body_bytes_sent "$http_referer" '
                '"$http_user_agent" "$http_x_forwarded_for"';
log_format grpc escape=json '{"t":"$time_iso8601","ms":$msec,"rt":$request_time,"st":$status,"gs":"$grpc_status","gm":"$grpc_message",'
                '"ua":"$upstream_addr","us":"$upstream_status","urt":"$upstream_response_time","uct":"$upstream_connect_time",'
                '"bs":$bytes_sent,"rl":$request_length,"ct":"$content_type","h":"$host","sp":"$server_port"}';
server {
    listen 127.0.0.1:30051 http2;
    server_name api.test;
    access_log {DIR}/main.log main;
    access_log {DIR}/grpc.log grpc;
    location / { grpc_pass grpc://127.0.0.1:50051; }
}`)
	srv := h.Servers[0]
	r := grpcRequest(srv)
	r.GRPCMessage = "ok \"quoted\""
	r.Upstreams = append(r.Upstreams, route.UpstreamAttempt{Addr: "127.0.0.1:50052", Status: 0, ResponseTime: -1, ConnectTime: 2 * time.Millisecond})
	s.For(&srv.Locations[0].Settings).Log(r)
	s.Flush()
	if got, want := readFile(t, filepath.Join(dir, "main.log")),
		`127.0.0.1 - - [25/Nov/2026:08:35:47 +0000] "POST /helloworld.Greeter/SayHello HTTP/2.0" 200 17 "-" "grpc-go/1.85.0" "-"`+"\n"; got != want {
		t.Errorf("main:\n got  %q\n want %q", got, want)
	}
	want := `{"t":"2026-11-25T08:35:47+00:00","ms":1795595747.001,"rt":0.001,"st":200,"gs":"0","gm":"ok \"quoted\"",` +
		`"ua":"127.0.0.1:50051, 127.0.0.1:50052","us":"200, -","urt":"0.001, -","uct":"0.000, 0.002",` +
		`"bs":120,"rl":95,"ct":"application/grpc","h":"api.test","sp":"30051"}` + "\n"
	if got := readFile(t, filepath.Join(dir, "grpc.log")); got != want {
		t.Errorf("grpc:\n got  %q\n want %q", got, want)
	}
}

func TestBufferFull(t *testing.T) {
	h, s, dir := load(t, `
log_format short '$request_uri';
server { listen 127.0.0.1:30051; access_log {DIR}/a.log short buffer=1k; }`)
	lg := s.For(&h.Servers[0].Settings)
	path := filepath.Join(dir, "a.log")
	r := grpcRequest(h.Servers[0])
	r.Path = "/" + strings.Repeat("x", 99) // 101 bytes a line
	for range 9 {
		lg.Log(r)
	}
	time.Sleep(50 * time.Millisecond) // would show a wrong early write
	if got := readFile(t, path); got != "" {
		t.Fatalf("wrote %d bytes before the 1k buffer filled", len(got))
	}
	lg.Log(r) // 1010 bytes: still below 1k
	lg.Log(r) // full: written without Flush
	waitFor(t, "the full buffer to be written", func() bool { return len(readFile(t, path)) == 11*101 })
	lg.Log(r)
	time.Sleep(50 * time.Millisecond)
	if got := len(readFile(t, path)); got != 11*101 {
		t.Fatalf("buffer= without flush= wrote by time: %d bytes", got)
	}
	s.Close()
	if got := len(readFile(t, path)); got != 12*101 {
		t.Fatalf("after Close: %d bytes, want %d", got, 12*101)
	}
	lg.Log(r) // after Close: dropped, no panic
}

func TestFlushTimer(t *testing.T) {
	h, s, dir := load(t, `
log_format short '$status';
server {
    listen 127.0.0.1:30051;
    access_log {DIR}/timed.log short buffer=64k flush=50ms;
    location /d { access_log {DIR}/default.log short; }
}`)
	r := grpcRequest(h.Servers[0])
	for _, c := range []struct {
		lg   *Logger
		path string
	}{
		{s.For(&h.Servers[0].Settings), filepath.Join(dir, "timed.log")},
		{s.For(&h.Servers[0].Locations[0].Settings), filepath.Join(dir, "default.log")},
	} {
		start := time.Now()
		c.lg.Log(r)
		waitFor(t, c.path, func() bool { return readFile(t, c.path) == "200\n" })
		t.Logf("%s written after %v", filepath.Base(c.path), time.Since(start).Round(time.Millisecond))
	}
}

func TestIf(t *testing.T) {
	h, s, dir := load(t, `
log_format short '$request_uri';
map $status $loggable { ~^[23] 0; default 1; }
server {
    listen 127.0.0.1:30051;
    access_log {DIR}/errors.log short if=$loggable;
    access_log {DIR}/arg.log short if=$arg_log;
}`)
	lg := s.For(&h.Servers[0].Settings)
	r := grpcRequest(h.Servers[0])
	for _, c := range []struct {
		path   string
		status int
	}{{"/a?log=1", 200}, {"/b?log=0", 500}, {"/c", 404}, {"/d?log=", 204}, {"/e?log=yes", 302}} {
		r.Path, r.Status = c.path, c.status
		lg.Log(r)
	}
	s.Flush()
	if got, want := readFile(t, filepath.Join(dir, "errors.log")), "/b?log=0\n/c\n"; got != want {
		t.Errorf("if=$loggable: %q, want %q", got, want)
	}
	if got, want := readFile(t, filepath.Join(dir, "arg.log")), "/a?log=1\n/e?log=yes\n"; got != want {
		t.Errorf("if=$arg_log: %q, want %q", got, want)
	}
}

// TestReopen rotates a log as logrotate does: rename, then USR1.
func TestReopen(t *testing.T) {
	h, s, dir := load(t, `
log_format short '$request_uri';
server { listen 127.0.0.1:30051; access_log {DIR}/access.log short; }`)
	lg := s.For(&h.Servers[0].Settings)
	r := grpcRequest(h.Servers[0])
	path := filepath.Join(dir, "access.log")
	r.Path = "/before"
	lg.Log(r)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	r.Path = "/still-old" // buffered before Reopen: belongs to the old file
	lg.Log(r)
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	r.Path = "/after"
	lg.Log(r)
	s.Flush()
	if got, want := readFile(t, path+".1"), "/before\n/still-old\n"; got != want {
		t.Errorf("rotated file: %q, want %q", got, want)
	}
	if got, want := readFile(t, path), "/after\n"; got != want {
		t.Errorf("new file: %q, want %q", got, want)
	}
	// A directory where the file was: Reopen fails, the old file stays.
	os.Rename(path, path+".2")
	os.Mkdir(path, 0o755)
	if err := s.Reopen(); err == nil {
		t.Error("Reopen onto a directory succeeded")
	}
	r.Path = "/kept"
	lg.Log(r)
	s.Flush()
	if got, want := readFile(t, path+".2"), "/after\n/kept\n"; got != want {
		t.Errorf("after failed reopen: %q, want %q", got, want)
	}
}

// TestSharedFile: servers and locations naming one path share one open
// file and one buffer; an access_log list equal in effect shares a Logger.
func TestSharedFile(t *testing.T) {
	h, s, dir := load(t, `
log_format short '$server_name $request_uri';
access_log {DIR}/all.log short;
server {
    listen 127.0.0.1:30051; server_name one;
    location /off { access_log off; }
    location /two { access_log {DIR}/all.log short; access_log {DIR}/two.log combined; }
}
server { listen 127.0.0.1:30052; server_name other; }`)
	if n := len(s.files); n != 2 {
		t.Fatalf("%d files open, want 2", n)
	}
	one, other := h.Servers[0], h.Servers[1]
	if s.For(&one.Settings) != s.For(&other.Settings) {
		t.Error("servers with the same access_log got different Loggers")
	}
	if lg := s.For(&one.Locations[0].Settings); lg != nil {
		t.Error("access_log off gave a Logger")
	}
	two := s.For(&one.Locations[1].Settings)
	if two == nil || len(two.outs) != 2 {
		t.Fatalf("location with two access_logs: %+v", two)
	}
	r := grpcRequest(one)
	r.Path = "/two/x"
	two.Log(r)
	r.Server, r.Path = other, "/y"
	s.For(&other.Settings).Log(r)
	s.Flush()
	if got, want := readFile(t, filepath.Join(dir, "all.log")), "one /two/x\nother /y\n"; got != want {
		t.Errorf("all.log: %q, want %q", got, want)
	}
	if got := readFile(t, filepath.Join(dir, "two.log")); !strings.Contains(got, `"POST /two/x HTTP/2.0" 200 17 "-" "grpc-go/1.85.0"`) {
		t.Errorf("two.log: %q", got)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ conf, want string }{
		{`server { listen 127.0.0.1:1; access_log {DIR}/nodir/x.log; }`,
			`open() "{DIR}/nodir/x.log" failed (no such file or directory) in {DIR}/nginx.conf:3`},
	}
	for _, c := range cases {
		h, tbl, dir := parse(t, c.conf)
		s, err := New(h, tbl, nil)
		want := strings.ReplaceAll(c.want, "{DIR}", dir)
		if err == nil {
			s.Close()
			t.Errorf("%s: no error, want %q", c.conf, want)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got  %v\n want %s", c.conf, err, want)
		}
	}
	// Equal parameters, or one access_log without buffer=, are fine.
	for _, conf := range []string{
		`server { listen 127.0.0.1:1; access_log {DIR}/x.log combined buffer=32k; access_log {DIR}/x.log combined; }`,
		`server { listen 127.0.0.1:1; access_log {DIR}/x.log; access_log {DIR}/x.log combined buffer=32k flush=1s; }
		 server { listen 127.0.0.1:2; access_log {DIR}/x.log combined buffer=32k flush=1s; }`,
	} {
		h, tbl, _ := parse(t, conf)
		s, err := New(h, tbl, nil)
		if err != nil {
			t.Errorf("%s: %v", conf, err)
			continue
		}
		s.Close()
	}
}

// TestConcurrent logs from many goroutines at once through small buffers
// (so writes, back-pressure and reopen race with logging) and checks that
// every line arrives whole.
func TestConcurrent(t *testing.T) {
	h, s, dir := load(t, `
log_format short '$request_uri $http_user_agent';
server { listen 127.0.0.1:30051; access_log {DIR}/c.log short buffer=4k flush=1ms; access_log {DIR}/d.log; }`)
	lg := s.For(&h.Servers[0].Settings)
	const workers, lines = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := grpcRequest(h.Servers[0])
			for i := range lines {
				r.Path = fmt.Sprintf("/w%d/%d", w, i)
				lg.Log(r)
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			s.Reopen()
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	s.Close()
	got := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(dir, "c.log")), "\n"), "\n")
	if len(got) != workers*lines {
		t.Fatalf("%d lines, want %d", len(got), workers*lines)
	}
	seen := map[string]bool{}
	line := regexp.MustCompile(`^/w\d/\d+ grpc-go/1\.85\.0$`)
	for _, l := range got {
		if !line.MatchString(l) || seen[l] {
			t.Fatalf("bad or repeated line %q", l)
		}
		seen[l] = true
	}
	if n := strings.Count(readFile(t, filepath.Join(dir, "d.log")), "\n"); n != workers*lines {
		t.Fatalf("d.log: %d lines, want %d", n, workers*lines)
	}
}

// TestAllocations: a combined line for a gRPC call costs no allocation.
func TestAllocations(t *testing.T) {
	h, s, _ := load(t, `
log_format grpc escape=json '{"ra":"$remote_addr","t":"$time_iso8601","req":"$request","st":$status,"gs":"$grpc_status","ua":"$upstream_addr","rt":$request_time,"agent":"$http_user_agent"}';
server { listen 127.0.0.1:30051; access_log {DIR}/a.log; access_log {DIR}/b.log grpc if=$status; }`)
	lg := s.For(&h.Servers[0].Settings)
	r := grpcRequest(h.Servers[0])
	r.Headers = append(r.Headers, hpack.HeaderField{Name: "user-agent", Value: "needs \"escaping\""})
	if n := testing.AllocsPerRun(1000, func() { lg.Log(r) }); n > 0 {
		t.Errorf("Log: %.1f allocs per line, want 0", n)
	}
}

// BenchmarkLog logs combined lines from parallel goroutines to a file
// (bounded by the disk) and to /dev/null (the CPU cost of formatting,
// locking and writing).
func BenchmarkLog(b *testing.B) {
	for _, dest := range []string{"{DIR}/a.log", "/dev/null"} {
		b.Run(filepath.Base(dest), func(b *testing.B) {
			h, s, _ := load(b, `server { listen 127.0.0.1:30051; access_log `+dest+`; }`)
			lg := s.For(&h.Servers[0].Settings)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := grpcRequest(h.Servers[0])
				for pb.Next() {
					lg.Log(r)
				}
			})
		})
	}
}

// BenchmarkFormat is the CPU cost of one combined line, without the file.
func BenchmarkFormat(b *testing.B) {
	h, s, _ := load(b, `server { listen 127.0.0.1:30051; access_log {DIR}/a.log; }`)
	lg := s.For(&h.Servers[0].Settings)
	r := grpcRequest(h.Servers[0])
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = lg.outs[0].f.appendLine(buf[:0], lg.t, r)
	}
}

// TestEscapeReference compares the in-place escaper with a plain forward
// one on random bytes.
func TestEscapeReference(t *testing.T) {
	ref := func(in []byte, mode escaping) string {
		var sb strings.Builder
		for _, c := range in {
			switch {
			case mode == escNone:
				sb.WriteByte(c)
			case mode == escDefault && (c < 0x20 || c >= 0x7f || c == '"' || c == '\\'):
				fmt.Fprintf(&sb, `\x%02X`, c)
			case mode == escJSON && jsonShort[c] != 0:
				sb.WriteString(`\` + string(jsonShort[c]))
			case mode == escJSON && c < 0x20:
				fmt.Fprintf(&sb, `\u%04X`, c)
			default:
				sb.WriteByte(c)
			}
		}
		return sb.String()
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		in := make([]byte, rnd.IntN(40))
		for i := range in {
			if rnd.IntN(3) == 0 {
				in[i] = byte(rnd.IntN(256))
			} else {
				in[i] = byte('a' + rnd.IntN(26))
			}
		}
		for _, mode := range []escaping{escDefault, escJSON, escNone} {
			got := escape(append([]byte("p"), in...), 1, mode)
			if want := "p" + ref(in, mode); string(got) != want {
				t.Fatalf("mode %d %q: got %q, want %q", mode, in, got, want)
			}
		}
	}
}

// TestStderr: "stderr" is the process's standard error, never reopened or
// closed.
func TestStderr(t *testing.T) {
	h, tbl, _ := parse(t, `server { listen 127.0.0.1:30051; access_log stderr; }`)
	s, err := New(h, tbl, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := s.files["stderr"]
	if f == nil || f.w != os.Stderr || s.For(&h.Servers[0].Settings) == nil {
		t.Fatalf("stderr not opened as standard error: %+v", s.files)
	}
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stderr.Stat(); err != nil {
		t.Fatalf("stderr closed: %v", err)
	}
}

// TestReloadSharing: a new Set for the same files shares them with the old
// one, so the old Set can be closed at once while its streams still log.
func TestReloadSharing(t *testing.T) {
	dir := t.TempDir()
	build := func(body string) (*Set, *Logger) {
		h, tbl, _ := parse(t, strings.ReplaceAll(body, "{LOGS}", dir))
		s, err := New(h, tbl, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s, s.For(&h.Servers[0].Settings)
	}
	oldSet, oldLog := build(`log_format short '$request_uri';
server { listen 127.0.0.1:30051; access_log {LOGS}/kept.log short; access_log {LOGS}/dropped.log short; }`)
	newSet, newLog := build(`log_format short 'new $request_uri';
server { listen 127.0.0.1:30051; access_log {LOGS}/kept.log short; }`)
	defer newSet.Close()
	if oldSet.files[dir+"/kept.log"] != newSet.files[dir+"/kept.log"] {
		t.Fatal("kept.log opened twice")
	}
	r := grpcRequest(nil)
	r.Path = "/old-before"
	oldLog.Log(r)
	if err := oldSet.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dir+"/dropped.log"); got != "/old-before\n" {
		t.Errorf("dropped.log after Close: %q", got)
	}
	r.Path = "/old-after" // a long stream of the old configuration ends
	oldLog.Log(r)
	r.Path = "/new"
	newLog.Log(r)
	newSet.Flush()
	if got, want := readFile(t, dir+"/kept.log"), "/old-before\n/old-after\nnew /new\n"; got != want {
		t.Errorf("kept.log: %q, want %q", got, want)
	}
	if got := readFile(t, dir+"/dropped.log"); got != "/old-before\n" {
		t.Errorf("dropped.log got lines after its last Set closed: %q", got)
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	for k := range registry.files {
		if strings.HasPrefix(k.path, dir) && k.path != dir+"/kept.log" {
			t.Errorf("%s still open", k.path)
		}
	}
}
