package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Out-of-process proxies for side-by-side measurements (the attack tests):
// gproxy's own binary, so that its RSS is measured as nginx's is, and
// HAProxy with a configuration equivalent to grpcSite's.

var (
	gproxyBinOnce sync.Once
	gproxyBin     string
	gproxyBinErr  error
)

// buildGproxy builds cmd/gproxy once per test binary.
func buildGproxy(t *testing.T) string {
	t.Helper()
	gproxyBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gproxy-e2e-bin")
		if err != nil {
			gproxyBinErr = err
			return
		}
		gproxyBin = filepath.Join(dir, "gproxy")
		out, err := exec.Command("go", "build", "-o", gproxyBin, "github.com/gproxy/gproxy/cmd/gproxy").CombinedOutput()
		if err != nil {
			gproxyBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if gproxyBinErr != nil {
		t.Fatal(gproxyBinErr)
	}
	return gproxyBin
}

// terminate stops p as a service manager does: SIGTERM, then SIGKILL if it
// has not exited (exited fires) within grace.
func terminate[T any](p *os.Process, exited <-chan T, grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
	}
}

// startProcess runs a proxy command until the test ends and waits for
// addrs to listen; kind names it in messages.
func startProcess(t *testing.T, kind string, addrs []string, name string, args ...string) *proxyInstance {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when the process has exited
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		terminate(cmd.Process, exited, 5*time.Second)
		if t.Failed() {
			t.Logf("%s output:\n%s", kind, stderr.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, addr := range addrs {
		ready := make(chan error, 1)
		go func() { ready <- waitListening(ctx, addr) }()
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("%s: %v\n%s", kind, err, stderr.String())
			}
		case <-exited:
			t.Fatalf("%s exited: %v\n%s", kind, waitErr, stderr.String())
		}
	}
	pid := cmd.Process.Pid
	return &proxyInstance{kind: kind, mem: func() (uint64, string) { return vmRSS(pid), kind + " VmRSS" },
		anon: func() uint64 { return procStatus(pid, "RssAnon:") }}
}

// startGproxyProcess runs the gproxy binary with the harness's main
// context, GOMAXPROCS=1 (one core, as nginx's one worker).
func startGproxyProcess(t *testing.T, httpBody string) *proxyInstance {
	t.Helper()
	bin := buildGproxy(t)
	dir := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/gproxy.pid;
error_log %[1]s/error.log warn;
events { worker_connections %[2]d; }
http {
access_log off;
%[3]s
}
`, dir, workerConnections, httpBody)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOMAXPROCS", "1")
	return startProcess(t, "gproxy-process", listenAddrs(httpBody), bin, "-p", dir+"/", "-c", path)
}

// startHAProxy runs HAProxy (one thread) proxying h2c on listen to the
// h2c backends, with maxconn as its connection limit.
func startHAProxy(t *testing.T, listen string, backends []string, maxconn int) *proxyInstance {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/haproxy"); err != nil {
			t.Skipf("haproxy not installed: %v", err)
		}
	}
	var servers bytes.Buffer
	for i, b := range backends {
		fmt.Fprintf(&servers, "    server s%d %s proto h2\n", i+1, b)
	}
	conf := fmt.Sprintf(`global
    maxconn %d
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout server 60s
    timeout http-keep-alive 75s
frontend fe
    bind %s proto h2
    default_backend be
backend be
%s`, maxconn, listen, servers.String())
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return startProcess(t, "haproxy", []string{listen}, bin, "-db", "-f", path)
}

// haproxyMaxconn is HAProxy's maxconn for the harness's worker_connections:
// HAProxy wants two descriptors per connection, within the test's limit.
func haproxyMaxconn() int {
	return min(workerConnections, 9000)
}
