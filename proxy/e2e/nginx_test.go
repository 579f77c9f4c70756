package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startNginx runs nginx in the foreground (one process: master_process off)
// with httpBody as its http block, for comparing gproxy with nginx.
func startNginx(t *testing.T, httpBody string) *proxyInstance {
	t.Helper()
	bin, err := exec.LookPath(*nginxFlag)
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			t.Skipf("nginx not installed: %v", err)
		}
	}
	dir := t.TempDir()
	// The 10,000-stream test needs one upstream connection per stream in
	// nginx, hence the large connection and file limits.
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections %[3]d; }
http {
access_log off;
client_body_temp_path %[1]s/body;
proxy_temp_path %[1]s/proxy;
fastcgi_temp_path %[1]s/fastcgi;
uwsgi_temp_path %[1]s/uwsgi;
scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, httpBody, min(workerConnections, 19000))
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-p", dir+"/", "-e", filepath.Join(dir, "error.log"), "-c", path)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return stderr.String() + string(b)
	}
	t.Cleanup(func() {
		terminate(cmd.Process, exited, 5*time.Second)
		if t.Failed() {
			t.Logf("nginx error log:\n%s", errorLog())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, addr := range listenAddrs(httpBody) {
		ready := make(chan error, 1)
		go func() { ready <- waitListening(ctx, addr) }()
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("nginx: %v\n%s", err, errorLog())
			}
		case err := <-exited:
			t.Fatalf("nginx exited: %v\n%s", err, errorLog())
		}
	}
	pid := cmd.Process.Pid
	return &proxyInstance{kind: "nginx", mem: func() (uint64, string) { return vmRSS(pid), "nginx VmRSS" },
		anon: func() uint64 { return procStatus(pid, "RssAnon:") }}
}

var listenRE = regexp.MustCompile(`(?m)^\s*listen\s+([^\s;]+)`)

// listenAddrs returns the addresses of the listen directives in a config.
func listenAddrs(conf string) []string {
	var addrs []string
	for _, m := range listenRE.FindAllStringSubmatch(conf, -1) {
		addrs = append(addrs, m[1])
	}
	return addrs
}

// vmRSS reads a process's resident set size from /proc, 0 if unknown.
func vmRSS(pid int) uint64 { return procStatus(pid, "VmRSS:") }

// procStatus reads one kB field of /proc/PID/status in bytes, 0 if
// unknown.
func procStatus(pid int, field string) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
