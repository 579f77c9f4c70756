// Package accesslog writes nginx access logs: the access_log and log_format
// directives of ngx_http_log_module, for every stream gproxy serves.
//
// A Set is built once per running configuration by New. It opens every
// distinct log file once, however many servers and locations name it, and
// resolves one *Logger per distinct access_log list; the engine looks up the
// Logger of each location (Set.For) when it builds its running
// configuration and calls Logger.Log as each stream ends.
//
// Lines are the bytes nginx writes: variables escaped as escape= says
// (default: `"`, `\` and bytes below 0x20 or from 0x7f as \xHH, and "-" for
// a variable nginx calls "not found"; json: JSON string content; none: as
// is), one '\n' after each line.
//
// # Buffering: where gproxy differs from nginx
//
// Without buffer=, nginx writes every line with its own write(2); at tens of
// thousands of requests a second that is a large part of a proxy's CPU
// time. gproxy instead always buffers: without buffer= a file's lines are
// written when DefaultBuffer bytes are waiting or DefaultFlush after the
// first waiting line, whichever comes first, and on Flush, Reopen and
// Close. So a line reaches the file at most DefaultFlush (100 ms) after its
// stream ended, instead of at once.
//
// With buffer=size [flush=time], gproxy does what nginx does: lines are
// written when size bytes are waiting, when the oldest waiting line is
// older than flush= (never by time without flush=), and on Reopen and
// Close. As in nginx, one buffer serves every access_log that names a file,
// and two access_logs naming the same file with different buffer= or
// flush= are an error. Writes happen on a goroutine of the file, never on
// the connection's; only when more than max(4*size, 1 MiB) are waiting for
// a slow disk does logging wait, as an nginx worker would.
//
// # Reload and rotation
//
// Open files and syslog connections are shared between Sets: New reuses
// what an older Set holds, and Close closes a destination only when no Set
// holds it. On reload the engine builds the new Set, swaps, and may Close
// the old Set at once; streams still running on the old configuration go
// on logging to every destination the new one also names. Reopen (USR1)
// writes what is buffered to the old file and opens the path again, as
// logrotate expects after renaming.
//
// "stderr" is the process's standard error (nginx 1.22 would create a file
// named "stderr" in its prefix). Syslog destinations
// ("syslog:server=...,facility=,severity=,tag=,nohostname", parsed by the
// parser into config.Syslog) send one datagram per line through package
// proxy/syslog, unbuffered (buffer= is an error, as in nginx), connecting
// on the first line as nginx does.
package accesslog

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/route"
	"go.uber.org/zap"
)

// gproxy's policy for an access_log without buffer= (see the package
// documentation).
const (
	DefaultBuffer = 64 << 10
	DefaultFlush  = 100 * time.Millisecond
)

// sink is where lines go: a file or a syslog server.
type sink interface {
	write(line []byte)
}

// Set is the access logs of one running configuration: its open files,
// syslog connections and compiled formats.
type Set struct {
	t       *route.Table
	files   map[string]*file // by path as configured ("stderr" too)
	syslogs map[config.Syslog]*syslogSink
	formats map[string]*format

	bySettings map[*config.Settings]*Logger
	byKey      map[string]*Logger

	closeOnce sync.Once
	closeErr  error
}

// Logger writes the access logs of one server or location: one line per
// access_log directive in effect there.
type Logger struct {
	t    *route.Table
	outs []output
}

// output is one access_log directive.
type output struct {
	sink sink
	f    *format
	cond []op // if=; nil when absent
}

