package upstream

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/nettest"
)

// TestLeastTimePrefersFaster: after a few measured streams, least_time
// sends nearly every stream to the faster peer, and moves away from a peer
// that gets slower.
func TestLeastTimePrefersFaster(t *testing.T) {
	for _, mode := range []string{"header", "last_byte"} {
		t.Run(mode, func(t *testing.T) {
			g := methodGroup(t, config.Balance{Method: "least_time", LeastTime: mode}, 2)
			lat := map[string]time.Duration{"a": 20 * time.Millisecond, "b": 2 * time.Millisecond}
			run := func(n int) map[string]int {
				got := map[string]int{}
				for range n {
					p, err := g.Pick(&StreamInfo{})
					if err != nil {
						t.Fatal(err)
					}
					got[name(p)]++
					d := lat[name(p)]
					// header: the header comes at d, the last byte
					// much later for every peer alike.
					o := Outcome{GRPCStatus: 0, Duration: d, HeaderTime: d}
					if mode == "header" {
						o.Duration = time.Second
					}
					p.Done(o)
				}
				return got
			}
			run(10) // both measured
			if got := run(100); got["b"] < 95 {
				t.Fatalf("picks %v, want nearly all on the faster b", got)
			}
			lat["b"] = 200 * time.Millisecond
			run(20)
			if got := run(100); got["a"] < 90 {
				t.Fatalf("after b slowed down: picks %v, want a", got)
			}
		})
	}
}

// TestLeastTimeActiveAndInflight: with equal averages, active streams
// spread the load (avg*(active+1)); with inflight, old running streams
// make a peer look slow.
func TestLeastTimeActiveAndInflight(t *testing.T) {
	g := methodGroup(t, config.Balance{Method: "least_time", LeastTime: "last_byte", Inflight: true}, 2)
	for range 4 {
		p, _ := g.Pick(&StreamInfo{})
		p.Done(Outcome{Duration: time.Millisecond})
	}
	// A stream held on each, then the one on a grows old.
	pa, _ := g.Pick(&StreamInfo{})
	pb, _ := g.Pick(&StreamInfo{})
	if name(pa) == name(pb) {
		t.Fatalf("two streams on %s with equal averages", name(pa))
	}
	pb.Done(Outcome{Duration: time.Millisecond})
	time.Sleep(50 * time.Millisecond)
	if got := seq(t, g, &StreamInfo{}, 1); got != name(pb) {
		t.Errorf("picked %s, want %s: %s holds a 50ms stream", got, name(pb), name(pa))
	}
	pa.Done(Outcome{Duration: 50 * time.Millisecond})
	if n := pa.lat.startSum.Load(); n != 0 {
		t.Errorf("start sum %d after the peer went idle", n)
	}
}

