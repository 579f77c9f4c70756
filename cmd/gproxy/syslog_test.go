package main

import (
	"context"
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/syslog/syslogtest"
)

// errorLogsOf parses a main context through the real parser.
func errorLogsOf(t *testing.T, main string) []config.Log {
	t.Helper()
	cfg, _, err := parser.LoadBytes(filepath.Join(t.TempDir(), "nginx.conf"), []byte(main+"\nevents {}\n"), parser.Options{
		LookupHost: func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg.ErrorLogs
}

// syslogMessage is nginx's error log datagram: PRI, syslog time, host
// (absent with nohostname), tag, then the error log line: time, level,
// PID#TID, text.
var syslogMessage = regexp.MustCompile(`^<(\d+)>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d (?:(\S+) )?(\w*): ` +
	`\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: (.*)$`)

// TestErrorLogSyslog sends the error log to two syslog destinations and
// checks every datagram: the priority from facility= and each entry's own
// level (severity= plays no part, as in nginx), host and tag, and the
// error log line.
func TestErrorLogSyslog(t *testing.T) {
	sl := syslogtest.New(t)
	logs := errorLogsOf(t, "error_log syslog:server="+sl.UDP.LocalAddr().String()+",facility=local3,severity=emerg,tag=edge,nohostname warn;\n"+
		"error_log syslog:server=unix:"+sl.Sock+" info;")
	l, err := newErrorLog(logs, "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	l.logger.Debug("not sent")
	l.logger.Info("info line")
	l.logger.Warn("warned")
	l.logger.Error("upstream down", zap.String("peer", "127.0.0.1:1"))
	l.logger.Error(strings.Repeat("z", 3000))

	host, _ := os.Hostname()
	host = strings.ToLower(host)
	type want struct{ pri, host, tag, level, text string }
	long := strings.Repeat("z", 2048)
	for _, c := range []struct {
		pc    net.PacketConn
		wants []want
	}{
		{sl.UDP, []want{
			{"156", "", "edge", "warn", "warned"},
			{"155", "", "edge", "error", `upstream down, peer: 127.0.0.1:1`},
			{"155", "", "edge", "error", long},
		}},
		{sl.Unix, []want{
			{"189", host, "nginx", "notice", "info line"},
			{"188", host, "nginx", "warn", "warned"},
			{"187", host, "nginx", "error", `upstream down, peer: 127.0.0.1:1`},
			{"187", host, "nginx", "error", long},
		}},
	} {
		for i, d := range syslogtest.Read(t, c.pc, len(c.wants)) {
			w := c.wants[i]
			if w.text == long {
				// Cut at nginx's 2048 bytes of error line.
				m := syslogMessage.FindStringSubmatch(d)
				if m == nil || len(d)-strings.Index(d, ": ")-2 != 2048 || !strings.HasPrefix(long, m[5]) {
					t.Errorf("long line: %d bytes %.120q", len(d), d)
				}
				continue
			}
			m := syslogMessage.FindStringSubmatch(d)
			if m == nil {
				t.Errorf("datagram %q is not nginx's shape", d)
				continue
			}
			if got := (want{m[1], m[2], m[3], m[4], m[5]}); got != w {
				t.Errorf("datagram %q:\n got %+v\nwant %+v", d, got, w)
			}
		}
	}
}

// TestErrorLogSyslogNginx compares gproxy's error log datagrams with real
// nginx's (when installed): same shape, same host and tag, and a priority
// that is facility*8 + the level's severity in both.
func TestErrorLogSyslogNginx(t *testing.T) {
	nginx := nginxPath()
	if nginx == "" {
		t.Skip("nginx not installed")
	}
	severity := map[string]int{"emerg": 0, "alert": 1, "crit": 2, "error": 3, "warn": 4, "notice": 5, "info": 6, "debug": 7}
	check := func(who, d string) {
		t.Helper()
		m := syslogMessage.FindStringSubmatch(d)
		host, _ := os.Hostname()
		if m == nil || m[2] != strings.ToLower(host) || m[3] != "gw_1" {
			t.Fatalf("%s sent %q", who, d)
		}
		if pri, _ := strconv.Atoi(m[1]); pri != 16*8+severity[m[4]] {
			t.Errorf("%s: priority %d for facility local0 and level %s in %q", who, pri, m[4], d)
		}
	}
	dest := func(sl *syslogtest.Listener) string {
		return "syslog:server=" + sl.UDP.LocalAddr().String() + ",facility=local0,severity=emerg,tag=gw_1"
	}

	ngx := syslogtest.New(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	text := "daemon off;\nmaster_process off;\npid " + dir + "/nginx.pid;\nerror_log " + dest(ngx) + " notice;\nevents {}\n" +
		"http { access_log off; server { listen " + addr + "; root " + dir + "; } }\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start nginx: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// nginx's start-up notices go out before it knows the host name (an
	// empty HOSTNAME field); the error of a request for a missing file
	// comes after.
	for i := 0; ; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_, _ = c.Write([]byte("GET /missing HTTP/1.0\r\n\r\n"))
			c.Close()
			break
		}
		if i == 100 {
			t.Fatal("nginx does not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; ; i++ {
		d := syslogtest.Read(t, ngx.UDP, 1)[0]
		if strings.Contains(d, "/missing") {
			check("nginx", d)
			break
		}
		if i == 20 {
			t.Fatalf("no error from nginx for /missing; last datagram %q", d)
		}
	}

	ours := syslogtest.New(t)
	l, err := newErrorLog(errorLogsOf(t, "error_log "+dest(ours)+" notice;"), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	l.logger.Info("started")
	l.logger.Warn("warned")
	for _, d := range syslogtest.Read(t, ours.UDP, 2) {
		check("gproxy", d)
	}
}
