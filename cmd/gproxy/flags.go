package main

import (
	"fmt"
	"io"
)

// Compiled-in defaults. They play the part of nginx's configure options and
// can be changed at link time, e.g.
//
//	go build -ldflags "-X main.defaultPrefix=/opt/gproxy/" ./cmd/gproxy
//
// The configuration file defaults to nginx's own so that gproxy is a drop-in
// replacement; the prefix and the pid file are gproxy's, so that gproxy and
// an nginx left installed beside it never write each other's files.
var (
	// defaultPrefix is -p's default: relative pid, log and -c paths
	// resolve against it.
	defaultPrefix = "/etc/gproxy/"
	// defaultConf is -c's default.
	defaultConf = "/etc/nginx/nginx.conf"
	// defaultPID is the pid file used when the configuration has no pid
	// directive, relative to the prefix as in an nginx built from source.
	// It is the parser's default (parser.Load fills config.PID with it);
	// it is named here for -h and -V.
	defaultPID = "logs/nginx.pid"
	// defaultErrorLog is -e's default: the error log used when the
	// configuration names none, relative to the prefix as nginx's
	// NGX_ERROR_LOG_PATH, so that a daemon never loses its messages.
	// Messages before the configuration is read go to stderr.
	defaultErrorLog = "logs/error.log"
)

// version is gproxy's version as -v prints it.
const version = "0.1.0"

// options are the parsed command line, one field per nginx flag.
type options struct {
	help      bool   // -? -h
	version   bool   // -v (also set by -V, -? and -h, as nginx does)
	configure bool   // -V
	test      bool   // -t (also set by -T)
	dump      bool   // -T
	quiet     bool   // -q
	signal    string // -s stop|quit|reopen|reload
	prefix    string // -p; "" = defaultPrefix
	errorLog  string // -e; "" = defaultErrorLog
	conf      string // -c; "" = defaultConf
	globals   string // -g
}

// signals maps -s names to what is sent to the running process, as nginx
// maps them.
var signals = map[string]string{
	"stop":   "TERM",
	"quit":   "QUIT",
	"reopen": "USR1",
	"reload": "HUP",
}

// usageError is a command-line error; its text is what nginx would print
// after the program name.
type usageError string

func (e usageError) Error() string { return string(e) }

// valueFlags are the flags that take a value, with the noun nginx uses when
// the value is missing.
var valueFlags = map[byte]string{
	'p': "directory name",
	'e': "file name",
	'c': "file name",
	'g': "parameter",
	's': "parameter",
}

// parseArgs reads the arguments (without the program name) the way nginx
// does: flags may be combined (-tq), a value may be attached (-cfile) or
// follow as the next argument (-c file), a value flag ends its argument, and
// every argument must start with '-'.
func parseArgs(args []string) (options, error) {
	var o options
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if len(arg) == 0 || arg[0] != '-' {
			return o, usageError(fmt.Sprintf("invalid option: \"%s\"", arg))
		}
	letters:
		for j := 1; j < len(arg); j++ {
			c := arg[j]
			switch c {
			case '?', 'h':
				o.help, o.version = true, true
			case 'v':
				o.version = true
			case 'V':
				o.version, o.configure = true, true
			case 't':
				o.test = true
			case 'T':
				o.test, o.dump = true, true
			case 'q':
				o.quiet = true
			case 'p', 'e', 'c', 'g', 's':
				value := arg[j+1:]
				if value == "" {
					if i+1 >= len(args) {
						return o, usageError(fmt.Sprintf("option \"-%c\" requires %s", c, valueFlags[c]))
					}
					i++
					value = args[i]
				}
				if err := o.set(c, value); err != nil {
					return o, err
				}
				break letters
			default:
				return o, usageError(fmt.Sprintf("invalid option: \"%c\"", c))
			}
		}
	}
	return o, nil
}

// set stores the value of a value flag.
func (o *options) set(flag byte, value string) error {
	switch flag {
	case 'p':
		o.prefix = value
	case 'e':
		o.errorLog = value
	case 'c':
		o.conf = value
	case 'g':
		o.globals = value
	case 's':
		if _, ok := signals[value]; !ok {
			return usageError(fmt.Sprintf("invalid option: \"-s %s\"", value))
		}
		o.signal = value
	}
	return nil
}

// usage is -h's text, shaped like nginx's.
func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: gproxy [-?hvVtTq] [-s signal] [-p prefix]
              [-e filename] [-c filename] [-g directives]

Options:
  -?,-h         : this help
  -v            : show version and exit
  -V            : show version, build information and directives then exit
  -t            : test configuration and exit
  -T            : test configuration, dump it and exit
  -q            : suppress non-error messages during configuration testing
  -s signal     : send signal to a master process: stop, quit, reopen, reload
  -p prefix     : set prefix path (default: %s)
  -e filename   : set error log file (default: %s)
  -c filename   : set configuration file (default: %s)
  -g directives : set global directives out of configuration file

`, defaultPrefix, defaultErrorLog, defaultConf)
}
