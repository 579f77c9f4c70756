package parser

import (
	"context"
	"errors"
	"fmt"
	"github.com/gproxy/gproxy/parser/syserr"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// Options mirror nginx's command line.
type Options struct {
	// Prefix is nginx's -p: relative pid, error_log and access_log paths
	// resolve against it. "" means the directory of the main file.
	Prefix string
	// ConfPrefix is the directory relative include paths resolve against;
	// "" means the directory of the main file (nginx's conf prefix).
	ConfPrefix string
	// Globals is nginx's -g: directives applied to the main context
	// before the file; errors in them name "command line".
	Globals string
	// LookupHost resolves host names of listen, upstream server and
	// grpc_pass, as nginx does while reading its configuration. nil means
	// the system resolver with a 5s limit per name. Tests set it so that
	// they never leave the machine.
	LookupHost func(ctx context.Context, host string) ([]string, error)
}

// Diagnostic is one nginx-style message.
type Diagnostic struct {
	Level string // "emerg", "warn", ...
	Msg   string
	Pos   config.Pos // zero when nginx names no place (post-configuration checks)
}

// Error formats the diagnostic as nginx does, without the program name:
// "[emerg] MSG in FILE:LINE".
func (d *Diagnostic) Error() string {
	s := "[" + d.Level + "] " + d.Msg
	switch {
	case d.Pos.File == "":
	case d.Pos.Line == 0:
		s += " in " + d.Pos.File
	default:
		s += " in " + d.Pos.File + ":" + strconv.Itoa(d.Pos.Line)
	}
	return s
}

// commandLine is the pseudo file name of -g directives, as nginx names it.
const commandLine = "command line"

// Load reads, expands, validates and merges a configuration. On failure err
// is a *Diagnostic: the first emerg, as nginx would report it. Warnings are
// returned in order, even on failure.
func Load(file string, opt Options) (*config.Config, []Diagnostic, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, nil, &Diagnostic{Level: "emerg", Msg: err.Error()}
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, nil, &Diagnostic{Level: "emerg", Msg: syserr.Open(abs, err)}
	}
	return LoadBytes(abs, data, opt)
}

// LoadBytes is Load for text already in memory (fuzzing, tests). name is
// the file name used in messages; includes resolve against opt.ConfPrefix,
// or name's directory when that is empty.
func LoadBytes(name string, data []byte, opt Options) (*config.Config, []Diagnostic, error) {
	l := newLoader(name, opt)
	err := l.run(data)
	if err != nil {
		return nil, l.warns, err
	}
	return l.cfg, l.warns, nil
}

// loader holds the state of one Load.
type loader struct {
	opt        Options
	prefix     string
	confPrefix string
	cfg        *config.Config
	warns      []Diagnostic
	warned     map[string]bool // ignored directive names already warned about

	file     string   // file being walked
	stack    []string // include chain, for loop detection
	events   bool
	http     *httpState
	mainSeen map[string]bool // main-level scalar directives already set
	// locStates finds the level of a location when merging.
	locStates map[*config.Location]*locState
	// ifLevels are the if blocks of each location, for their settings.
	ifLevels map[*config.Location][]ifLevel
	// asWritten maps a resolved certificate path to its spelling in the
	// file, for the messages nginx words with the latter.
	asWritten map[string]string
}

func newLoader(name string, opt Options) *loader {
	dir := filepath.Dir(name)
	l := &loader{
		opt:        opt,
		prefix:     opt.Prefix,
		confPrefix: opt.ConfPrefix,
		warned:     map[string]bool{},
		mainSeen:   map[string]bool{},
		ifLevels:   map[*config.Location][]ifLevel{},
		asWritten:  map[string]string{},
		cfg: &config.Config{
			File:              name,
			WorkerProcesses:   1,
			Daemon:            true,
			WorkerConnections: 512,
		},
	}
	if l.prefix == "" {
		l.prefix = dir
	}
	if l.confPrefix == "" {
		l.confPrefix = dir
	}
	if l.opt.LookupHost == nil {
		l.opt.LookupHost = func(ctx context.Context, host string) ([]string, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return net.DefaultResolver.LookupHost(ctx, host)
		}
	}
	l.cfg.PID = l.path("logs/nginx.pid")
	return l
}

