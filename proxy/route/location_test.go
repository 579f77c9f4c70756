package route

import (
	"strings"
	"testing"

	"github.com/gproxy/gproxy/parser/config"
)

// locTable builds one server with the given locations and returns a
// function giving the Path of the location chosen for a request path ("-"
// for none).
func locTable(t *testing.T, locs ...*config.Location) func(string) string {
	s := srv("127.0.0.1:80")
	s.Locations = locs
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{s}})
	return func(path string) string {
		l := tb.Location(s, path)
		if l == nil {
			return "-"
		}
		return l.Config.Path
	}
}

func TestLocationNginxDocExample(t *testing.T) {
	// The example of the nginx documentation for `location`.
	find := locTable(t,
		loc("= /"),
		loc("/"),
		loc("/documents/"),
		loc("^~ /images/"),
		loc(`~* \.(gif|jpg|jpeg)$`),
	)
	tests := []struct{ path, want string }{
		{"/", "/"}, // "= /" (Path is "/" for both A and B; see next test for which)
		{"/index.html", "/"},
		{"/documents/document.html", "/documents/"},
		{"/images/1.gif", "/images/"},
		{"/documents/1.jpg", `\.(gif|jpg|jpeg)$`},
		{"/documents/1.JPG", `\.(gif|jpg|jpeg)$`}, // ~* is caseless
		{"/a/../images/1.gif", "/images/"},        // normalised first
		{"/%69mages/1.gif?x=.jpg", "/images/"},    // decoded, query ignored
	}
	for _, tc := range tests {
		if got := find(tc.path); got != tc.want {
			t.Errorf("%s -> %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestLocationRules(t *testing.T) {
	exactRoot, prefixRoot := loc("= /"), loc("/")
	exactRoot.Pos, prefixRoot.Pos = pos(10), pos(11)
	s := srv("127.0.0.1:80")
	s.Locations = []*config.Location{
		exactRoot, prefixRoot,
		loc("= /exact"),
		loc("/exact"), // same path as the exact one: prefix for longer URIs
		loc("/pkg.Svc/"),
		loc("/pkg.Svc/Method"),
		loc("@named"),
		loc("~ ^/pkg"),
		loc("/nest/",
			loc("~ /nest/.*\\.x$"), // regex nested in the longest prefix: before outer regexes
			loc("/nest/deeper/"),   // longer nested prefix
			loc("^~ /nest/stop/"),  // nested ^~ stops only regexes nested in /nest/
			loc("= /nest/exact"),   // exact nested in a prefix
		),
		loc("^~ /noregex/",
			loc(`~ \.y$`), // regexes nested in a ^~ location are still checked
		),
		loc(`~ \.x$`),
		loc(`~ /regex/`,
			loc(`~ /regex/inner`),
		),
		loc(`~ \.z$`),
		loc(`~ /CASE`),
	}
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{s}})
	tests := []struct {
		path string
		want *config.Location
		desc string
	}{
		{"/", exactRoot, "= wins over prefix of the same path"},
		{"/x", prefixRoot, "longest prefix"},
		{"/exact", s.Locations[2], "exact match"},
		{"/exact/more", s.Locations[3], "prefix with the same path as an exact location"},
		{"/pkg.Svc/Method", s.Locations[7], "regex beats the longest prefix"},
		{"/nest/a.x", s.Locations[8].Locations[0], "nested regex before outer regex"},
		{"/nest/deeper/a", s.Locations[8].Locations[1], "nested longest prefix"},
		{"/nest/deeper/a.x", s.Locations[8].Locations[0], "nested regex beats nested prefix"},
		{"/nest/stop/a.x", s.Locations[10], "nested ^~ skips the regexes nested beside it, not the outer ones"},
		{"/nest/stop/a.z", s.Locations[12], "nested ^~ does not stop outer regexes"},
		{"/nest/exact", s.Locations[8].Locations[3], "nested exact"},
		{"/nest/other", s.Locations[8], "nested search falls back to the parent prefix"},
		{"/noregex/a.x", s.Locations[9], "^~ skips regexes"},
		{"/noregex/a.y", s.Locations[9].Locations[0], "regexes nested in ^~ are checked"},
		{"/a.x", s.Locations[10], "regex in order of appearance"},
		{"/regex/inner", s.Locations[11].Locations[0], "nested regex inside a regex location"},
		{"/regex/outer", s.Locations[11], "regex location without nested match"},
		{"/case", prefixRoot, "~ is case-sensitive"},
		{"/@named", prefixRoot, "named locations never match"},
		{"//nest///deeper/./a", s.Locations[8].Locations[1], "slashes merged, dots resolved"},
		{"/../x", nil, "above the root is invalid"},
		{"x", nil, "not starting with /"},
	}
	for _, tc := range tests {
		got := tb.Location(s, tc.path)
		var gotCfg *config.Location
		if got != nil {
			gotCfg = got.Config
		}
		if gotCfg != tc.want {
			g, w := "<nil>", "<nil>"
			if gotCfg != nil {
				g = gotCfg.Path
			}
			if tc.want != nil {
				w = tc.want.Path
			}
			t.Errorf("%s: %s -> %q, want %q", tc.desc, tc.path, g, w)
		}
	}
}

func TestLocationNone(t *testing.T) {
	find := locTable(t, loc("/api/"), loc("= /x"))
	for _, p := range []string{"/", "/ap", "/x/", "/API/"} {
		if got := find(p); got != "-" {
			t.Errorf("%s -> %q, want no location", p, got)
		}
	}
	if got := find("/api/x"); got != "/api/" {
		t.Errorf("/api/x -> %q", got)
	}
}

func TestRadixSplits(t *testing.T) {
	// Insertion orders that force node splits must give the same answers.
	paths := []string{"/abc", "/ab", "/abd", "/a", "/b", "/abcdef", "/abx/y"}
	for rot := range paths {
		var locs []*config.Location
		for i := range paths {
			locs = append(locs, loc(paths[(i+rot)%len(paths)]))
		}
		find := locTable(t, locs...)
		tests := map[string]string{
			"/abcde": "/abc", "/abcdefg": "/abcdef", "/abd": "/abd", "/ab": "/ab", "/abz": "/ab",
			"/a": "/a", "/b/c": "/b", "/abx/y/z": "/abx/y", "/abx/": "/ab", "/c": "-",
		}
		for p, want := range tests {
			if got := find(p); got != want {
				t.Errorf("rotation %d: %s -> %q, want %q", rot, p, got, want)
			}
		}
	}
}

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/pkg.Service/Method", "/pkg.Service/Method", true},
		{"/a/b?x=1", "/a/b", true},
		{"/a//b///c", "/a/b/c", true},
		{"/a/./b", "/a/b", true},
		{"/a/.", "/a/", true},
		{"/a/b/..", "/a/", true},
		{"/a/b/../c", "/a/c", true},
		{"/a/b/../../c", "/c", true},
		{"/a/..", "/", true},
		{"/a/.b/..c", "/a/.b/..c", true},
		{"/a%20b", "/a b", true},
		{"/a%2Fb", "/a/b", true},
		{"/a%2F%2E%2E%2Fb", "/b", true},
		{"/%2e%2e/x", "", false},
		{"/a%3Fb?c", "/a?b", true},
		{"/a%25b", "/a%b", true},
		{"/a%2", "", false},
		{"/a%zz", "", false},
		{"/a%00", "", false},
		{"/..", "", false},
		{"/a/../..", "", false},
		{"", "", false},
		{"*", "", false},
		{"?x", "", false},
	}
	for _, tc := range tests {
		got, ok := NormalizePath(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHideAndSetHeaders(t *testing.T) {
	l := loc("/")
	l.Settings.GRPC.HideHeaders = []string{"x-secret"}
	l.Settings.GRPC.PassHeaders = []string{"server", "x-accel-buffering"}
	l.Settings.GRPC.SetHeaders = []config.Header{{Name: "X-Real-IP", Value: tpl("$remote_addr")}, {Name: "x-drop"}}
	s := srv("127.0.0.1:80")
	s.Locations = []*config.Location{l}
	tb := mustNew(t, &config.HTTP{Servers: []*config.Server{s}})
	got := tb.Location(s, "/")
	want := map[string]bool{"date": true, "x-accel-expires": true, "x-accel-redirect": true,
		"x-accel-limit-rate": true, "x-accel-charset": true, "x-secret": true}
	if len(got.HideResponse) != len(want) {
		t.Errorf("HideResponse = %v, want %v", got.HideResponse, want)
	}
	for k := range want {
		if !got.HideResponse[k] {
			t.Errorf("HideResponse lacks %q", k)
		}
	}
	if len(got.SetHeaders) != 2 || got.SetHeaders[0].Name != "x-real-ip" || got.SetHeaders[1].Name != "x-drop" {
		t.Errorf("SetHeaders = %+v", got.SetHeaders)
	}
}

// FuzzNormalizePath checks the shape of every normalised path: rooted, no
// empty, "." or ".." segments, and stable when normalised again.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a//b", "/a/./b/../c", "/%2e%2e", "/a%2F..%2Fb", "/x?y", "/a/b/.", "/%25"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := NormalizePath(in)
		if !ok {
			return
		}
		if out == "" || out[0] != '/' {
			t.Fatalf("%q -> %q not rooted", in, out)
		}
		segs := strings.Split(out[1:], "/")
		for i, s := range segs {
			if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
				t.Fatalf("%q -> %q has segment %q", in, out, s)
			}
		}
		if !strings.ContainsAny(out, "%?") {
			if again, ok := NormalizePath(out); !ok || again != out {
				t.Fatalf("%q -> %q -> %q, %v", in, out, again, ok)
			}
		}
	})
}
