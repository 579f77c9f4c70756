package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args []string
		want options
		err  string
	}{
		{args: nil, want: options{}},
		{args: []string{"-t"}, want: options{test: true}},
		{args: []string{"-tq"}, want: options{test: true, quiet: true}},
		{args: []string{"-T"}, want: options{test: true, dump: true}},
		{args: []string{"-v"}, want: options{version: true}},
		{args: []string{"-V"}, want: options{version: true, configure: true}},
		{args: []string{"-h"}, want: options{version: true, help: true}},
		{args: []string{"-?"}, want: options{version: true, help: true}},
		{args: []string{"-"}, want: options{}},
		{args: []string{"-c", "a.conf"}, want: options{conf: "a.conf"}},
		{args: []string{"-ca.conf"}, want: options{conf: "a.conf"}},
		{args: []string{"-tca.conf"}, want: options{test: true, conf: "a.conf"}},
		{args: []string{"-tc", "a.conf", "-q"}, want: options{test: true, quiet: true, conf: "a.conf"}},
		{args: []string{"-p", "/srv/", "-e", "stderr", "-g", "daemon off;"}, want: options{prefix: "/srv/", errorLog: "stderr", globals: "daemon off;"}},
		{args: []string{"-s", "reload"}, want: options{signal: "reload"}},
		{args: []string{"-squit"}, want: options{signal: "quit"}},
		{args: []string{"-c", "-t"}, want: options{conf: "-t"}},
		{args: []string{"-x"}, err: `invalid option: "x"`},
		{args: []string{"-tx"}, err: `invalid option: "x"`},
		{args: []string{"t"}, err: `invalid option: "t"`},
		{args: []string{""}, err: `invalid option: ""`},
		{args: []string{"-c"}, err: `option "-c" requires file name`},
		{args: []string{"-e"}, err: `option "-e" requires file name`},
		{args: []string{"-p"}, err: `option "-p" requires directory name`},
		{args: []string{"-g"}, err: `option "-g" requires parameter`},
		{args: []string{"-s"}, err: `option "-s" requires parameter`},
		{args: []string{"-s", "restart"}, err: `invalid option: "-s restart"`},
	}
	for _, tt := range tests {
		got, err := parseArgs(tt.args)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("parseArgs(%q) error = %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseArgs(%q): %v", tt.args, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseArgs(%q) = %+v, want %+v", tt.args, got, tt.want)
		}
	}
}

// TestCLI runs the built binary with each flag and checks exactly what it
// prints and how it exits.
func TestCLI(t *testing.T) {
	prefix := newPrefix(t)
	article := corpus("article.conf")
	typo := corpus("article-typo.conf")
	ok := "gproxy: the configuration file " + article + " syntax is ok\n" +
		"gproxy: configuration file " + article + " test is successful\n"
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // exact, unless prefixed with "~" (then a substring)
		stdout string
	}{
		{name: "version", args: []string{"-v"}, stderr: "gproxy version: gproxy/" + version + "\n"},
		{name: "help", args: []string{"-h"}, stderr: "~Usage: gproxy [-?hvVtTq] [-s signal] [-p prefix]\n"},
		{name: "help?", args: []string{"-?"}, stderr: "~  -c filename   : set configuration file (default: /etc/nginx/nginx.conf)\n"},
		{name: "configure", args: []string{"-V"}, stderr: "~\nbuilt with go"},
		{name: "configure directives", args: []string{"-V"}, stderr: "~directives implemented ("},
		{name: "test ok", args: []string{"-p", prefix, "-c", article, "-t"}, stderr: ok},
		{name: "test attached", args: []string{"-p" + prefix, "-tc" + article}, stderr: ok},
		{name: "version and test", args: []string{"-v", "-p", prefix, "-c", article, "-t"},
			stderr: "gproxy version: gproxy/" + version + "\n" + ok},
		{name: "test quiet", args: []string{"-p", prefix, "-c", article, "-tq"}},
		{name: "test failed", args: []string{"-p", prefix, "-c", typo, "-t"}, code: 1,
			stderr: "gproxy: [emerg] invalid number \"1o24\" in " + typo + ":10\n" +
				"gproxy: configuration file " + typo + " test failed\n"},
		{name: "test failed quiet", args: []string{"-p", prefix, "-c", typo, "-tq"}, code: 1,
			stderr: "gproxy: [emerg] invalid number \"1o24\" in " + typo + ":10\n" +
				"gproxy: configuration file " + typo + " test failed\n"},
		{name: "warning quiet", args: []string{"-p", prefix, "-c", corpus("warn-balancer-redefined.conf"), "-tq"},
			stderr: "gproxy: [warn] load balancing method redefined in " + corpus("warn-balancer-redefined.conf") + ":12\n"},
		{name: "relative conf", args: []string{"-p", prefix, "-c", relTo(prefix, article), "-t"}, stderr: ok},
		{name: "error log unopenable", args: []string{"-p", testdataDir, "-c", "article.conf", "-t"}, code: 1,
			stderr: "gproxy: [emerg] open() \"" + testdataDir + "/logs/error.log\" failed (2: No such file or directory)\n" +
				"gproxy: configuration file " + testdataDir + "/article.conf test failed\n"},
		{name: "missing conf", args: []string{"-p", prefix, "-c", "nope.conf", "-t"}, code: 1,
			stderr: "gproxy: [emerg] open() \"" + prefix + "nope.conf\" failed (2: No such file or directory)\n" +
				"gproxy: configuration file " + prefix + "nope.conf test failed\n"},
		{name: "globals", args: []string{"-p", prefix, "-c", article, "-g", "daemon off; worker_rlimit_nofile 1024;", "-t"}, stderr: ok},
		{name: "globals unknown", args: []string{"-p", prefix, "-c", article, "-g", "bogus on;", "-t"}, code: 1,
			stderr: "gproxy: [emerg] unknown directive \"bogus\" in command line\n" +
				"gproxy: configuration file " + article + " test failed\n"},
		{name: "globals duplicate", args: []string{"-p", prefix, "-c", article, "-g", "pid x.pid;", "-t"}, code: 1,
			stderr: "gproxy: [emerg] \"pid\" directive is duplicate in " + article + ":7\n" +
				"gproxy: configuration file " + article + " test failed\n"},
		{name: "bad flag", args: []string{"-x"}, code: 1, stderr: "gproxy: invalid option: \"x\"\n"},
		{name: "bare word", args: []string{"t"}, code: 1, stderr: "gproxy: invalid option: \"t\"\n"},
		{name: "missing value", args: []string{"-c"}, code: 1, stderr: "gproxy: option \"-c\" requires file name\n"},
		{name: "bad signal", args: []string{"-s", "restart"}, code: 1, stderr: "gproxy: invalid option: \"-s restart\"\n"},
		{name: "signal no pid file", args: []string{"-p", prefix, "-c", article, "-s", "reload"}, code: 1,
			stderr: "gproxy: [error] open() \"" + prefix + "logs/nginx.pid\" failed (2: No such file or directory)\n"},
		{name: "signal bad config", args: []string{"-p", prefix, "-c", typo, "-s", "stop"}, code: 1,
			stderr: "gproxy: [emerg] invalid number \"1o24\" in " + typo + ":10\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runGproxy(t, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			if sub, ok := strings.CutPrefix(tt.stderr, "~"); ok {
				if !strings.Contains(r.stderr, sub) {
					t.Errorf("stderr does not contain %q:\n%s", sub, r.stderr)
				}
			} else if r.stderr != tt.stderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, tt.stderr)
			}
			if r.stdout != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, tt.stdout)
			}
		})
	}
}

