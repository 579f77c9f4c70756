package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/gproxy/gproxy/parser/config"
)

// dropPrivileges is `user`: once the listeners are bound and the log files
// open, the process gives up root for the named user and group, for good,
// as nginx's worker processes do. (Go applies setuid/setgid to every
// thread on Linux since Go 1.16.)
//
// What this means later, by design:
//   - every log file open at the switch is handed to the user (fchown), so
//     that USR1 can reopen it by name after rotation; a new file is created
//     by the user, so the log directory must be writable by it, or
//     logrotate must create the file for it (`create 0640 USER GROUP`). A
//     reopen that fails is logged and the old file is kept.
//   - a reload that needs a new listener on a privileged port (below 1024)
//     fails to bind; the reload is refused with bind()'s error in the error
//     log and the running configuration keeps serving.
//   - the pid file is handed to the user too. Removing it at exit needs a
//     directory the user may write (systemd's RuntimeDirectory=); where it
//     cannot, gproxy empties it and logs the unlink() failure, so that
//     `-s` reports an invalid pid rather than signal a stranger.
//   - a changed `user` takes effect only on restart or binary upgrade.
func dropPrivileges(cfg *config.Config, pidFile string) error {
	if cfg.User == "" || os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(cfg.User)
	if err != nil {
		return fmt.Errorf("getpwnam(\"%s\") failed", cfg.User)
	}
	g, err := user.LookupGroup(cfg.Group)
	if err != nil {
		return fmt.Errorf("getgrnam(\"%s\") failed", cfg.Group)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	chownLogFiles(uid, gid)
	if pidFile != "" {
		_ = os.Chown(pidFile, uid, gid)
	}
	groups := []int{gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil && n != gid {
				groups = append(groups, n)
			}
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("initgroups(%s, %d) failed %s", cfg.User, gid, errnoText(err))
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid(%d) failed %s", gid, errnoText(err))
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid(%d) failed %s", uid, errnoText(err))
	}
	return nil
}

// chownLogFiles hands every regular file this process holds open for
// appending (the error and access logs; configuration files are never
// kept open) to uid:gid, as nginx's master does for the files it reopens
// for its workers. Descriptors 0-2 are the caller's and left alone.
func chownLogFiles(uid, gid int) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			continue
		}
		flags, err := fdFlags(fd)
		if err != nil || flags&syscall.O_APPEND == 0 {
			continue
		}
		_ = syscall.Fchown(fd, uid, gid)
	}
}

// fdFlags reads a descriptor's open flags (fcntl F_GETFL).
func fdFlags(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
