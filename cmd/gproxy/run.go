package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy"
)

// defaultShutdownTimeout bounds a graceful stop (QUIT) when
// worker_shutdown_timeout is not set: streams still open after it are cut,
// so a long-lived gRPC stream cannot hold the old process forever. nginx
// waits without limit unless worker_shutdown_timeout is set; gproxy picks
// a bound because gRPC streams are often endless.
const defaultShutdownTimeout = 30 * time.Second

// run is the run mode: load the configuration, detach if `daemon on`, serve,
// and act on signals until told to stop.
func run(p paths, o options, args []string, stderr io.Writer) int {
	cfg, warnings, err := p.load()
	if err != nil {
		printWarnings(stderr, warnings)
		fmt.Fprintf(stderr, "gproxy: %s\n", diagnostic(err))
		return 1
	}
	child, isChild := daemonChild()
	inherited, upgraded := inheritedListeners()
	// A binary started by USR2 is already where its parent was (nginx
	// does not daemonize when it inherits sockets either).
	if cfg.Daemon && !isChild && !upgraded {
		// The child loads the configuration again and reports its
		// warnings through the readiness pipe; printing them here too
		// would show them twice.
		return daemonize(args, stderr)
	}
	if isChild {
		stderr = child
	}
	printWarnings(stderr, warnings)

	// Catch signals before serving, so that a HUP or TERM sent as soon as
	// the pid file appears is acted on rather than killing the process.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1,
		syscall.SIGUSR2, syscall.SIGWINCH)
	defer signal.Stop(sigs)

	r := &runner{paths: p, inherited: inherited, childExit: make(chan childResult, 1)}
	if err := r.start(cfg); err != nil {
		fmt.Fprintf(stderr, "gproxy: [emerg] %s\n", err)
		return 1
	}
	if isChild {
		child.ready()
	}
	return r.loop(sigs)
}

// printWarnings prints configuration warnings in nginx's shape.
func printWarnings(w io.Writer, warnings []parser.Diagnostic) {
	for i := range warnings {
		fmt.Fprintf(w, "gproxy: %s\n", warnings[i].Error())
	}
}

// runner is a running gproxy: its engine, error log and pid file.
type runner struct {
	paths paths
	log   *errorLog
	eng   engine
	pid   string // pid file written, "" if none

	shutdownTimeout time.Duration // worker_shutdown_timeout, or the default

	inherited []proxy.ListenerFile // sockets from the previous binary (USR2)
	child     *exec.Cmd            // the new binary USR2 started, while it runs
	childExit chan childResult
	draining  bool // WINCH: no longer serving, waiting for QUIT or TERM
}

// start builds and starts everything for cfg. On error nothing is left
// running.
func (r *runner) start(cfg *config.Config) (err error) {
	r.log, err = newErrorLog(cfg.ErrorLogs, r.paths.errorLog)
	if err != nil {
		return err
	}
	r.applyProcess(cfg)
	r.eng, err = newEngine(cfg, r.log.logger)
	if err != nil {
		r.log.close()
		return err
	}
	if h, ok := r.eng.(listenerHandover); ok && len(r.inherited) > 0 {
		h.Inherit(r.inherited)
	}
	r.inherited = nil
	if err := r.eng.Start(); err != nil {
		r.eng.Close()
		r.log.close()
		return err
	}
	if err := r.writePID(r.paths.pidFile(cfg)); err != nil {
		r.eng.Close()
		r.log.close()
		return err
	}
	if err := dropPrivileges(cfg, r.pid); err != nil {
		r.eng.Close()
		r.log.close()
		return err
	}
	r.log.logger.Info("gproxy/" + version + " started, configuration file " + r.paths.conf)
	return nil
}

// applyProcess applies the main-context directives that act on the process
// itself: worker_processes sets how many cores Go uses (gproxy is one
// process; GOMAXPROCS plays the workers' part) and worker_rlimit_nofile the
// open-file limit.
func (r *runner) applyProcess(cfg *config.Config) {
	n := cfg.WorkerProcesses
	if n <= 0 {
		n = runtime.NumCPU()
	}
	runtime.GOMAXPROCS(n)
	r.shutdownTimeout = cfg.WorkerShutdownTimeout
	if r.shutdownTimeout <= 0 {
		r.shutdownTimeout = defaultShutdownTimeout
	}
	if cfg.WorkerRlimitNofile > 0 {
		lim := syscall.Rlimit{Cur: uint64(cfg.WorkerRlimitNofile), Max: uint64(cfg.WorkerRlimitNofile)}
		var cur syscall.Rlimit
		if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur) == nil && cur.Max > lim.Max && os.Geteuid() != 0 {
			lim.Max = cur.Max // an unprivileged process may not raise Max, nor needs to lower it
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			r.log.logger.Error(fmt.Sprintf("setrlimit(RLIMIT_NOFILE, %d) failed %s", cfg.WorkerRlimitNofile, errnoText(err)))
		}
	}
}

// writePID writes the pid file, replacing the previous one when the path
// changed.
func (r *runner) writePID(name string) error {
	if name == r.pid {
		return nil
	}
	if name != "" {
		data := strconv.Itoa(os.Getpid()) + "\n"
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			return fmt.Errorf("open() \"%s\" failed %s", name, errnoText(err))
		}
	}
	if r.pid != "" {
		_ = os.Remove(r.pid)
	}
	r.pid = name
	return nil
}