// TestDump checks -T: the verdict on stderr, then every file read, main file
// first and includes in the order read, on stdout under nginx's headers.
func TestDump(t *testing.T) {
	prefix := newPrefix(t)
	main := corpus("include-glob.conf")
	r := runGproxy(t, "-p", prefix, "-c", main, "-T")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.HasSuffix(r.stderr, "test is successful\n") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	var want strings.Builder
	for _, name := range []string{"include-glob.conf", "conf.d/10-upstreams.conf", "conf.d/20-users.conf", "conf.d/30-orders.conf"} {
		data, err := os.ReadFile(corpus(name))
		if err != nil {
			t.Fatal(err)
		}
		want.WriteString("# configuration file " + filepath.Join(testdataDir, name) + ":\n" + string(data) + "\n")
	}
	if r.stdout != want.String() {
		t.Errorf("dump:\n%s\nwant:\n%s", r.stdout, want.String())
	}

	// -q silences the verdict, not the warnings nor the dump.
	q := runGproxy(t, "-p", prefix, "-c", main, "-Tq")
	warnings, _, _ := strings.Cut(r.stderr, "gproxy: the configuration file")
	if q.code != 0 || q.stderr != warnings || q.stdout != r.stdout {
		t.Errorf("-Tq: exit %d, stderr %q (want %q), stdout equal to -T's: %v", q.code, q.stderr, warnings, q.stdout == r.stdout)
	}
}

// TestSignalPIDFile checks -s against pid files that do not name a live
// gproxy, with nginx's messages.
func TestSignalPIDFile(t *testing.T) {
	prefix := newPrefix(t)
	article := corpus("article.conf")
	pidFile := prefix + "logs/nginx.pid"
	tests := []struct {
		content string
		stderr  string
	}{
		{"abc\n", "gproxy: [error] invalid PID number \"abc\" in \"" + pidFile + "\"\n"},
		{"", "gproxy: [error] invalid PID number \"\" in \"" + pidFile + "\"\n"},
		{"-5\n", "gproxy: [error] invalid PID number \"-5\" in \"" + pidFile + "\"\n"},
		// Above Linux's pid_max, so no process can have it.
		{"99999999\n", "gproxy: [alert] kill(99999999, 1) failed (3: No such process)\n"},
	}
	for _, tt := range tests {
		if err := os.WriteFile(pidFile, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runGproxy(t, "-p", prefix, "-c", article, "-s", "reload")
		if r.code != 1 || r.stderr != tt.stderr {
			t.Errorf("pid file %q: exit %d, stderr %q; want 1, %q", tt.content, r.code, r.stderr, tt.stderr)
		}
	}
}

// relTo is target relative to dir.
func relTo(dir, target string) string {
	rel, err := filepath.Rel(dir, target)
	if err != nil {
		panic(err)
	}
	return rel
}

// TestVersionListsDirectives checks that -V names grpc_pass among the
// implemented directives, wherever the line wrapping puts it.
func TestVersionListsDirectives(t *testing.T) {
	r := runGproxy(t, "-V")
	impl, _, _ := strings.Cut(r.stderr, "directives ignored")
	if !regexp.MustCompile(`(?m)[ ]grpc_pass( |$)`).MatchString(impl) {
		t.Errorf("grpc_pass not listed as implemented:\n%s", impl)
	}
}
