//go:build cgo

package opensslrsa

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const cgoEnabled = true

// noLibcrypto, set in the environment, makes this test binary look for a
// libcrypto that does not exist (see TestWithoutLibcrypto).
const noLibcrypto = "GPROXY_TEST_NO_LIBCRYPTO"

func TestMain(m *testing.M) {
	if os.Getenv(noLibcrypto) != "" {
		libraries = []string{"libcrypto.so.gproxy-test-absent"}
	}
	os.Exit(m.Run())
}

// TestWithoutLibcrypto: where no libcrypto can be loaded, Wrap returns the
// Go key and says why, and Fallback reports it. It runs in a child
// process, since libcrypto is loaded once per process.
func TestWithoutLibcrypto(t *testing.T) {
	if os.Getenv(noLibcrypto) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWithoutLibcrypto$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), noLibcrypto+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestWithoutLibcrypto") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	k := testKey()
	s, err := Wrap(k)
	if s != any(k) || err == nil || !strings.Contains(err.Error(), "cannot load libcrypto.so.gproxy-test-absent") {
		t.Fatalf("Wrap = %T, %v; want the Go key and why", s, err)
	}
	if f := Fallback(); f == nil || f.Error() != err.Error() {
		t.Fatalf("Fallback = %v, want %v", f, err)
	}
}
