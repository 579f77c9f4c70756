package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/gproxy/gproxy/parser/config"
)

// TestErrorLog checks the error log's line shape, level filtering per
// destination, that a logger made With fields keeps following the
// destinations across a swap, and reopening after rotation.
func TestErrorLog(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	l, err := newErrorLog([]config.Log{{Path: a, Level: "warn"}, {Path: b, Level: "info"}}, "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	child := l.logger.With(zap.String("conn", "c1"))
	l.logger.Info("only in b")
	child.Warn("in both")

	read := func(name string) string {
		t.Helper()
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if got := read(a); strings.Contains(got, "only in b") || !strings.Contains(got, `in both, conn: c1`) {
		t.Errorf("a.log (warn):\n%s", got)
	}
	if got := read(b); !strings.Contains(got, "only in b") || !strings.Contains(got, "in both") {
		t.Errorf("b.log (info):\n%s", got)
	}
	for _, line := range strings.Split(strings.TrimSpace(read(b)), "\n") {
		if !errorLogLine.MatchString(line) {
			t.Errorf("line not in nginx's shape: %q", line)
		}
	}

	// Swap to a new destination: the child logger follows.
	c := filepath.Join(dir, "c.log")
	set, err := openLogSet([]config.Log{{Path: c}}, "stderr")
	if err != nil {
		t.Fatal(err)
	}
	l.commit(set)
	child.Warn("after swap, below error")
	child.Error("after swap")
	if got := read(c); strings.Contains(got, "below error") || !strings.Contains(got, `[error] `) || !strings.Contains(got, `after swap, conn: c1`) {
		t.Errorf("c.log (default level error):\n%s", got)
	}
	if strings.Contains(read(b), "after swap") {
		t.Error("b.log written after the swap")
	}

	// Rotation: rename, reopen, and the next line lands in a new file.
	if err := os.Rename(c, c+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.reopen(); err != nil {
		t.Fatal(err)
	}
	child.Error("after reopen")
	if got := read(c); !strings.Contains(got, "after reopen") {
		t.Errorf("reopened c.log:\n%s", got)
	}
	if strings.Contains(read(c+".1"), "after reopen") {
		t.Error("rotated file written after reopen")
	}
}

// TestErrorLogRejects checks destinations gproxy cannot write.
func TestErrorLogRejects(t *testing.T) {
	for _, lg := range []config.Log{
		{Path: "syslog:server=127.0.0.1", Level: "error"}, // not through the parser
		{Path: "memory:32m", Level: "debug"},
		{Path: filepath.Join(t.TempDir(), "no", "such", "dir.log"), Level: "error"},
		{Path: "stderr", Level: "verbose"},
	} {
		if _, err := openLogSet([]config.Log{lg}, "stderr"); err == nil {
			t.Errorf("%+v: no error", lg)
		}
	}
}
