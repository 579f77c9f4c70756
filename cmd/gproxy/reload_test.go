package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reloadConf is the configuration of TestReloadUnderLoad: the kept
// listener passes unary calls to upstream "unary" and streams to
// "streams"; flip swaps the two backends between the groups and adds a
// second listener.
func reloadConf(port, extra int, b1, b2 string, flip bool) string {
	u, s := b1, b2
	listen2 := ""
	if flip {
		u, s = b2, b1
		listen2 = fmt.Sprintf("listen 127.0.0.1:%d http2;", extra)
	}
	return fmt.Sprintf(`daemon off;
pid logs/gproxy.pid;
error_log logs/error.log notice;
events {}
http {
    access_log off;
    upstream unary { server %s; }
    upstream streams { server %s; }
    server {
        listen 127.0.0.1:%d http2;
        %s
        location / { grpc_pass grpc://unary; }
        location /grpc.testing.TestService/FullDuplexCall { grpc_pass grpc://streams; }
        location = /metrics { gproxy_metrics; }
    }
}
`, u, s, port, listen2)
}

// TestReloadUnderLoad runs 50 `-s reload`s under a bounded load of unary
// and streaming calls, alternating configurations that move the backends
// between upstreams and add and remove a listener: no call on the kept
// listener fails, the added listener serves and the removed one stops,
// and once the load ends gproxy holds no more descriptors than before it
// (no leaked client or upstream connections).
func TestReloadUnderLoad(t *testing.T) {
	b1, b2 := startGRPCBackend(t, "b1"), startGRPCBackend(t, "b2")
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	pidFile := prefix + "logs/gproxy.pid"
	errorLog := prefix + "logs/error.log"
	port, extra := freePort(t), freePort(t)
	writeFile(t, conf, reloadConf(port, extra, b1.addr, b2.addr, false))
	cmd, stderr := foreground(t, "-p", prefix, "-c", conf)
	waitFor(t, "the pid file", func() bool { return readPIDFile(pidFile) == cmd.Process.Pid })
	pid := cmd.Process.Pid
	baseline := openFDs(t, pid)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	baseGoroutines := goroutines(t, metricsURL)

	ld := startLoad(t, fmt.Sprintf("127.0.0.1:%d", port), 2, 4, 2)
	time.Sleep(200 * time.Millisecond)
	for i := 1; i <= 50; i++ {
		flip := i%2 == 1
		writeFile(t, conf, reloadConf(port, extra, b1.addr, b2.addr, flip))
		if r := runGproxy(t, "-p", prefix, "-c", conf, "-s", "reload"); r.code != 0 {
			t.Fatalf("reload %d: exit %d, %s", i, r.code, r.stderr)
		}
		want := i
		waitFor(t, fmt.Sprintf("reload %d", i), func() bool {
			return strings.Count(readFile(t, errorLog), "reloaded") >= want
		})
		if flip != accepts(extra) {
			// The listener opens before the swap and closes right after
			// it: the state is settled once the reload is logged.
			t.Errorf("reload %d: extra listener accepting=%v, want %v", i, !flip, flip)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	ok, failed, errs := ld.finish()
	t.Logf("%d calls succeeded, %d failed across 50 reloads", ok, failed)
	if failed > 0 || ok == 0 {
		t.Errorf("%d failed calls on the kept listener, e.g. %q", failed, errs)
	}
	if b1.svc.Unary() == 0 || b2.svc.Unary() == 0 || b1.svc.Streams() == 0 || b2.svc.Streams() == 0 {
		t.Errorf("calls did not follow the moves: b1 %d/%d, b2 %d/%d (unary/streams)",
			b1.svc.Unary(), b1.svc.Streams(), b2.svc.Unary(), b2.svc.Streams())
	}
	// Client connections are closed; the kept groups may hold one pooled
	// connection to each backend, and the codec's idle-connection poller
	// (started when the first connection went idle) its epoll instance
	// and eventfd.
	waitFor(t, "descriptors back to the baseline", func() bool { return openFDs(t, pid) <= baseline+4 })
	// Goroutines: the pooled upstream connections' readers at most beyond
	// the baseline (the scrape's own connection is counted in both).
	waitFor(t, "goroutines back to the baseline", func() bool { return goroutines(t, metricsURL) <= baseGoroutines+4 })
	if log := readFile(t, errorLog); strings.Contains(log, "[error]") || strings.Contains(log, "[alert]") || strings.Contains(log, "[crit]") {
		t.Errorf("error log:\n%s", log)
	}
	_ = cmd.Process.Kill()
	_ = stderr
}

// goroutines reads go_goroutines from gproxy's metrics.
func goroutines(t *testing.T, url string) int {
	t.Helper()
	_, _, body := get(t, url)
	m := regexp.MustCompile(`(?m)^go_goroutines (\d+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no go_goroutines in:\n%s", body)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestReloadRefusesNewSocketOption changes an option that takes effect
// only when a socket is bound (reuseport) on a kept address: the reload is
// refused with the reason in the error log, and the old socket serves on.
func TestReloadRefusesNewSocketOption(t *testing.T) {
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	port := freePort(t)
	writeFile(t, conf, runConf("daemon off;", port, ""))
	cmd, _ := foreground(t, "-p", prefix, "-c", conf)
	waitFor(t, "the pid file", func() bool { return readPIDFile(prefix+"logs/gproxy.pid") == cmd.Process.Pid })
	writeFile(t, conf, strings.Replace(runConf("daemon off;", port, ""), " http2;", " http2 reuseport;", 1))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`[error] %d#0: reload failed, keeping the running configuration: changing SO_REUSEPORT of "listen 127.0.0.1:%d" needs a new socket`, cmd.Process.Pid, port)
	waitFor(t, "the refused reload", func() bool { return fileContains(prefix+"logs/error.log", want) })
	if !accepts(port) {
		t.Error("the kept socket stopped serving")
	}
}
