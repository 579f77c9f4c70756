//go:build nginxonly

package e2e

import "testing"

// startGproxy is unavailable in an nginxonly build, which exists to run the
// suite against nginx on a tree whose engine does not build.
func startGproxy(t *testing.T, _ string) *proxyInstance {
	t.Skip("built with -tags nginxonly: run with -e2e.proxy=nginx")
	return nil
}
