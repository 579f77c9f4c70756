// Package nginxtest runs a real nginx on loopback for differential tests:
// the same configuration through nginx and through gproxy's code, answers
// compared. Tests skip when nginx is not installed.
package nginxtest

import (
	"context"
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Start runs nginx in the foreground, one worker, on a free 127.0.0.1
// port, with httpBody as the body of its http block ({ADDR} is replaced by
// the address, {DIR} by nginx's prefix directory, which also holds its
// pid, error log and temp files). It returns the directory and address;
// nginx stops when the test ends.
func Start(t testing.TB, httpBody string) (dir, addr string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if bin = "/usr/sbin/nginx"; !exists(bin) {
			t.Skip("nginx not installed")
		}
	}
	dir = t.TempDir()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	body := strings.NewReplacer("{ADDR}", addr, "{DIR}", dir).Replace(httpBody)
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
client_body_temp_path %[1]s/tmp;
%[2]s
}
`, dir, body)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Skipf("cannot start nginx: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		cancel()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return dir, addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %v\n%s\n%s", err, out, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
