package main

import (
	"path/filepath"
	"strings"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/parser/config"
)

// paths are the command line's file names resolved as nginx resolves them:
// relative -c and -e against the prefix, the prefix against the working
// directory.
type paths struct {
	prefix   string // absolute, ends in '/'
	conf     string // absolute
	errorLog string // absolute, or "stderr"
	globals  string // -g
}

// paths resolves o's file names.
func (o options) paths() (paths, error) {
	p := paths{prefix: o.prefix, conf: o.conf, errorLog: o.errorLog, globals: o.globals}
	if p.prefix == "" {
		p.prefix = defaultPrefix
	}
	abs, err := filepath.Abs(p.prefix)
	if err != nil {
		return p, err
	}
	p.prefix = abs
	if !strings.HasSuffix(p.prefix, "/") {
		p.prefix += "/"
	}
	if p.conf == "" {
		p.conf = defaultConf
	}
	p.conf = p.full(p.conf)
	if p.errorLog == "" {
		p.errorLog = defaultErrorLog
	}
	if p.errorLog != "stderr" {
		p.errorLog = p.full(p.errorLog)
	}
	return p, nil
}

// full makes name absolute against the prefix.
func (p paths) full(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(p.prefix, name)
}

// load reads and checks the configuration file.
func (p paths) load() (*config.Config, []parser.Diagnostic, error) {
	return parser.Load(p.conf, parser.Options{Prefix: p.prefix, Globals: p.globals})
}

// pidFile is the pid file the configuration names. The parser fills in the
// default (defaultPID under the prefix) when there is no pid directive; ""
// means the configuration asks for no pid file.
func (p paths) pidFile(cfg *config.Config) string {
	return cfg.PID
}
