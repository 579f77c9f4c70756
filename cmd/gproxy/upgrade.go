package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/gproxy/gproxy/proxy"
)

// inheritEnv passes the listening sockets to the new binary on a binary
// upgrade, as nginx's NGINX variable does: one line per socket, "FD KEY"
// (KEY as the configuration names the listener: "tcp 127.0.0.1:8080").
const inheritEnv = "GPROXY_INHERIT"

// oldbinSuffix is appended to the pid file's name while a new binary runs
// beside the old one, as nginx does.
const oldbinSuffix = ".oldbin"

// startExe is the program file as started, resolved once at start: after
// a binary upgrade replaced it on disk, /proc/self/exe names the old,
// deleted file, while this path names the new one, as nginx's argv[0].
var startExe = func() string {
	name := os.Args[0]
	if !strings.Contains(name, "/") {
		if p, err := exec.LookPath(name); err == nil {
			name = p
		}
	}
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return name
}()

// inheritedListeners reads the sockets the previous binary passed, and
// clears the variable so that programs gproxy starts do not see it. ok
// reports whether this process was started by a binary upgrade.
func inheritedListeners() (files []proxy.ListenerFile, ok bool) {
	v, ok := os.LookupEnv(inheritEnv)
	if !ok {
		return nil, false
	}
	os.Unsetenv(inheritEnv)
	for _, line := range strings.Split(v, "\n") {
		fdText, key, found := strings.Cut(line, " ")
		fd, err := strconv.Atoi(fdText)
		if !found || err != nil || fd < 3 {
			continue
		}
		syscall.CloseOnExec(fd)
		files = append(files, proxy.ListenerFile{Key: key, File: os.NewFile(uintptr(fd), key)})
	}
	return files, true
}

// listenerHandover is what an engine that can pass its sockets to a new
// binary provides; *proxy.Server does.
type listenerHandover interface {
	ListenerFiles() ([]proxy.ListenerFile, error)
	Inherit([]proxy.ListenerFile)
}

// upgrade is USR2: start the binary found at the path gproxy was started
// from, with the same arguments, handing it every listening socket, and
// move the pid file aside to NAME.oldbin, as nginx does. Both serve until
// the old one is told WINCH or QUIT. If the new one exits while the old
// one runs, the pid file is moved back.
func (r *runner) upgrade() {
	if r.child != nil {
		r.log.logger.Log(alertLevel, "the changing binary signal is ignored: you should shutdown or terminate before either old or new binary's process")
		return
	}
	h, ok := r.eng.(listenerHandover)
	if !ok {
		r.log.logger.Log(alertLevel, "binary upgrade is not supported by this engine")
		return
	}
	files, err := h.ListenerFiles()
	if err != nil {
		r.log.logger.Log(alertLevel, "binary upgrade failed: "+err.Error())
		return
	}
	defer func() {
		for _, f := range files {
			f.File.Close()
		}
	}()
	var env strings.Builder
	extra := make([]*os.File, len(files))
	for i, f := range files {
		extra[i] = f.File
		fmt.Fprintf(&env, "%d %s\n", 3+i, f.Key)
	}
	pid, oldpid := r.pid, ""
	if pid != "" {
		oldpid = pid + oldbinSuffix
		if err := os.Rename(pid, oldpid); err != nil {
			r.log.logger.Log(alertLevel, fmt.Sprintf("rename() %s to %s failed %s", pid, oldpid, errnoText(err)))
			return
		}
	}
	cmd := exec.Command(startExe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), inheritEnv+"="+env.String())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = extra
	if err := cmd.Start(); err != nil {
		r.log.logger.Log(alertLevel, fmt.Sprintf("execve() failed while executing new binary process \"%s\" %s", startExe, errnoText(err)))
		if oldpid != "" {
			_ = os.Rename(oldpid, pid)
		}
		return
	}
	r.log.logger.Info(fmt.Sprintf("start new binary process %d", cmd.Process.Pid))
	r.child = cmd
	r.pid = oldpid
	go func() {
		err := cmd.Wait()
		r.childExit <- childResult{cmd: cmd, err: err}
	}()
}

// childResult is how a new binary started by upgrade ended.
type childResult struct {
	cmd *exec.Cmd
	err error
}

// childExited handles the end of the new binary while this one still
// runs: the upgrade is over, and the pid file becomes this process's
// again, as nginx's master does when its new binary dies.
func (r *runner) childExited(c childResult) {
	if c.cmd != r.child {
		return
	}
	r.child = nil
	code := c.cmd.ProcessState.ExitCode()
	r.log.logger.Log(alertLevel, fmt.Sprintf("new binary process %d exited with code %d", c.cmd.Process.Pid, code))
	if strings.HasSuffix(r.pid, oldbinSuffix) {
		name := strings.TrimSuffix(r.pid, oldbinSuffix)
		if err := os.Rename(r.pid, name); err != nil {
			r.log.logger.Log(alertLevel, fmt.Sprintf("rename() %s back to %s failed %s", r.pid, name, errnoText(err)))
			return
		}
		r.pid = name
	}
}