// New opens every file and syslog destination that the access_log
// directives of h name, and compiles the log formats against t (the route
// table of the same configuration). Errors name the directive's FILE:LINE.
// errlog receives write errors (nil discards them). A nil h gives an empty
// Set.
//
// Destinations are shared across Sets: a file (with the same buffer
// policy) or syslog server that an older Set still has open is reused, not
// opened again. So on reload the engine may Close the old Set as soon as
// the new one serves: streams still running on the old configuration keep
// logging to every destination the new configuration also names (lines to
// destinations it dropped are lost). The caller must Close every Set.
func New(h *config.HTTP, t *route.Table, errlog *zap.Logger) (*Set, error) {
	if errlog == nil {
		errlog = zap.NewNop()
	}
	s := &Set{
		t:          t,
		files:      map[string]*file{},
		syslogs:    map[config.Syslog]*syslogSink{},
		formats:    map[string]*format{},
		bySettings: map[*config.Settings]*Logger{},
		byKey:      map[string]*Logger{},
	}
	if h == nil {
		return s, nil
	}
	var all []*config.Settings
	var walk func([]*config.Location)
	walk = func(ls []*config.Location) {
		for _, l := range ls {
			all = append(all, &l.Settings)
			walk(l.Locations)
		}
	}
	for _, srv := range h.Servers {
		all = append(all, &srv.Settings)
		walk(srv.Locations)
	}
	b := builder{s: s, h: h, errlog: errlog, policy: map[string]config.Log{}}
	for _, st := range all {
		b.plan(st)
	}
	for _, st := range all {
		if err := b.add(st); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// builder holds what New needs while it walks the configuration.
type builder struct {
	s      *Set
	h      *config.HTTP
	errlog *zap.Logger
	policy map[string]config.Log // by file path: the access_log that set buffer=
}

// plan finds each file's buffer policy: the one buffer= given for it, by
// whichever access_log (nginx too buffers every line to a file once any of
// its access_logs has a buffer). The parser has already rejected what
// nginx rejects here: buffered syslog, and access_logs of one file that
// disagree on buffer= or flush=.
func (b *builder) plan(st *config.Settings) {
	if st.AccessLogOff {
		return
	}
	for _, lg := range st.AccessLogs {
		if lg.Buffer != 0 {
			b.policy[lg.Path] = lg
		}
	}
}

// add resolves the Logger of one server's or location's settings.
func (b *builder) add(st *config.Settings) error {
	if st.AccessLogOff || len(st.AccessLogs) == 0 {
		b.s.bySettings[st] = nil
		return nil
	}
	key := logsKey(st.AccessLogs)
	if l, ok := b.s.byKey[key]; ok {
		b.s.bySettings[st] = l
		return nil
	}
	l := &Logger{t: b.s.t}
	for _, lg := range st.AccessLogs {
		out, err := b.output(lg)
		if err != nil {
			return err
		}
		l.outs = append(l.outs, out)
	}
	b.s.byKey[key] = l
	b.s.bySettings[st] = l
	return nil
}

// logsKey identifies a list of access_log directives by what they do.
func logsKey(logs []config.Log) string {
	var sb strings.Builder
	for _, lg := range logs {
		sb.WriteString(lg.Path)
		sb.WriteByte(0)
		sb.WriteString(lg.Format)
		sb.WriteByte(0)
		sb.WriteString(strconv.Itoa(lg.Buffer))
		sb.WriteByte(0)
		sb.WriteString(lg.Flush.String())
		sb.WriteByte(0)
		if lg.If != nil {
			sb.WriteString("if=")
			sb.WriteString(lg.If.Raw)
		}
		sb.WriteByte(1)
	}
	return sb.String()
}

// output opens (or finds) the destination of one access_log and compiles
// its format and condition.
func (b *builder) output(lg config.Log) (output, error) {
	var out output
	f, err := b.format(lg)
	if err != nil {
		return out, err
	}
	out.f = f
	if lg.If != nil {
		if out.cond, err = compile(*lg.If, b.s.t, "access_log if=", lg.Pos); err != nil {
			return out, err
		}
	}
	out.sink, err = b.sink(lg)
	return out, err
}

func (b *builder) format(lg config.Log) (*format, error) {
	name := lg.Format
	if name == "" {
		name = "combined"
	}
	if f, ok := b.s.formats[name]; ok {
		return f, nil
	}
	lf := b.h.LogFormats[name]
	if lf == nil {
		return nil, fmt.Errorf("unknown log format \"%s\"%s", name, where(lg.Pos))
	}
	esc, ok := escapings[lf.Escape]
	if !ok {
		return nil, fmt.Errorf("unknown log format escaping \"%s\"%s", lf.Escape, where(lf.Pos))
	}
	ops, err := compile(lf.Format, b.s.t, "log_format", lf.Pos)
	if err != nil {
		return nil, err
	}
	f := &format{name: name, esc: esc, ops: ops}
	b.s.formats[name] = f
	return f, nil
}

// sink finds or opens the destination of lg, once per Set.
func (b *builder) sink(lg config.Log) (sink, error) {
	if lg.Syslog != nil {
		if sl, ok := b.s.syslogs[*lg.Syslog]; ok {
			return sl, nil
		}
		sl := acquireSyslog(*lg.Syslog, b.errlog)
		b.s.syslogs[*lg.Syslog] = sl
		return sl, nil
	}
	if strings.HasPrefix(lg.Path, "syslog:") {
		return nil, fmt.Errorf("access_log %s: destination not parsed%s", lg.Path, where(lg.Pos))
	}
	if f, ok := b.s.files[lg.Path]; ok {
		return f, nil
	}
	k := fileKey{path: lg.Path, size: DefaultBuffer, flush: DefaultFlush}
	if p, ok := b.policy[lg.Path]; ok {
		k.size, k.flush = p.Buffer, p.Flush
	}
	f, err := acquireFile(k, b.errlog)
	if err != nil {
		return nil, fmt.Errorf("open() \"%s\" failed (%w)%s", lg.Path, unwrapPathError(err), where(lg.Pos))
	}
	b.s.files[lg.Path] = f
	return f, nil
}

// unwrapPathError drops the *os.PathError wrapping, whose message repeats
// the path.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// For returns the Logger of a server's or location's settings: st must
// point at the Settings of a Server or Location of the http block given to
// New. It returns nil where access_log is off, and for settings New never
// saw. Call it when building the running configuration, not per stream
// (it is a map lookup).
func (s *Set) For(st *config.Settings) *Logger {
	if s == nil || st == nil {
		return nil
	}
	if l, ok := s.bySettings[st]; ok {
		return l
	}
	if st.AccessLogOff {
		return nil
	}
	return s.byKey[logsKey(st.AccessLogs)]
}

// scratch holds the buffers of one Log call.
type scratch struct {
	line, cond []byte
}

var scratches = sync.Pool{New: func() any {
	return &scratch{line: make([]byte, 0, 512), cond: make([]byte, 0, 64)}
}}

// Log writes r's line to every access_log of l. It is safe for concurrent
// use and allocates nothing in the common case (the pooled line buffer is
// reused; some variables allocate on their own, see route.AppendExpand).
// A nil Logger logs nothing. r must hold the response fields (Status,
// BytesSent, End...).
func (l *Logger) Log(r *route.Request) {
	if l == nil {
		return
	}
	sc := scratches.Get().(*scratch)
	var last *format
	for i := range l.outs {
		o := &l.outs[i]
		if o.cond != nil {
			var ok bool
			if sc.cond, ok = condTrue(o.cond, l.t, r, sc.cond); !ok {
				continue
			}
		}
		if o.f != last { // several access_logs with one format share a line
			sc.line = o.f.appendLine(sc.line[:0], l.t, r)
			last = o.f
		}
		o.sink.write(sc.line)
	}
	if cap(sc.line) <= 64<<10 && cap(sc.cond) <= 64<<10 {
		scratches.Put(sc)
	}
}

// Flush writes every buffered line now and returns when that is done.
func (s *Set) Flush() {
	for _, f := range s.files {
		f.flushNow()
	}
}

// Reopen writes buffered lines, then opens every log file again by its
// path, for log rotation (SIGUSR1): lines logged afterwards go to the new
// file. A file that cannot be opened again stays in use; the first such
// error is returned.
func (s *Set) Reopen() error {
	var first error
	for _, f := range s.files {
		if err := f.reopen(); err != nil && first == nil {
			first = fmt.Errorf("reopen %q: %w", f.path, err)
		}
	}
	return first
}

// Close writes buffered lines and gives up the Set's files and syslog
// connections; each is closed when no other Set holds it. Lines logged
// afterwards through this Set's Loggers go to destinations another Set
// still holds, and are dropped for the others. Close is idempotent.
func (s *Set) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, f := range s.files {
			f.flushNow()
			errs = append(errs, releaseFile(f))
		}
		for _, sl := range s.syslogs {
			errs = append(errs, releaseSyslog(sl))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