// run reads the main file and then performs the checks nginx makes once
// the whole configuration has been read.
func (l *loader) run(data []byte) error {
	main := &block{kind: cMain}
	if l.opt.Globals != "" {
		// nginx reads -g before the file, so a directive set in both
		// is reported as duplicate at the file's line.
		nodes, perr := lex.Parse([]byte(l.opt.Globals))
		l.file = commandLine
		if err := l.walk(nodes, main); err != nil {
			return err
		}
		if perr != nil {
			return &Diagnostic{Level: "emerg", Msg: perr.Msg, Pos: config.Pos{File: commandLine}}
		}
	}
	if err := l.readFile(l.cfg.File, data, main); err != nil {
		return err
	}
	if !l.events {
		return &Diagnostic{Level: "emerg", Msg: `no "events" section in configuration`}
	}
	if n := l.listeningSockets(); n > l.cfg.WorkerConnections {
		return &Diagnostic{Level: "emerg", Msg: fmt.Sprintf("%d worker_connections are not enough for %d listening sockets", l.cfg.WorkerConnections, n)}
	}
	return l.checkZones()
}

// readFile tokenizes one file and walks its directives in context b.
func (l *loader) readFile(name string, data []byte, b *block) error {
	for _, f := range l.stack {
		if filepath.Clean(f) == filepath.Clean(name) {
			return l.errAt(config.Pos{File: l.file, Line: 0}, "include loop: \"%s\" includes itself (via %s)", name, strings.Join(l.stack, " -> "))
		}
	}
	l.cfg.Files = append(l.cfg.Files, config.SourceFile{Path: name, Data: data})
	saved := l.file
	l.file = name
	l.stack = append(l.stack, name)
	defer func() {
		l.file = saved
		l.stack = l.stack[:len(l.stack)-1]
	}()
	nodes, perr := lex.Parse(data)
	// nginx runs each directive's handler as soon as it has read it, so
	// an error in a directive before a syntax error is reported first.
	if err := l.walk(nodes, b); err != nil {
		return err
	}
	if perr != nil {
		return &Diagnostic{Level: "emerg", Msg: perr.Msg, Pos: config.Pos{File: name, Line: perr.Line}}
	}
	return nil
}

// walk runs the handlers of nodes in context b, in source order.
func (l *loader) walk(nodes []*lex.Node, b *block) error {
	for _, n := range nodes {
		if err := l.handle(n, b); err != nil {
			return err
		}
	}
	return nil
}

// handle finds n's command and runs it, checking context, terminator and
// argument count in nginx's order.
func (l *loader) handle(n *lex.Node, b *block) error {
	switch b.kind {
	case cMap:
		return l.mapEntry(b, n)
	case cTypes:
		return l.typesEntry(b, n)
	}
	cmds, known := table[n.Name]
	if !known {
		if isUnsupported(n.Name) {
			return l.errf(n, "\"%s\" directive is not supported by gproxy", n.Name)
		}
		return l.errf(n, "unknown directive \"%s\"", n.Name)
	}
	for _, c := range cmds {
		if c.ctx&b.kind == 0 {
			continue
		}
		if c.status == statusUnsupported {
			return l.errf(n, "\"%s\" directive is not supported by gproxy", n.Name)
		}
		if c.block && !n.Block {
			return l.errf(n, `directive "%s" has no opening "{"`, n.Name)
		}
		if !c.block && n.Block {
			return l.errf(n, `directive "%s" is not terminated by ";"`, n.Name)
		}
		if !c.args.ok(len(n.Args)) {
			return l.errf(n, "invalid number of arguments in \"%s\" directive", n.Name)
		}
		if c.status == statusIgnored {
			if c.set != nil {
				if err := c.set(l, b, n); err != nil {
					return err
				}
			}
			if !l.warned[n.Name] {
				l.warned[n.Name] = true
				l.warn(n, "\"%s\" directive is ignored by gproxy", n.Name)
			}
			return nil
		}
		return c.set(l, b, n)
	}
	return l.errf(n, "\"%s\" directive is not allowed here", n.Name)
}

// pos is where nginx says n is: the line of its `;` or `{`.
func (l *loader) pos(n *lex.Node) config.Pos {
	if l.file == commandLine {
		return config.Pos{File: commandLine}
	}
	return config.Pos{File: l.file, Line: n.EndLine}
}

func (l *loader) errf(n *lex.Node, format string, a ...any) error {
	return l.errAt(l.pos(n), format, a...)
}