// loop waits for signals and acts on them as nginx's master does. It returns
// the exit status once the engine has stopped.
func (r *runner) loop(sigs <-chan os.Signal) int {
	for {
		var sig os.Signal
		select {
		case sig = <-sigs:
		case c := <-r.childExit:
			r.childExited(c)
			continue
		}
		s := sig.(syscall.Signal)
		switch s {
		case syscall.SIGTERM, syscall.SIGINT:
			r.log.logger.Info(fmt.Sprintf("signal %d (%s) received, exiting", int(s), signame(s)))
			err := r.eng.Close()
			return r.exit(err)
		case syscall.SIGQUIT:
			r.log.logger.Info(fmt.Sprintf("signal %d (%s) received, shutting down", int(s), signame(s)))
			ctx, cancel := context.WithTimeout(context.Background(), r.shutdownTimeout)
			err := r.eng.Shutdown(ctx)
			cancel()
			if err != nil {
				r.log.logger.Warn(fmt.Sprintf("graceful shutdown did not finish (%v), closing the remaining connections", err))
				err = r.eng.Close()
			}
			return r.exit(err)
		case syscall.SIGHUP:
			r.log.logger.Info(fmt.Sprintf("signal %d (%s) received, reconfiguring", int(s), signame(s)))
			r.reload()
		case syscall.SIGUSR1:
			r.log.logger.Info(fmt.Sprintf("signal %d (%s) received, reopening logs", int(s), signame(s)))
			r.reopen()
		case syscall.SIGUSR2:
			r.log.logger.Info(fmt.Sprintf("signal %d (%s) received, changing binary", int(s), signame(s)))
			r.upgrade()
		case syscall.SIGWINCH:
			r.winch(s)
		}
	}
}

// winch is WINCH: once a new binary runs (USR2), the old one stops
// serving gracefully (GOAWAY, streams finish) and stays until QUIT or
// TERM, as nginx's old master does with its workers. Otherwise it is
// ignored: a terminal sends WINCH when resized.
func (r *runner) winch(s syscall.Signal) {
	if r.child == nil || r.draining {
		r.log.logger.Info(fmt.Sprintf("signal %d (%s) received, ignored", int(s), signame(s)))
		return
	}
	r.log.logger.Info(fmt.Sprintf("signal %d (%s) received, gracefully shutting down worker processes", int(s), signame(s)))
	r.draining = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.shutdownTimeout)
		defer cancel()
		if err := r.eng.Shutdown(ctx); err != nil {
			r.log.logger.Warn(fmt.Sprintf("graceful shutdown did not finish (%v), closed the remaining connections", err))
		}
	}()
}

// exit removes the pid file and closes the log.
func (r *runner) exit(err error) int {
	code := 0
	if err != nil {
		r.log.logger.Error("exit: " + err.Error())
		code = 1
	}
	if r.pid != "" {
		if err := os.Remove(r.pid); err != nil && !os.IsNotExist(err) {
			r.log.logger.Log(alertLevel, fmt.Sprintf("unlink() \"%s\" failed %s", r.pid, errnoText(err)))
			_ = os.Truncate(r.pid, 0) // see dropPrivileges
		}
	}
	r.log.logger.Info("exit")
	r.log.close()
	return code
}

// reload reads the configuration file again and, if it is valid and the
// engine accepts it, makes it the running one. Any failure leaves the old
// configuration serving and is logged.
func (r *runner) reload() {
	err := r.reloadConfig()
	if err != nil {
		r.log.logger.Error("reload failed, keeping the running configuration: " + err.Error())
	}
	if rc, ok := r.eng.(reloadCounter); ok {
		rc.ReloadResult(err)
	}
}

// reloadCounter is implemented by an engine that counts reloads for its
// metrics (gproxy_reloads_total).
type reloadCounter interface{ ReloadResult(error) }

// reloadConfig does reload's work; an error means nothing changed.
func (r *runner) reloadConfig() error {
	cfg, warnings, err := r.paths.load()
	for i := range warnings {
		r.log.logger.Warn(warnings[i].Error())
	}
	if err != nil {
		return errors.New(diagnostic(err))
	}
	set, err := openLogSet(cfg.ErrorLogs, r.paths.errorLog)
	if err != nil {
		return err
	}
	if err := r.eng.Reload(cfg); err != nil {
		set.close()
		return err
	}
	r.log.commit(set)
	r.applyProcess(cfg)
	if err := r.writePID(r.paths.pidFile(cfg)); err != nil {
		r.log.logger.Error(err.Error())
	}
	r.log.logger.Info("configuration file " + r.paths.conf + " reloaded")
	return nil
}

// reopen reopens the error log files and, if the engine keeps any, its own.
func (r *runner) reopen() {
	if err := r.log.reopen(); err != nil {
		r.log.logger.Error(err.Error())
	}
	if lr, ok := r.eng.(logReopener); ok {
		if err := lr.ReopenLogs(); err != nil {
			r.log.logger.Error(err.Error())
		}
	}
	r.log.logger.Info("logs reopened")
}

// signame is the name nginx prints for a signal.
func signame(s syscall.Signal) string {
	for name, n := range signalNumbers {
		if n == s {
			return "SIG" + name
		}
	}
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	case syscall.SIGWINCH:
		return "SIGWINCH"
	}
	return s.String()
}
