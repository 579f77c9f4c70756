package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The differential test: nginx's documented behaviour is the answer, so
// every configuration of the corpus goes through `nginx -t` and `gproxy -t`
// and both must agree on the exit status, on the first [emerg] (message,
// file and line) and on the warnings. A configuration nginx 1.22 cannot
// judge (newer syntax, or deliberate differences such as rejecting
// proxy_pass) carries a NAME.expect file beside it that records what gproxy
// must say instead.

// outcome is what a `-t` run said, reduced to what the two programs must
// agree on. Paths inside testdata/ are written relative to it.
type outcome struct {
	status int
	emerg  string   // first [emerg] line's text after the level, "" if none
	warns  []string // every [warn] line's text after the level, in order
}

// diagLine matches nginx's two shapes of a diagnostic line ("nginx: [emerg]
// MSG" and "2026/11/25 08:07:58 [emerg] 123#123: MSG") and gproxy's.
var diagLine = regexp.MustCompile(`\[(emerg|alert|crit|error|warn)\] (?:\d+#\d+: )?(.*)$`)

// parseOutcome reads a -t run's stderr.
func parseOutcome(r result) outcome {
	o := outcome{status: r.code}
	prefix := testdataDir + "/"
	for _, line := range strings.Split(r.stderr, "\n") {
		m := diagLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		text := strings.ReplaceAll(m[2], prefix, "")
		switch m[1] {
		case "warn":
			o.warns = append(o.warns, text)
		default:
			if o.emerg == "" {
				o.emerg = text
			}
		}
	}
	return o
}

// ignoredWarning matches the warning gproxy adds for a directive it accepts
// and ignores; nginx has nothing to compare it with.
var ignoredWarning = regexp.MustCompile(`^"[a-z0-9_]+" directive is ignored by gproxy in `)

// withoutIgnored drops gproxy's ignored-directive warnings.
func withoutIgnored(warns []string) []string {
	var out []string
	for _, w := range warns {
		if !ignoredWarning.MatchString(w) {
			out = append(out, w)
		}
	}
	return out
}

// expectation is a NAME.expect file:
//
//	# why nginx cannot be the judge here
//	nginx: 1                      (optional: nginx -t's exit status)
//	status: 0                     (gproxy -t's exit status)
//	emerg: MSG in FILE:LINE       (optional)
//	warn: MSG in FILE:LINE        (zero or more, in order)
type expectation struct {
	nginx    int // -1 when not given
	expected outcome
}

func readExpectation(t *testing.T, name string) (expectation, bool) {
	t.Helper()
	f, err := os.Open(name)
	if os.IsNotExist(err) {
		return expectation{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := expectation{nginx: -1}
	e.expected.status = -1
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("%s:%d: want KEY: VALUE", name, n)
		}
		switch key {
		case "nginx", "status":
			v, err := strconv.Atoi(value)
			if err != nil {
				t.Fatalf("%s:%d: %v", name, n, err)
			}
			if key == "nginx" {
				e.nginx = v
			} else {
				e.expected.status = v
			}
		case "emerg":
			e.expected.emerg = value
		case "warn":
			e.expected.warns = append(e.expected.warns, value)
		default:
			t.Fatalf("%s:%d: unknown key %q", name, n, key)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if e.expected.status < 0 {
		t.Fatalf("%s: no status line", name)
	}
	return e, true
}

// nginxPath finds nginx, or "" when it is not installed.
func nginxPath() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

// corpusFiles lists testdata/*.conf.
func corpusFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testdataDir, "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("testdata holds %d configurations, want at least 40", len(files))
	}
	return files
}

// checkCorpusFile refuses a corpus file that would make `nginx -t` write
// outside its prefix: every top-level configuration names its pid file, and
// (when it has an http block) its access log, relative to the prefix.
func checkCorpusFile(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if !regexp.MustCompile(`(?m)^\s*pid\s+"?logs/`).MatchString(text) {
		t.Fatalf("%s has no `pid logs/...;`: nginx -t would create the system pid file", file)
	}
	if regexp.MustCompile(`(?m)^\s*(access_log|error_log|pid)\s+['"]?/`).MatchString(text) {
		t.Fatalf("%s names an absolute log or pid path: keep them under the prefix", file)
	}
}

func TestDifferentialNginx(t *testing.T) {
	nginx := nginxPath()
	for _, file := range corpusFiles(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".conf")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkCorpusFile(t, file)
			prefix := newPrefix(t)
			got := parseOutcome(runGproxy(t, "-p", prefix, "-c", file, "-t"))

			exp, hasExpect := readExpectation(t, strings.TrimSuffix(file, ".conf")+".expect")
			var ngx outcome
			if nginx != "" {
				ngx = parseOutcome(runProgram(t, nginx, "-p", newPrefix(t), "-c", file, "-t"))
			}
			if hasExpect {
				if nginx != "" && exp.nginx >= 0 && ngx.status != exp.nginx {
					t.Errorf("nginx -t exited %d, %s.expect says %d (nginx said %q %q)", ngx.status, name, exp.nginx, ngx.emerg, ngx.warns)
				}
				compareOutcome(t, "expected", exp.expected, got, false)
				return
			}
			if nginx == "" {
				t.Skip("nginx is not installed: the differential test needs nginx -t as its oracle")
			}
			compareOutcome(t, "nginx", ngx, got, true)
		})
	}
}

// compareOutcome reports how gproxy's outcome differs from want.
func compareOutcome(t *testing.T, source string, want, got outcome, dropIgnored bool) {
	t.Helper()
	if got.status != want.status {
		t.Errorf("exit status: gproxy %d, %s %d", got.status, source, want.status)
	}
	if got.emerg != want.emerg {
		t.Errorf("first error:\n gproxy: %q\n %s: %q", got.emerg, source, want.emerg)
	}
	warns := got.warns
	if dropIgnored {
		warns = withoutIgnored(warns)
	}
	if !slices.Equal(warns, want.warns) {
		t.Errorf("warnings:\n gproxy: %q\n %s: %q", warns, source, want.warns)
	}
}

// TestArticle checks the article's configuration: its typo fails where
// nginx says it fails, and the fixed file passes; the example shipped in
// examples/article passes too.
func TestArticle(t *testing.T) {
	prefix := newPrefix(t)
	typo := corpus("article-typo.conf")
	r := runGproxy(t, "-p", prefix, "-c", typo, "-t")
	want := "gproxy: [emerg] invalid number \"1o24\" in " + typo + ":10\n" +
		"gproxy: configuration file " + typo + " test failed\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("article-typo.conf: exit %d, stderr:\n%s\nwant exit 1, stderr:\n%s", r.code, r.stderr, want)
	}

	for _, file := range []string{corpus("article.conf"), filepath.Join(testdataDir, "..", "examples", "article", "nginx.conf")} {
		file = filepath.Clean(file)
		if _, err := os.Stat(file); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		r = runGproxy(t, "-p", prefix, "-c", file, "-t")
		want = "gproxy: the configuration file " + file + " syntax is ok\n" +
			"gproxy: configuration file " + file + " test is successful\n"
		if r.code != 0 || r.stderr != want {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 0, stderr:\n%s", file, r.code, r.stderr, want)
		}
	}
}
