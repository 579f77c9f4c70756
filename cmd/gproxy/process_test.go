package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gproxy/gproxy/errlog"
	"github.com/gproxy/gproxy/parser/config"
)

// TestErrorLogNginxShape checks every line against nginx's shape: the
// connection number as "*N " only when the connection field is given, the
// whole text in the message, no JSON; and nginx's level thresholds,
// including crit, alert and emerg above zap's own levels.
func TestErrorLogNginxShape(t *testing.T) {
	dir := t.TempDir()
	all, crit := filepath.Join(dir, "all.log"), filepath.Join(dir, "crit.log")
	l, err := newErrorLog([]config.Log{{Path: all, Level: "debug"}, {Path: crit, Level: "crit"}}, "stderr")
	if err != nil {
		t.Fatal(err)
	}
	msg := `upstream timed out (110: Connection timed out) while reading response header from upstream, client: 127.0.0.1, server: , request: "POST /x.Y/Z HTTP/2.0", upstream: "grpc://127.0.0.1:1", host: "127.0.0.1:8080"`
	l.logger.Error(msg, errlog.Connection(17))
	l.logger.Warn("no connection here")
	l.logger.Debug("debugging")
	l.logger.Info("signal 1 (SIGHUP) received, reconfiguring")
	l.logger.Log(errlog.Crit, "critical")
	l.logger.Log(errlog.Alert, "alerted", errlog.Connection(3))
	l.logger.Log(errlog.Emerg, "emergency")
	l.close()

	data, _ := os.ReadFile(all)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	pid := os.Getpid()
	want := []string{
		`[error] PID#0: *17 ` + msg,
		`[warn] PID#0: no connection here`,
		`[debug] PID#0: debugging`,
		`[notice] PID#0: signal 1 (SIGHUP) received, reconfiguring`,
		`[crit] PID#0: critical`,
		`[alert] PID#0: *3 alerted`,
		`[emerg] PID#0: emergency`,
	}
	if len(lines) != len(want) {
		t.Fatalf("all.log has %d lines, want %d:\n%s", len(lines), len(want), data)
	}
	stamp := regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d `)
	for i, line := range lines {
		w := strings.Replace(want[i], "PID", itoa(pid), 1)
		if !stamp.MatchString(line) || line[20:] != w {
			t.Errorf("line %d:\n got %q\nwant %q after the time stamp", i, line, w)
		}
		if strings.Contains(line, "{") {
			t.Errorf("JSON in %q", line)
		}
	}
	data, _ = os.ReadFile(crit)
	if got := strings.Count(string(data), "\n"); got != 3 || strings.Contains(string(data), "[error]") {
		t.Errorf("crit.log (crit and above only):\n%s", data)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestRunDaemonDefaultErrorLog starts a daemon whose configuration names no
// error_log: its lines go to logs/error.log under the prefix (nginx's
// default), not to the /dev/null its stderr became.
func TestRunDaemonDefaultErrorLog(t *testing.T) {
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	pidFile := prefix + "logs/gproxy.pid"
	port := freePort(t)
	writeFile(t, conf, strings.Replace(runConf("", port, ""), "error_log logs/error.log info;\n", "", 1))

	r := runGproxy(t, "-p", prefix, "-c", conf)
	pid := readPIDFile(pidFile)
	if pid > 0 {
		t.Cleanup(func() {
			if readPIDFile(pidFile) == pid {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
	if r.code != 0 || r.stderr != "" || pid <= 0 {
		t.Fatalf("daemon start: exit %d, pid %d, stderr %q", r.code, pid, r.stderr)
	}
	// The default level is error: a failed reload writes one.
	writeFile(t, conf, "events { bogus; }\n")
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	errorLog := prefix + "logs/error.log"
	waitFor(t, "the failed reload in "+errorLog, func() bool {
		return fileContains(errorLog, `[error] `+itoa(pid)+`#0: reload failed, keeping the running configuration: [emerg] unknown directive "bogus" in `)
	})
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, errorLog)), "\n") {
		if !errorLogLine.MatchString(line) {
			t.Errorf("line not in nginx's shape: %q", line)
		}
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	waitFor(t, "the daemon to exit", func() bool { return syscall.Kill(pid, 0) != nil })
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestRunUser starts gproxy as root with `user nobody;`: once serving, the
// process runs as nobody (real, effective, saved and file-system ids), and
// its log files belong to nobody so that USR1 can reopen them.
func TestRunUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	prefix := newPrefix(t)
	// nobody must be able to reach the prefix to reopen its logs.
	for d := prefix; d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(d, fi.Mode().Perm()|0o001)
		}
	}
	conf := filepath.Join(prefix, "gproxy.conf")
	pidFile := prefix + "logs/gproxy.pid"
	port := freePort(t)
	// nginx's group defaults to the user's name; Debian has no group
	// nobody (nginx fails there with getgrnam("nobody") failed, as gproxy).
	directive := "user nobody;\n"
	if _, err := user.LookupGroup("nobody"); err != nil {
		directive = "user nobody nogroup;\n"
	}
	writeFile(t, conf, directive+runConf("daemon off;", port, ""))
	cmd, stderr := foreground(t, "-p", prefix, "-c", conf)
	waitFor(t, "the pid file", func() bool { return readPIDFile(pidFile) == cmd.Process.Pid || cmd.ProcessState != nil })
	waitFor(t, "the switch to nobody", func() bool {
		return procStatus(t, cmd.Process.Pid, "Uid") == strings.Repeat("\t"+nobody.Uid, 4)
	})
	if g := procStatus(t, cmd.Process.Pid, "Gid"); !strings.HasPrefix(g, "\t"+nobody.Gid+"\t") {
		t.Errorf("Gid:%s, want nobody's group %s", g, nobody.Gid)
	}
	if !accepts(port) {
		t.Error("not serving after the switch")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(prefix+"logs/error.log", &st); err != nil || itoa(int(st.Uid)) != nobody.Uid {
		t.Errorf("error.log owner %d (%v), want nobody", st.Uid, err)
	}
	// USR1 as nobody: the reopen works and is logged.
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "logs reopened", func() bool { return fileContains(prefix+"logs/error.log", "logs reopened") })
	// A reload that needs a new privileged port cannot bind it any more:
	// refused, with bind()'s reason, and the running listener serves on.
	writeFile(t, conf, directive+strings.Replace(runConf("daemon off;", port, ""),
		fmt.Sprintf("listen 127.0.0.1:%d http2;", port), fmt.Sprintf("listen 127.0.0.1:%d http2; listen 127.0.0.1:81 http2;", port), 1))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reload", func() bool {
		return fileContains(prefix+"logs/error.log", "reload failed, keeping the running configuration: bind() to 127.0.0.1:81 failed (13: Permission denied)")
	})
	if !accepts(port) {
		t.Error("the running listener stopped after the refused reload")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := wait(t, cmd); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, stderr)
	}
}

// procStatus returns a field of /proc/PID/status, after its colon.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}
