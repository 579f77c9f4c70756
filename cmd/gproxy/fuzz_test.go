package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser"
)

// maxFuzzInput bounds an input: a configuration is text a human wrote, and
// the bound keeps every run short so a hang means a loop, not a big input.
const maxFuzzInput = 64 << 10

// fuzzDeadline is how long one input may take before it counts as a hang.
const fuzzDeadline = 10 * time.Second

// positionless are the errors nginx reports without a file and line,
// because they come from checks made after the whole file is read.
var positionless = []string{
	`no "events" section in configuration`,
	`unknown "`, // unknown "name" variable
	`cannot load certificate`,
	`cannot load certificate key`,
	`no "ssl_certificate_key" is defined for certificate`,
	`worker_connections are not enough`, // N worker_connections are not enough for M listening sockets
	`pread() `,                          // an include that names a directory
	`zero size shared memory zone`,      // a limit_req/limit_conn zone never sized
}

// loopbackOnly resolves only the names the corpus uses, so fuzzing never
// leaves the machine.
func loopbackOnly(_ context.Context, host string) ([]string, error) {
	switch strings.ToLower(host) {
	case "localhost":
		return []string{"127.0.0.1", "::1"}, nil
	case "127.0.0.1", "::1":
		return []string{host}, nil
	}
	return nil, errors.New("host not found")
}

// FuzzLoad feeds the parser arbitrary text, seeded with the corpus. Every
// input must end, in bounded time, either in a configuration or in an
// [emerg] that says where (except the few errors nginx itself reports
// without a place), and never in a panic.
//
//	go test -run '^$' -fuzz FuzzLoad -fuzztime 2m ./cmd/gproxy/
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob("../../testdata/*.conf")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	dir := f.TempDir()
	name := filepath.Join(dir, "fuzz.conf")
	opt := parser.Options{Prefix: dir + "/", ConfPrefix: dir, LookupHost: loopbackOnly}

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			t.Skip("input larger than a configuration")
		}
		type outcome struct {
			ok  bool
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			cfg, _, err := parser.LoadBytes(name, data, opt)
			done <- outcome{ok: cfg != nil, err: err}
		}()
		var o outcome
		select {
		case o = <-done:
		case <-time.After(fuzzDeadline):
			t.Fatalf("LoadBytes did not return within %v", fuzzDeadline)
		}
		if o.ok == (o.err != nil) {
			t.Fatalf("LoadBytes returned config=%v and err=%v: want exactly one", o.ok, o.err)
		}
		if o.err == nil {
			return
		}
		var d *parser.Diagnostic
		if !errors.As(o.err, &d) {
			t.Fatalf("error %T %q is not a *parser.Diagnostic", o.err, o.err)
		}
		// nginx reports an include it cannot read (a directory) as crit.
		if d.Level != "emerg" && !(d.Level == "crit" && strings.HasPrefix(d.Msg, "pread() ")) {
			t.Errorf("error level %q, want emerg: %v", d.Level, d)
		}
		if d.Msg == "" {
			t.Errorf("empty error message: %#v", d)
		}
		if d.Pos.Line > 0 && d.Pos.File == "" {
			t.Errorf("line without file: %v", d)
		}
		// (A leading count, as in "1 worker_connections are ...", is skipped.)
		if d.Pos.Line <= 0 && !hasAnyPrefix(strings.TrimLeft(d.Msg, "0123456789 "), positionless) {
			t.Errorf("error without a line: %v", d)
		}
	})
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
