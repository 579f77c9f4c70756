package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/errlog"
)

// nginx's eight levels as zap levels. debug, warn and error are zap's own.
// zap has one level between debug and warn, Info: gproxy's Info messages
// are what nginx logs at notice (start, signals, reload), so Info prints
// as "notice", and the thresholds info and notice both let it through
// (gproxy writes nothing at nginx's info alone). crit, alert and emerg lie
// above zap's Fatal: zap panics or exits at DPanic, Panic and Fatal, which
// gproxy never uses; the levels above are plain levels to zap, logged with
// Logger.Log(critLevel, ...).
const (
	critLevel  = errlog.Crit
	alertLevel = errlog.Alert
	emergLevel = errlog.Emerg
)

// nginxLevels maps error_log levels to zap levels.
var nginxLevels = map[string]zapcore.Level{
	"debug":  zapcore.DebugLevel,
	"info":   zapcore.InfoLevel,
	"notice": zapcore.InfoLevel,
	"warn":   zapcore.WarnLevel,
	"error":  zapcore.ErrorLevel,
	"crit":   critLevel,
	"alert":  alertLevel,
	"emerg":  emergLevel,
}

// levelName is the word written between brackets for a zap level.
func levelName(l zapcore.Level) string {
	switch {
	case l <= zapcore.DebugLevel:
		return "debug"
	case l == zapcore.InfoLevel:
		return "notice"
	case l == zapcore.WarnLevel:
		return "warn"
	case l == zapcore.ErrorLevel:
		return "error"
	case l == alertLevel:
		return "alert"
	case l >= emergLevel:
		return "emerg"
	}
	return "crit" // DPanic, Panic, Fatal (unused) and crit
}

// defaultErrorLevel is error_log's level when none is given.
const defaultErrorLevel = "error"

// errorLog is the process's error log. The *zap.Logger it hands out stays
// the same for the life of the process while its destinations change on
// reload and its files are reopened on USR1, so the engine never needs a new
// logger.
type errorLog struct {
	logger *zap.Logger
	cur    atomic.Pointer[logSet]
}

// logSet is one set of open destinations and the core writing to them.
type logSet struct {
	core    zapcore.Core
	files   []*logFile
	syslogs []*syslogCore
}

// newErrorLog opens the error log destinations logs, or fallback (a path
// or "stderr", from -e) at the default level when logs is empty.
func newErrorLog(logs []config.Log, fallback string) (*errorLog, error) {
	l := &errorLog{}
	set, err := openLogSet(logs, fallback)
	if err != nil {
		return nil, err
	}
	l.cur.Store(set)
	l.logger = zap.New(&swapCore{log: l})
	return l, nil
}

// openLogSet opens the destinations of logs, or fallback when logs is
// empty, without touching the running set.
func openLogSet(logs []config.Log, fallback string) (*logSet, error) {
	if len(logs) == 0 {
		logs = []config.Log{{Path: fallback, Level: defaultErrorLevel}}
	}
	set := &logSet{}
	cores := make([]zapcore.Core, 0, len(logs))
	for _, lg := range logs {
		level := lg.Level
		if level == "" {
			level = defaultErrorLevel
		}
		lvl, ok := nginxLevels[level]
		if !ok {
			set.close()
			return nil, fmt.Errorf("invalid log level %q", level)
		}
		var w zapcore.WriteSyncer
		switch {
		case lg.Path == "stderr":
			w = zapcore.Lock(os.Stderr)
		case lg.Syslog != nil:
			sc := newSyslogCore(*lg.Syslog, lvl)
			set.syslogs = append(set.syslogs, sc)
			cores = append(cores, sc)
			continue
		case strings.HasPrefix(lg.Path, "syslog:"):
			set.close()
			return nil, fmt.Errorf("error_log %q: destination not parsed", lg.Path)
		case strings.HasPrefix(lg.Path, "memory:"):
			set.close()
			return nil, fmt.Errorf("error_log %q is not supported by gproxy", lg.Path)
		default:
			f, err := openLogFile(lg.Path)
			if err != nil {
				set.close()
				return nil, err
			}
			set.files = append(set.files, f)
			w = f
		}
		cores = append(cores, zapcore.NewCore(newEncoder(), w, lvl))
	}
	set.core = zapcore.NewTee(cores...)
	return set, nil
}

// close closes the set's files.
func (s *logSet) close() {
	for _, f := range s.files {
		f.Close()
	}
	for _, c := range s.syslogs {
		c.Close()
	}
}

// commit makes set the running destinations and closes the previous ones.
func (l *errorLog) commit(set *logSet) {
	old := l.cur.Swap(set)
	if old != nil {
		old.close()
	}
}

// reopen reopens every log file by name, for log rotation (USR1).
func (l *errorLog) reopen() error {
	var first error
	for _, f := range l.cur.Load().files {
		if err := f.reopen(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// close closes the running destinations.
func (l *errorLog) close() {
	_ = l.logger.Sync()
	if set := l.cur.Swap(&logSet{core: zapcore.NewNopCore()}); set != nil {
		set.close()
	}
}

// swapCore is a zapcore.Core that writes through whatever set its errorLog
// holds at the moment of writing.
type swapCore struct {
	log    *errorLog
	fields []zapcore.Field
}

func (c *swapCore) current() zapcore.Core {
	core := c.log.cur.Load().core
	if len(c.fields) > 0 {
		core = core.With(c.fields)
	}
	return core
}

// Enabled implements zapcore.LevelEnabler.
func (c *swapCore) Enabled(l zapcore.Level) bool { return c.log.cur.Load().core.Enabled(l) }

// With implements zapcore.Core.
func (c *swapCore) With(fields []zapcore.Field) zapcore.Core {
	all := make([]zapcore.Field, 0, len(c.fields)+len(fields))
	return &swapCore{log: c.log, fields: append(append(all, c.fields...), fields...)}
}

// Check implements zapcore.Core.
func (c *swapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write implements zapcore.Core: it lets the current set's cores filter by
// their own levels, as a tee does.
func (c *swapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if ce := c.current().Check(e, nil); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

// Sync implements zapcore.Core.
func (c *swapCore) Sync() error { return c.log.cur.Load().core.Sync() }

// logFile is an append-only log file that can be reopened by name.
type logFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openLogFile(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open() \"%s\" failed %s", path, errnoText(err))
	}
	return &logFile{path: path, f: f}, nil
}

// Write implements io.Writer.
func (f *logFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return 0, os.ErrClosed
	}
	return f.f.Write(p)
}

// Sync implements zapcore.WriteSyncer. Log files are not fsynced per line,
// as nginx does not fsync them either.
func (f *logFile) Sync() error { return nil }

// reopen opens the path anew and swaps it in; the old descriptor is closed
// after the swap so no line is lost.
func (f *logFile) reopen() error {
	nf, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open() \"%s\" failed %s", f.path, errnoText(err))
	}
	f.mu.Lock()
	old := f.f
	f.f = nf
	f.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the file.
func (f *logFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}
