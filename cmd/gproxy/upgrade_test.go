package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestBinaryUpgradeUnderLoad upgrades the binary as nginx's documentation
// describes, under a load of unary and streaming calls: USR2 starts the new
// binary on the inherited listening socket and moves the pid file to
// .oldbin; WINCH makes the old one stop serving gracefully, and QUIT ends
// it. No call fails, and
// the pid file ends with the new pid.
func TestBinaryUpgradeUnderLoad(t *testing.T) {
	b1, b2 := startGRPCBackend(t, "b1"), startGRPCBackend(t, "b2")
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	pidFile := prefix + "logs/gproxy.pid"
	port, extra := freePort(t), freePort(t)
	writeFile(t, conf, reloadConf(port, extra, b1.addr, b2.addr, true))
	cmd, stderr := foreground(t, "-p", prefix, "-c", conf)
	oldPID := cmd.Process.Pid
	waitFor(t, "the pid file", func() bool { return readPIDFile(pidFile) == oldPID })

	ld := startLoad(t, fmt.Sprintf("127.0.0.1:%d", port), 2, 4, 2)
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	var newPID int
	waitFor(t, "the new binary's pid file", func() bool {
		newPID = readPIDFile(pidFile)
		return newPID > 0 && newPID != oldPID
	})
	t.Cleanup(func() { _ = syscall.Kill(newPID, syscall.SIGKILL) })
	if got := readPIDFile(pidFile + ".oldbin"); got != oldPID {
		t.Errorf("%s.oldbin holds %d, want the old pid %d", pidFile, got, oldPID)
	}
	time.Sleep(300 * time.Millisecond) // both serve
	// WINCH: the old one stops serving gracefully and waits.
	if err := cmd.Process.Signal(syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old binary to drain", func() bool {
		return fileContains(prefix+"logs/error.log", fmt.Sprintf("[notice] %d#0: signal 28 (SIGWINCH) received, gracefully shutting down", oldPID))
	})
	time.Sleep(300 * time.Millisecond)
	if syscall.Kill(oldPID, 0) != nil {
		t.Error("the old binary exited on WINCH; it should wait for QUIT")
	}
	if err := cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	if code := wait(t, cmd); code != 0 {
		t.Errorf("old binary exit %d; stderr:\n%s\nerror log:\n%s", code, stderr, readFile(t, prefix+"logs/error.log"))
	}
	time.Sleep(300 * time.Millisecond) // the new one alone
	ok, failed, errs := ld.finish()
	t.Logf("%d calls succeeded, %d failed across the upgrade", ok, failed)
	if failed > 0 || ok == 0 {
		t.Errorf("%d failed calls, e.g. %q", failed, errs)
	}
	if got := readPIDFile(pidFile); got != newPID {
		t.Errorf("pid file holds %d, want the new pid %d", got, newPID)
	}
	if _, err := os.Stat(pidFile + ".oldbin"); !os.IsNotExist(err) {
		t.Errorf(".oldbin left behind: %v", err)
	}
	if !accepts(extra) || !accepts(port) {
		t.Error("the new binary does not serve both listeners")
	}
	if err := syscall.Kill(newPID, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new binary to exit", func() bool { return syscall.Kill(newPID, 0) != nil || isZombie(newPID) })
}

// isZombie reports whether pid has exited but not been reaped (its parent,
// the old binary, is gone; init reaps it in time).
func isZombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	for i := len(s) - 1; i > 0; i-- {
		if s[i] == ')' {
			return i+2 < len(s) && s[i+2] == 'Z'
		}
	}
	return false
}
