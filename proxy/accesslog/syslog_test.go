package accesslog

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/proxy/route"
	"github.com/gproxy/gproxy/proxy/syslog/syslogtest"
	"golang.org/x/net/http2/hpack"
)

// syslogConf names every form of destination: UDP with nginx's defaults,
// a unix socket with every parameter, an empty tag at the extreme
// priorities.
const syslogConf = `
log_format short '$request_uri "$http_user_agent" $status';
server {
    listen {ADDR};
    access_log syslog:server={UDP} short;
    access_log syslog:server=unix:{SOCK},facility=local0,severity=warn,tag=foo,nohostname short;
    access_log syslog:server={UDP},tag=,facility=kern,severity=emerg;
    access_log syslog:server={UDP},tag=T_1,facility=local7,severity=debug short;
    location / { return 200 "hello\n"; }
}
`

// TestSyslogNginx sends the same requests to a real nginx (when installed)
// and, as route.Requests, to a Set built from the same configuration: the
// datagrams must be the same, byte for byte, once the times are masked.
func TestSyslogNginx(t *testing.T) {
	reqs := []diffRequest{
		{"/a?x=1", [][2]string{{"Host", "example.test"}, {"User-Agent", "a\"b\\c\x01\xc3\xa9"}}},
		{"/b", [][2]string{{"Host", "example.test"}}},
	}
	fill := func(conf string, c *syslogtest.Listener) string {
		return strings.NewReplacer("{UDP}", c.UDP.LocalAddr().String(), "{SOCK}", c.Sock).Replace(conf)
	}

	ngx := syslogtest.New(t)
	_, addr := startNginx(t, fill(syslogConf, ngx))
	for _, rq := range reqs {
		nginxGet(t, addr, rq)
	}

	ours := syslogtest.New(t)
	h, s, _ := load(t, strings.ReplaceAll(fill(syslogConf, ours), "{ADDR}", "127.0.0.1:1"))
	srv := h.Servers[0]
	lg := s.For(&srv.Locations[0].Settings)
	for _, rq := range reqs {
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

	stamp := regexp.MustCompile(`^(<\d+>)[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d `)
	local := regexp.MustCompile(`\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]`)
	mask := func(ds []string) []string {
		for i, d := range ds {
			d = stamp.ReplaceAllString(d, "${1}STAMP ")
			ds[i] = local.ReplaceAllString(d, "[TIME]")
		}
		// UDP datagrams of one request go to one socket from three
		// access_logs; their order is the directives' in both programs,
		// but sorting keeps the comparison independent of it.
		sort.Strings(ds)
		return ds
	}
	n := len(reqs)
	for _, c := range []struct {
		name      string
		want, got []string
	}{
		{"udp", syslogtest.Read(t, ngx.UDP, 3*n), syslogtest.Read(t, ours.UDP, 3*n)},
		{"unix", syslogtest.Read(t, ngx.Unix, n), syslogtest.Read(t, ours.Unix, n)},
	} {
		want, got := mask(c.want), mask(c.got)
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s datagram %d:\n got   %q\n nginx %q", c.name, i, got[i], want[i])
			}
		}
	}
}

// TestSyslogLazy: a unix socket that does not exist when the Set is built
// is no error (nginx connects on the first line too); lines reach it once
// it is there.
func TestSyslogLazy(t *testing.T) {
	dir, err := os.MkdirTemp("", "sl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "later")
	h, s, _ := load(t, `log_format short '$request_uri';
server { listen 127.0.0.1:30051; access_log syslog:server=unix:`+sock+`,nohostname,tag=x short; }`)
	lg := s.For(&h.Servers[0].Settings)
	r := grpcRequest(h.Servers[0])
	r.Path = "/lost"
	lg.Log(r)
	pc, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	r.Path = "/kept"
	lg.Log(r)
	got := syslogtest.Read(t, pc, 1)[0]
	if !regexp.MustCompile(`^<190>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d x: /kept$`).MatchString(got) {
		t.Errorf("got %q", got)
	}
}

// TestSyslogShared: access_logs naming one destination with the same
// parameters share one socket, within a Set and across reloads; other
// parameters make another sink.
func TestSyslogShared(t *testing.T) {
	conf := `server { listen 127.0.0.1:30051; access_log syslog:server=127.0.0.1:9,tag=a; }
server { listen 127.0.0.1:30052; access_log syslog:server=127.0.0.1:9,tag=a; access_log syslog:server=127.0.0.1:9,tag=b; }`
	_, s1, _ := load(t, conf)
	_, s2, _ := load(t, conf)
	if len(s1.syslogs) != 2 {
		t.Fatalf("%d sinks, want 2", len(s1.syslogs))
	}
	for k, sl := range s1.syslogs {
		if s2.syslogs[k] != sl {
			t.Errorf("%+v: reload opened a second sink", k)
		}
	}
	s1.Close()
	for k, sl := range s2.syslogs {
		if err := sl.Send(6, []byte("x")); err != nil {
			t.Errorf("%+v: closed with the first Set: %v", k, err)
		}
	}
}
