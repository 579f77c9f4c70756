package parser

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestProcessDirectives checks user and worker_shutdown_timeout: read into
// the configuration (user only when running as root, as nginx), with
// nginx's duplicate and value checks.
func TestProcessDirectives(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(conf, []byte("user nobody root;\nworker_shutdown_timeout 5s;\nevents {}\n"), 0o644)
	cfg, _, err := Load(conf, Options{Prefix: dir + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WorkerShutdownTimeout != 5*time.Second {
		t.Errorf("worker_shutdown_timeout %v", cfg.WorkerShutdownTimeout)
	}
	if runningAsRoot() && (cfg.User != "nobody" || cfg.Group != "root") {
		t.Errorf("user %q group %q", cfg.User, cfg.Group)
	}
	for text, want := range map[string]string{
		"worker_shutdown_timeout x;events{}\n":                             `[emerg] "worker_shutdown_timeout" directive invalid value in ` + conf + ":1",
		"worker_shutdown_timeout 1s;worker_shutdown_timeout 2s;events{}\n": `[emerg] "worker_shutdown_timeout" directive is duplicate in ` + conf + ":1",
	} {
		os.WriteFile(conf, []byte(text), 0o644)
		if _, _, err := Load(conf, Options{Prefix: dir + "/"}); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", text, err, want)
		}
	}
}
