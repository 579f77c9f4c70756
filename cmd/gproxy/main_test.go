package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// gproxyBin is the real gproxy binary, built once by TestMain; the CLI and
// differential tests run it as a user would.
var gproxyBin string

// testdataDir is the absolute path of the repository's testdata directory.
var testdataDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	abs, err := filepath.Abs("../../testdata")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testdataDir = abs
	dir, err := os.MkdirTemp("", "gproxy-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	gproxyBin = filepath.Join(dir, "gproxy")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", gproxyBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building gproxy: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// result is what one run of a program printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
}

// runProgram runs a program to completion within 30 seconds.
func runProgram(t testing.TB, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		t.Fatalf("%s %q: %v\nstderr: %s", name, args, err, r.stderr)
	}
	return r
}

// runGproxy runs the built gproxy binary.
func runGproxy(t testing.TB, args ...string) result {
	t.Helper()
	return runProgram(t, gproxyBin, args...)
}

// newPrefix makes a -p directory with the logs/ subdirectory the corpus's
// relative pid and log paths point into.
func newPrefix(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir + "/"
}

// corpus returns the absolute path of testdata/name.
func corpus(name string) string {
	return filepath.Join(testdataDir, name)
}
