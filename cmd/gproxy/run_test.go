package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/gproxy/gproxy/proxy/nettest"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runConf is a configuration for the run-mode tests: one gRPC listener,
// pid and error log under the prefix.
func runConf(daemon string, port int, extra string) string {
	return fmt.Sprintf(`%s
pid logs/gproxy.pid;
error_log logs/error.log info;
events {
}
http {
    access_log off;
    server {
        listen 127.0.0.1:%d http2;
        location / {
            grpc_pass 127.0.0.1:1;
        }
    }
%s}
`, daemon, port, extra)
}

// writeFile writes a test file.
func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// accepts reports whether something accepts TCP connections on port.
func accepts(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// fileContains reports whether the file exists and contains s.
func fileContains(name, s string) bool {
	data, err := os.ReadFile(name)
	return err == nil && strings.Contains(string(data), s)
}

// readPIDFile reads a pid file, 0 when absent or unreadable.
func readPIDFile(name string) int {
	data, err := os.ReadFile(name)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// errorLogLine is nginx's error log line shape.
var errorLogLine = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(debug|info|notice|warn|error|crit|alert|emerg)\] \d+#\d+: `)

// foreground starts gproxy in the foreground and returns its command; the
// process is killed at cleanup if the test did not stop it.
func foreground(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, gproxyBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// A new binary started by USR2 inherits the stderr pipe: do not wait
	// for it to close once gproxy itself exited.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	return cmd, &stderr
}

// wait waits for a started gproxy to exit and returns its exit status.
func wait(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if errors.Is(err, exec.ErrWaitDelay) {
			err = nil // see foreground: the process exited
			if !cmd.ProcessState.Success() {
				return cmd.ProcessState.ExitCode()
			}
		}
		if err != nil {
			if exit, ok := err.(*exec.ExitError); ok {
				return exit.ExitCode()
			}
			t.Fatal(err)
		}
		return 0
	case <-time.After(45 * time.Second):
		t.Error("gproxy did not exit")
		_ = cmd.Process.Signal(syscall.SIGABRT)
		<-done
		return -1
	}
}

// TestRunForeground runs `daemon off` and drives it with signals: pid file,
// a failed reload that keeps the old configuration, a reload that moves the
// error log, log reopening, and TERM.
func TestRunForeground(t *testing.T) {
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	pidFile := prefix + "logs/gproxy.pid"
	errorLog := prefix + "logs/error.log"
	port := freePort(t)
	writeFile(t, conf, runConf("daemon off;", port, ""))

	cmd, stderr := foreground(t, "-p", prefix, "-c", conf)
	waitFor(t, "the pid file", func() bool { return readPIDFile(pidFile) == cmd.Process.Pid })
	if !accepts(port) {
		t.Fatalf("nothing accepts on port %d once the pid file is written", port)
	}

	// A broken configuration is logged and the old one keeps serving.
	writeFile(t, conf, strings.Replace(runConf("daemon off;", port, ""), "events {", "events {\n    worker_connections 1o24;", 1))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed reload in the error log", func() bool {
		return fileContains(errorLog, `reload failed, keeping the running configuration: [emerg] invalid number "1o24"`)
	})
	if !accepts(port) {
		t.Fatal("a failed reload stopped the listener")
	}

	// A good configuration replaces the old one; here it moves the error
	// log, which shows both that the reload happened and that the log
	// destinations follow it.
	errorLog2 := prefix + "logs/error2.log"
	writeFile(t, conf, strings.Replace(runConf("daemon off;", port, ""), "logs/error.log", "logs/error2.log", 1))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload to log into the new error log", func() bool { return fileContains(errorLog2, "reloaded") })
	if !accepts(port) {
		t.Fatal("not listening after a reload")
	}
	errorLog = errorLog2

	// USR1 reopens the error log, as logrotate needs.
	if err := os.Rename(errorLog, errorLog+".1"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new error log", func() bool { return fileContains(errorLog, "logs reopened") })

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := wait(t, cmd); code != 0 {
		t.Errorf("exit status after TERM: %d; stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr of a foreground gproxy logging to a file:\n%s", stderr)
	}
	for _, name := range []string{prefix + "logs/error.log", errorLog + ".1", errorLog} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if !errorLogLine.MatchString(line) {
				t.Errorf("%s: line not in nginx's shape: %q", filepath.Base(name), line)
			}
		}
	}
}

