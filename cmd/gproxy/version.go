package main

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"

	"github.com/gproxy/gproxy/parser"
)

// showVersion is -v, -V and the first part of -h, all on stderr as nginx
// writes them.
func showVersion(w io.Writer, o options) {
	fmt.Fprintf(w, "gproxy version: gproxy/%s\n", version)
	if o.help {
		usage(w)
	}
	if o.configure {
		buildInfo(w)
	}
}

// buildInfo is what -V adds: the toolchain, the module versions linked in,
// the compiled-in defaults, and the directives the parser knows, grouped by
// what gproxy does with them.
func buildInfo(w io.Writer) {
	fmt.Fprintf(w, "built with %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(w, "module %s %s\n", bi.Main.Path, bi.Main.Version)
		for _, m := range bi.Deps {
			v := m.Version
			if m.Replace != nil {
				v += " => " + m.Replace.Path + " " + m.Replace.Version
			}
			fmt.Fprintf(w, "  with %s %s\n", m.Path, v)
		}
		for _, s := range bi.Settings {
			if strings.HasPrefix(s.Key, "vcs.") {
				fmt.Fprintf(w, "  %s=%s\n", s.Key, s.Value)
			}
		}
	}
	pid := defaultPID
	if !filepath.IsAbs(pid) {
		pid = filepath.Join(defaultPrefix, pid)
	}
	errLog := defaultErrorLog
	if errLog != "stderr" && !filepath.IsAbs(errLog) {
		errLog = filepath.Join(defaultPrefix, errLog)
	}
	fmt.Fprintf(w, "configure arguments: --prefix=%s --conf-path=%s --pid-path=%s --error-log-path=%s\n",
		defaultPrefix, defaultConf, pid, errLog)

	byStatus := map[string][]string{}
	for _, d := range parser.Directives() {
		byStatus[d.Status] = append(byStatus[d.Status], d.Name)
	}
	for _, status := range directiveStatuses(byStatus) {
		names := byStatus[status]
		sort.Strings(names)
		fmt.Fprintf(w, "directives %s (%d):\n", status, len(names))
		wrap(w, names, "    ", 80)
	}
}

// directiveStatuses orders the statuses: what gproxy does, what it
// accepts and ignores, what it refuses, then anything newer.
func directiveStatuses(byStatus map[string][]string) []string {
	order := []string{"implemented", "ignored", "unsupported"}
	var out []string
	for _, s := range order {
		if _, ok := byStatus[s]; ok {
			out = append(out, s)
		}
	}
	var rest []string
	for s := range byStatus {
		if !slices.Contains(order, s) {
			rest = append(rest, s)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// wrap writes words separated by spaces in lines of at most width
// characters, each starting with indent.
func wrap(w io.Writer, words []string, indent string, width int) {
	line := indent
	for _, word := range words {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		fmt.Fprintln(w, line)
	}
}
