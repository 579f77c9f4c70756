package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/gproxy/gproxy/parser"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the directive table in README.md from the parser's table")

const (
	readmePath = "../../README.md"
	tableBegin = "<!-- directives:begin -->\n"
	tableEnd   = "<!-- directives:end -->\n"
)

// directiveTable renders the parser's directive table as the README shows
// it: one row for each implemented or ignored directive, and the rejected
// ones as a list, since they share one status and no contexts.
func directiveTable() string {
	var b strings.Builder
	b.WriteString("| directive | contexts | status |\n|---|---|---|\n")
	var rejected []string
	for _, d := range parser.Directives() {
		if d.Status == "unsupported" {
			rejected = append(rejected, "`"+d.Name+"`")
			continue
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", d.Name, strings.Join(d.Contexts, ", "), d.Status)
	}
	fmt.Fprintf(&b, "\nRejected (%d): %s\n", len(rejected), strings.Join(rejected, " "))
	return b.String()
}

// TestREADMEDirectives keeps the README's directive table equal to the
// parser's, so the documentation cannot drift from what gproxy accepts.
func TestREADMEDirectives(t *testing.T) {
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(tableBegin))
	j := bytes.Index(data, []byte(tableEnd))
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q ... %q section", tableBegin, tableEnd)
	}
	want := directiveTable()
	got := string(data[i+len(tableBegin) : j])
	if got == want {
		return
	}
	if !*updateReadme {
		t.Fatalf("README.md's directive table is out of date; run: go test ./cmd/gproxy -run TestREADMEDirectives -update-readme")
	}
	out := append(append(append([]byte{}, data[:i+len(tableBegin)]...), want...), data[j:]...)
	if err := os.WriteFile(readmePath, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