// TestRunQuit checks the graceful stop.
func TestRunQuit(t *testing.T) {
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	pidFile := prefix + "logs/gproxy.pid"
	port := freePort(t)
	writeFile(t, conf, runConf("daemon off;", port, ""))
	cmd, stderr := foreground(t, "-p", prefix, "-c", conf)
	waitFor(t, "the pid file", func() bool { return readPIDFile(pidFile) == cmd.Process.Pid })

	r := runGproxy(t, "-p", prefix, "-c", conf, "-s", "quit")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("-s quit: exit %d, stderr %q", r.code, r.stderr)
	}
	if code := wait(t, cmd); code != 0 {
		t.Errorf("exit status after QUIT: %d; stderr:\n%s", code, stderr)
	}
	if accepts(port) {
		t.Error("still listening after QUIT")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

// TestRunDaemon checks `daemon on`: the command returns once the daemon
// listens, the pid file names the daemon, and -s stop ends it.
func TestRunDaemon(t *testing.T) {
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	pidFile := prefix + "logs/gproxy.pid"
	port := freePort(t)
	writeFile(t, conf, runConf("", port, ""))

	r := runGproxy(t, "-p", prefix, "-c", conf)
	pid := readPIDFile(pidFile)
	if pid > 0 {
		t.Cleanup(func() {
			if readPIDFile(pidFile) == pid {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("daemon start: exit %d, stderr %q", r.code, r.stderr)
	}
	if pid <= 0 {
		t.Fatal("no pid file once the starting command returned")
	}
	if !accepts(port) {
		t.Fatal("nothing accepts once the starting command returned")
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("daemon %d: %v", pid, err)
	}
	if sid := sessionID(t, pid); sid != pid {
		t.Errorf("daemon session id %d, want its own session %d", sid, pid)
	}

	r = runGproxy(t, "-p", prefix, "-c", conf, "-s", "stop")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("-s stop: exit %d, stderr %q", r.code, r.stderr)
	}
	waitFor(t, "the daemon to remove its pid file", func() bool {
		_, err := os.Stat(pidFile)
		return os.IsNotExist(err)
	})
	waitFor(t, "the listener to close", func() bool { return !accepts(port) })
}

// TestRunDaemonFailure checks that a daemon that cannot listen makes the
// starting command fail with the reason, as nginx does.
func TestRunDaemonFailure(t *testing.T) {
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	ln, err := nettest.Listen("tcp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	writeFile(t, conf, runConf("", port, ""))

	r := runGproxy(t, "-p", prefix, "-c", conf)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "gproxy: [emerg] ") || !strings.Contains(r.stderr, strconv.Itoa(port)) {
		t.Errorf("exit %d, stderr %q; want 1 and an [emerg] naming port %d", r.code, r.stderr, port)
	}
	if _, err := os.Stat(prefix + "logs/gproxy.pid"); !os.IsNotExist(err) {
		t.Errorf("pid file written by a daemon that failed: %v", err)
	}
}

// TestRunConfigError checks that run mode refuses a broken configuration
// before doing anything.
func TestRunConfigError(t *testing.T) {
	prefix := newPrefix(t)
	typo := corpus("article-typo.conf")
	r := runGproxy(t, "-p", prefix, "-c", typo)
	want := "gproxy: [emerg] invalid number \"1o24\" in " + typo + ":10\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", r.code, r.stderr, want)
	}
}

// sessionID reads a process's session id from /proc/PID/stat (the fourth
// field after the parenthesised command name).
func sessionID(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndexByte(data, ')')
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 4 {
		t.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	sid, err := strconv.Atoi(fields[3])
	if err != nil {
		t.Fatal(err)
	}
	return sid
}

// TestRunErrorLogFlag checks -e: with no error_log in the configuration,
// the error log is the file -e names, relative to the prefix.
func TestRunErrorLogFlag(t *testing.T) {
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	pidFile := prefix + "logs/gproxy.pid"
	port := freePort(t)
	writeFile(t, conf, strings.Replace(runConf("daemon off;", port, ""), "error_log logs/error.log info;\n", "", 1))
	cmd, stderr := foreground(t, "-p", prefix, "-c", conf, "-e", "logs/e.log")
	waitFor(t, "the pid file", func() bool { return readPIDFile(pidFile) == cmd.Process.Pid })
	if _, err := os.Stat(prefix + "logs/e.log"); err != nil {
		t.Errorf("-e logs/e.log: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := wait(t, cmd); code != 0 {
		t.Errorf("exit status after INT: %d; stderr:\n%s", code, stderr)
	}
}