func (l *loader) errAt(p config.Pos, format string, a ...any) error {
	return &Diagnostic{Level: "emerg", Msg: fmt.Sprintf(format, a...), Pos: p}
}

// dirErr is nginx's message for a setter's failure: `"name" directive MSG`.
func (l *loader) dirErr(n *lex.Node, msg string) error {
	return l.errf(n, "\"%s\" directive %s", n.Name, msg)
}

func (l *loader) warn(n *lex.Node, format string, a ...any) {
	l.warnAt(l.pos(n), format, a...)
}

func (l *loader) warnAt(p config.Pos, format string, a ...any) {
	l.warns = append(l.warns, Diagnostic{Level: "warn", Msg: fmt.Sprintf(format, a...), Pos: p})
}

// path resolves p against the prefix as nginx does for pid and log files.
func (l *loader) path(p string) string {
	if p == "" {
		return p
	}
	return fullName(l.prefix, p)
}

// fullName is ngx_conf_full_name: a relative name is appended to the
// prefix as written, without cleaning, so messages name "./a.conf" as
// nginx does ("/etc/nginx/./a.conf").
func fullName(prefix, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix + p
}

// include expands `include PATH;` in the current context. A glob matching
// nothing is fine; a plain path that does not exist is an error (gonginx
// silently ignores it). Matches are read in sorted order, as glob(3)
// returns them to nginx.
func (l *loader) include(b *block, n *lex.Node) error {
	pat := fullName(l.confPrefix, n.Args[0])
	if !strings.ContainsAny(pat, "*?[") {
		f, err := os.Open(pat)
		if err != nil {
			return l.errf(n, "%s", syserr.Open(pat, err))
		}
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			// A directory opens; nginx fails when it reads it, and
			// names no place.
			var errno syscall.Errno
			if !errors.As(err, &errno) {
				errno = syscall.EIO
			}
			return &Diagnostic{Level: "crit", Msg: fmt.Sprintf(`pread() "%s" failed (%d: %s)`, pat, int(errno), syserr.Text(errno))}
		}
		return l.readFile(pat, data, b)
	}
	matches, err := filepath.Glob(pat)
	if err != nil {
		return l.errf(n, `glob() "%s" failed (%v)`, pat, err)
	}
	// glob(3) keeps the directory part as written; Go's Glob cleans it.
	if dir, _ := filepath.Split(pat); !strings.ContainsAny(dir, "*?[") {
		for i, m := range matches {
			matches[i] = dir + filepath.Base(m)
		}
	}
	sort.Strings(matches)
	for _, m := range matches {
		// nginx's glob skips hidden files.
		if strings.HasPrefix(filepath.Base(m), ".") {
			continue
		}
		st, err := os.Stat(m)
		if err != nil || st.IsDir() {
			continue
		}
		data, err := os.ReadFile(m)
		if err != nil {
			return l.errf(n, "%s", syserr.Open(m, err))
		}
		if err := l.readFile(m, data, b); err != nil {
			return err
		}
	}
	return nil
}

// lookup resolves host, IP literals without asking anyone. Like the C
// library nginx asks, it takes inet_aton's forms of IPv4 addresses too
// ("127.1", "0x7f.0.0.1", "0").
func (l *loader) lookup(host string) ([]string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []string{ip.String()}, nil
	}
	if ip, ok := inetAton(host); ok {
		return []string{ip.String()}, nil
	}
	return l.opt.LookupHost(context.Background(), host)
}

// inetAton parses a.b.c.d, a.b.c, a.b or a, each part decimal, octal
// (leading 0) or hexadecimal (0x), the last part filling the remaining
// bytes, as inet_aton(3) does.
func inetAton(s string) (net.IP, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return nil, false
	}
	var vals []uint64
	for _, p := range parts {
		if p == "" {
			return nil, false
		}
		v, err := strconv.ParseUint(p, 0, 32)
		if err != nil || strings.ContainsAny(p, "_oObB") {
			return nil, false
		}
		vals = append(vals, v)
	}
	var addr uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return nil, false
		}
		addr |= v << (24 - 8*uint(i))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*uint(5-len(vals))) {
		return nil, false
	}
	addr |= last
	return net.IPv4(byte(addr>>24), byte(addr>>16), byte(addr>>8), byte(addr)), true
}
