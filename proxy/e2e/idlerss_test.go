//go:build !nginxonly

package e2e

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/examples/h2attack"
)

var (
	idleRSSFlag   = flag.String("e2e.idlerss", "", "comma-separated proxies TestIdleRSS measures, side by side: gproxy-process, nginx, haproxy (empty: skip)")
	idleRSSConns  = flag.Int("e2e.idlerss.n", 2000, "idle connections TestIdleRSS opens per proxy")
	idleRSSSettle = flag.Duration("e2e.idlerss.settle", 5*time.Second, "how long TestIdleRSS lets the connections sit idle before reading RSS")
)

// TestIdleRSS is issue 15's measure of what an idle client connection
// costs: for each proxy of -e2e.idlerss, run as its own process in front
// of one backend, it opens -e2e.idlerss.n connections that each make one
// gRPC call and then stay silent, lets them sit idle for
// -e2e.idlerss.settle, and reads the growth of the proxy's VmRSS in
// /proc/PID/status: memory as the kernel charges it, including whatever a
// Go runtime has not yet returned, with no GC forced from outside. Each
// proxy prints one IDLE-ROW line (`make idle-rss` runs gproxy, nginx and
// HAProxy in one go).
func TestIdleRSS(t *testing.T) {
	if *idleRSSFlag == "" {
		t.Skip("set -e2e.idlerss=gproxy-process,nginx,haproxy (make idle-rss)")
	}
	n := *idleRSSConns
	old := workerConnections
	workerConnections = max(workerConnections, n+1000)
	defer func() { workerConnections = old }()
	for _, kind := range strings.Split(*idleRSSFlag, ",") {
		t.Run(kind, func(t *testing.T) {
			be := startBackend(t, "b1")
			addr, p := proxySite(t, kind, be)
			rss := func() uint64 { m, _ := p.mem(); return m }
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// A few calls first, so that code and the upstream connection
			// (where the proxy keeps one) are not counted as idle cost.
			closeWarm, err := h2attack.IdleAfterCall(ctx, addr, 8)
			if err != nil {
				t.Fatalf("warm-up: %v", err)
			}
			closeWarm()
			time.Sleep(time.Second)
			before := rss()
			closeAll, err := h2attack.IdleAfterCall(ctx, addr, n)
			if err != nil {
				t.Fatal(err)
			}
			defer closeAll()
			time.Sleep(*idleRSSSettle)
			after := rss()
			per := (float64(after) - float64(before)) / float64(n) / 1024
			t.Logf("IDLE-ROW | %s | %d | %.1f KiB | %.1f MiB before, %.1f MiB after |",
				p.kind, n, per, float64(before)/(1<<20), float64(after)/(1<<20))
		})
	}
}

// proxySite starts the proxy kind (gproxy in-process, gproxy-process,
// nginx or haproxy) in front of be, with one server that grpc_passes
// everything, and returns its listen address.
func proxySite(t *testing.T, kind string, be *backend) (string, *proxyInstance) {
	t.Helper()
	addr := freeAddr(t)
	body := upstreamBlock("backends", []*backend{be}) + `
server {
    listen ` + addr + ` http2;
    client_max_body_size 0;
    location / {
        grpc_pass grpc://backends;
    }
}
`
	switch kind {
	case "gproxy":
		return addr, startGproxy(t, body)
	case "gproxy-process":
		return addr, startGproxyProcess(t, body)
	case "nginx":
		return addr, startNginx(t, body)
	case "haproxy":
		return addr, startHAProxy(t, addr, []string{be.addr}, haproxyMaxconn())
	}
	t.Fatalf("unknown proxy %q: want gproxy, gproxy-process, nginx or haproxy", kind)
	return "", nil
}
