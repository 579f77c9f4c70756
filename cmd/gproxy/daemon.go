package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// daemonEnv tells a re-executed gproxy that it is the daemon and which file
// descriptor reports its readiness to the parent.
const daemonEnv = "GPROXY_DAEMON_READY_FD"

// readyMark ends the readiness pipe's text when the daemon is serving;
// anything before it is messages for the terminal.
const readyMark = "\x00ready\n"

// readyTimeout bounds how long the parent waits for the daemon to listen.
const readyTimeout = 2 * time.Minute

// daemonize is `daemon on`: start this program again in a new session with
// stdio on /dev/null, copy what it reports through the readiness pipe to
// stderr, and exit 0 once it listens or 1 if it fails, as nginx's parent
// does after forking.
func daemonize(args []string, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "gproxy: [emerg] daemon: %s\n", err)
		return 1
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(stderr, "gproxy: [emerg] daemon: %s\n", err)
		return 1
	}
	defer devnull.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "gproxy: [emerg] daemon: %s\n", err)
		return 1
	}
	defer pr.Close()

	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), daemonEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{pw} // becomes fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		fmt.Fprintf(stderr, "gproxy: [emerg] daemon: %s\n", err)
		return 1
	}

	_ = pr.SetReadDeadline(time.Now().Add(readyTimeout))
	report, err := io.ReadAll(pr)
	if msg, ok := bytes.CutSuffix(report, []byte(readyMark)); ok {
		stderr.Write(msg)
		_ = cmd.Process.Release()
		return 0
	}
	stderr.Write(report)
	if err != nil {
		// The daemon neither got ready nor failed in time: stop it
		// rather than leave a half-started process behind.
		fmt.Fprintf(stderr, "gproxy: [emerg] daemon did not report readiness: %s\n", err)
		_ = cmd.Process.Kill()
	}
	_ = cmd.Wait()
	return 1
}

// daemonPipe is the daemon's end of the readiness pipe: messages written to
// it reach the terminal of the parent until ready is called.
type daemonPipe struct{ f *os.File }

// Write implements io.Writer; after ready it discards, as stderr is
// /dev/null for a daemon.
func (d *daemonPipe) Write(p []byte) (int, error) {
	if d.f == nil {
		return len(p), nil
	}
	return d.f.Write(p)
}

// ready tells the parent that the daemon is serving and closes the pipe.
func (d *daemonPipe) ready() {
	if d.f != nil {
		_, _ = io.WriteString(d.f, readyMark)
		d.f.Close()
		d.f = nil
	}
}

// daemonChild reports whether this process is a daemon started by
// daemonize, and returns its readiness pipe. It clears the variable so that
// programs gproxy may start do not inherit it.
func daemonChild() (*daemonPipe, bool) {
	v, ok := os.LookupEnv(daemonEnv)
	if !ok {
		return nil, false
	}
	os.Unsetenv(daemonEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return &daemonPipe{}, true
	}
	return &daemonPipe{f: os.NewFile(uintptr(fd), "gproxy-ready")}, true
}
