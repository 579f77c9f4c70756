package accesslog

import (
	"bufio"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/proxy/nginxtest"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

// diffConf is served by nginx and read by gproxy alike: the predefined
// combined format, the article's main format, and formats covering the
// not-found rules and the three escape= modes.
const diffConf = `
log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                '$status $body_bytes_sent "$http_referer" '
                '"$http_user_agent" "$http_x_forwarded_for"';
log_format vars 'args=$args|qs=$query_string|ru=$remote_user|ct=$content_type|cl=$content_length|arg=$arg_x|ck=$cookie_a|sh=$sent_http_x_nope|ua=$upstream_addr|us=$upstream_status|h=$host|sn=$server_name|uri=$uri|hh=$http_host|rl=$request_uri|m=$request_method|p=$server_protocol|s=$scheme';
log_format j escape=json '{"ua":"$http_user_agent","ref":"$http_referer","args":"$args","ru":"$remote_user","req":"$request","st":$status}';
log_format n escape=none 'ua=$http_user_agent|ref=$http_referer|args=$args|ru=$remote_user|req=$request';
log_format d escape=default 'ua=$http_user_agent|ref=$http_referer|ck=$http_cookie';
server {
    listen {ADDR};
    server_name example.test;
    access_log {DIR}/combined.log;
    access_log {DIR}/main.log main;
    access_log {DIR}/vars.log vars;
    access_log {DIR}/json.log j;
    access_log {DIR}/none.log n;
    access_log {DIR}/default.log d;
    location / { return 200 "hello\n"; }
}
`

var diffLogs = []string{"combined.log", "main.log", "vars.log", "json.log", "none.log", "default.log"}

// diffRequest is one HTTP/1.1 request sent to nginx; headers are written
// as "Name: value" in order.
type diffRequest struct {
	target  string
	headers [][2]string
}

var diffRequests = []diffRequest{
	{"/a/b?x=1", [][2]string{{"Host", "example.test"}, {"User-Agent", "curl/7.88.1"}}},
	{"/plain", [][2]string{{"Host", "example.test"}}},
	{"/q?", [][2]string{{"Host", "example.test"}, {"User-Agent", "x"}}},
	{"/c?y=2&x=", [][2]string{
		{"Host", "example.test"},
		{"User-Agent", "a\"b\\c\x01\x1b\x7f\xc3\xa9\tz\x08\x0c"},
		{"Referer", "http://r/\"x\""},
		{"Cookie", "b=2; a=1"},
		{"Authorization", "Basic dXNlcjpwYXNz"},
		{"Content-Type", "text/x"},
		{"X-Forwarded-For", "10.0.0.1"},
		{"X-Forwarded-For", "10.0.0.2"},
	}},
	{"/e", [][2]string{{"Host", "x"}, {"User-Agent", ""}, {"Referer", ""}, {"Authorization", "Basic OnBhc3M="}}},
	{"/%41b/../c?x=%20", [][2]string{{"Host", "Example.TEST:80"}, {"Content-Length", "0"}}},
}

// TestNginxDifferential sends the same requests to a real nginx (when
// installed) and, as route.Requests filled the way the engine fills them,
// to a Set built from the same configuration; every log line must be the
// same once the time between brackets is masked.
func TestNginxDifferential(t *testing.T) {
	nginxDir, addr := startNginx(t, diffConf)
	for _, rq := range diffRequests {
		nginxGet(t, addr, rq)
	}
	h, s, dir := load(t, strings.ReplaceAll(diffConf, "{ADDR}", "127.0.0.1:1"))
	srv := h.Servers[0]
	lg := s.For(&srv.Locations[0].Settings)
	if lg == nil || len(lg.outs) != len(diffLogs) {
		t.Fatalf("location logger %v, want %d outputs", lg, len(diffLogs))
	}
	for _, rq := range diffRequests {
		r := &route.Request{
			Method: "GET", Path: rq.target, Proto: "HTTP/1.1",
			RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000},
			LocalAddr:  &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080},
			Server:     srv, Start: time.Now(), End: time.Now(),
			Status: 200, BodyBytesSent: int64(len("hello\n")),
		}
		for _, hd := range rq.headers {
			r.Headers = append(r.Headers, hpack.HeaderField{Name: strings.ToLower(hd[0]), Value: hd[1]})
		}
		lg.Log(r)
	}
	s.Flush()
	// nginx writes its line after the response; wait until all are there.
	waitFor(t, "nginx's log lines", func() bool {
		return strings.Count(readFile(t, filepath.Join(nginxDir, "default.log")), "\n") == len(diffRequests)
	})
	if testing.Verbose() {
		for _, name := range diffLogs {
			t.Logf("%s:\n%s", name, readFile(t, filepath.Join(dir, name)))
		}
	}
	timeRE := regexp.MustCompile(`\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]`)
	for _, name := range diffLogs {
		want := strings.Split(timeRE.ReplaceAllString(readFile(t, filepath.Join(nginxDir, name)), "[TIME]"), "\n")
		got := strings.Split(timeRE.ReplaceAllString(readFile(t, filepath.Join(dir, name)), "[TIME]"), "\n")
		if len(got) != len(want) {
			t.Errorf("%s: %d lines, nginx wrote %d:\n%s", name, len(got), len(want), strings.Join(got, "\n"))
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s line %d:\n got   %q\n nginx %q", name, i+1, got[i], want[i])
			}
		}
	}
}

// startNginx runs nginx with the given http block body ({ADDR} and {DIR}
// replaced), and returns its directory and address.
func startNginx(t *testing.T, httpBody string) (dir, addr string) {
	t.Helper()
	return nginxtest.Start(t, httpBody)
}

// nginxGet sends one raw HTTP/1.1 request and waits for the whole answer.
func nginxGet(t *testing.T, addr string, rq diffRequest) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET " + rq.target + " HTTP/1.1\r\n"
	for _, h := range rq.headers {
		req += h[0] + ": " + h[1] + "\r\n"
	}
	if _, err := io.WriteString(c, req+"Connection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, " 200 ") {
		t.Fatalf("%s: %q %v", rq.target, line, err)
	}
	io.Copy(io.Discard, br)
}