func outlierGroup(t *testing.T, n int, od *config.OutlierDetection) (*Group, *fakeClock) {
	t.Helper()
	var servers []config.UpstreamServer
	for i := range n {
		servers = append(servers, config.UpstreamServer{Address: "10.0.0." + string(rune('1'+i)) + ":1", Weight: 1})
	}
	u := &config.Upstream{Name: "up", Servers: servers, Balance: config.Balance{Method: "round_robin"}, Outlier: od}
	g, err := NewGroup(u, newTestSet(), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	g.clock = clk.now
	return g, clk
}

// statuses takes n streams at the clock's time; the peers in bad end in
// status, the others in OK. It returns the picked peers' names.
func statuses(t *testing.T, g *Group, clk *fakeClock, n int, bad string, status int) string {
	t.Helper()
	var b strings.Builder
	for range n {
		p, err := g.Pick(&StreamInfo{Start: clk.now()})
		if err != nil {
			b.WriteByte('-')
			continue
		}
		b.WriteString(name(p))
		st := 0
		if strings.Contains(bad, name(p)) {
			st = status
		}
		p.Done(Outcome{GRPCStatus: st})
	}
	return b.String()
}

// TestOutlierEjection: consecutive UNAVAILABLE (or INTERNAL) eject a peer
// for base_ejection_time; it comes back after it; a second ejection lasts
// twice as long; other statuses never eject; an OK in between resets the
// count; max_ejection_percent and the last usable peer are respected.
func TestOutlierEjection(t *testing.T) {
	od := &config.OutlierDetection{Consecutive: 3, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second,
		MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 50}
	g, clk := outlierGroup(t, 3, od)

	// NOT_FOUND is the service's answer, not the server's failure.
	if got := statuses(t, g, clk, 12, "b", 5); got != "abcabcabcabc" {
		t.Fatalf("NOT_FOUND: %s", got)
	}
	// b fails 3 times in a row: out.
	statuses(t, g, clk, 9, "b", grpcUnavailable)
	if !g.Peers()[1].Ejected() {
		t.Fatal("b not ejected after 3 UNAVAILABLE")
	}
	if got := statuses(t, g, clk, 6, "", 0); strings.Contains(got, "b") {
		t.Fatalf("ejected b picked: %s", got)
	}
	// Back after 30s.
	clk.advance(30 * time.Second)
	if got := statuses(t, g, clk, 6, "", 0); strings.Count(got, "b") != 2 {
		t.Fatalf("after base_ejection_time: %s", got)
	}
	// Ejected again 5s later: 2 x 30s now.
	clk.advance(5 * time.Second)
	statuses(t, g, clk, 9, "b", grpcInternal)
	if !g.Peers()[1].Ejected() {
		t.Fatal("b not ejected after 3 INTERNAL")
	}
	clk.advance(31 * time.Second)
	if got := statuses(t, g, clk, 6, "", 0); strings.Contains(got, "b") {
		t.Fatalf("second ejection shorter than 60s: %s", got)
	}
	clk.advance(30 * time.Second)
	if got := statuses(t, g, clk, 6, "", 0); strings.Count(got, "b") != 2 {
		t.Fatalf("after 60s: %s", got)
	}

	// An OK between errors resets the count.
	g2, _ := outlierGroup(t, 2, od)
	p := g2.Peers()[0]
	end := func(st int) { p.active.Add(1); p.Done(Outcome{GRPCStatus: st}) }
	for range 10 {
		end(grpcUnavailable)
		end(grpcUnavailable)
		end(0)
	}
	if p.Ejected() {
		t.Error("ejected though an OK came between every two errors")
	}
	end(grpcUnavailable)
	end(grpcUnavailable)
	end(grpcUnavailable)
	if !p.Ejected() {
		t.Error("not ejected after three errors in a row")
	}

	// Two peers failing: 50% of 3 lets one out, and the last usable peer
	// is never ejected.
	g3, clk3 := outlierGroup(t, 3, od)
	statuses(t, g3, clk3, 30, "ab", grpcUnavailable)
	ejected := ""
	for _, p := range g3.Peers() {
		if p.Ejected() {
			ejected += name(p)
		}
	}
	if len(ejected) != 1 {
		t.Errorf("ejected %q, want one peer (max_ejection_percent=50 of 3)", ejected)
	}
	g4, clk4 := outlierGroup(t, 1, od)
	statuses(t, g4, clk4, 10, "a", grpcUnavailable)
	if g4.Peers()[0].Ejected() {
		t.Error("the only peer was ejected")
	}
}

// TestHealthCheckLogAndDNSPeers: a dead server's failed check is logged in
// NGINX Plus's shape; with a mandatory check, peers DNS adds start in the
// "checking" state.
func TestHealthCheckLogAndDNSPeers(t *testing.T) {
	dead := nettest.Addr(t)
	core, logs := observer.New(zap.InfoLevel)
	u := &config.Upstream{Name: "u", Servers: []config.UpstreamServer{{Address: dead, Weight: 1, MaxFails: 1}},
		Balance: config.Balance{Method: "round_robin"}}
	hc := HealthCheck{HealthCheck: config.HealthCheck{Interval: time.Hour, Fails: 1, Passes: 1, GRPCStatus: -1, Mandatory: true},
		ConnectTimeout: time.Second, ReadTimeout: time.Second}
	g, err := NewGroup(u, newTestSet(), GroupOptions{HealthChecks: []HealthCheck{hc}, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	if g.Peers()[0].Healthy() {
		t.Fatal("mandatory: healthy before any check")
	}
	g.Start()
	defer g.Stop()
	deadline := time.Now().Add(2 * time.Second)
	for logs.Len() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Level.String()+" "+e.Message)
	}
	where := `, health check "" of peer ` + dead + ` in upstream "u"`
	want := []string{
		"error connect() failed (111: Connection refused) while connecting to upstream" + where,
		"warn peer is unhealthy while connecting to upstream" + where,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A peer DNS adds starts "checking" too: never picked before a pass.
	sv := &u.Servers[0]
	g.resolved(sv, []string{dead, "127.0.0.1:1"})
	for _, p := range g.Peers() {
		if p.Healthy() {
			t.Errorf("%s healthy before any check", p.Addr)
		}
	}
	if _, err := g.Pick(&StreamInfo{}); err != ErrNoPeer {
		t.Errorf("Pick = %v, want no live upstreams", err)
	}
}

// BenchmarkPickDynamic is the per-stream cost (Pick and Done) of
// least_time and of outlier detection beside round robin, three peers,
// from all Ps at once.
func BenchmarkPickDynamic(b *testing.B) {
	od := &config.OutlierDetection{Consecutive: 5, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second,
		MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10}
	for _, bc := range []struct {
		name string
		bal  config.Balance
		od   *config.OutlierDetection
	}{
		{"round_robin", config.Balance{Method: "round_robin"}, nil},
		{"least_time_header", config.Balance{Method: "least_time", LeastTime: "header"}, nil},
		{"least_time_last_byte_inflight", config.Balance{Method: "least_time", LeastTime: "last_byte", Inflight: true}, nil},
		{"round_robin+outlier", config.Balance{Method: "round_robin"}, od},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var servers []config.UpstreamServer
			for i := range 3 {
				servers = append(servers, config.UpstreamServer{Address: "10.0.0." + string(rune('1'+i)) + ":1", Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second})
			}
			g, err := NewGroup(&config.Upstream{Name: "up", Servers: servers, Balance: bc.bal, Outlier: bc.od}, newTestSet(), GroupOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				info := &StreamInfo{Start: time.Now()}
				for pb.Next() {
					p, err := g.Pick(info)
					if err != nil {
						b.Fatal(err)
					}
					p.Done(Outcome{Duration: time.Millisecond, HeaderTime: time.Millisecond})
				}
			})
		})
	}
}
