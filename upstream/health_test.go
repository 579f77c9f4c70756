package upstream

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/h2"
)

// fakeClock is a settable clock for a group's passive health.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// healthGroup builds a group of servers 10.0.0.1:1, 10.0.0.2:1, ... named
// a, b, ... with the given weights, all with maxFails and failTimeout, on
// a fake clock.
func healthGroup(t *testing.T, maxFails int, failTimeout time.Duration, weights ...int) (*Group, *fakeClock) {
	t.Helper()
	var servers []config.UpstreamServer
	for i, w := range weights {
		servers = append(servers, config.UpstreamServer{
			Address: "10.0.0." + string(rune('1'+i)) + ":1", Weight: w, MaxFails: maxFails, FailTimeout: failTimeout,
		})
	}
	g := group(t, servers...)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	g.clock = clk.now
	return g, clk
}

func name(p *Peer) string { return string(rune('a' + p.Addr[7] - '1')) }

// picks takes n streams at the clock's time, each ended at once with the
// given outcome for the peers in fail (others succeed), and returns the
// peers' names in order ("-" for ErrNoPeer).
func picks(t *testing.T, g *Group, clk *fakeClock, n int, fail string) string {
	t.Helper()
	var b strings.Builder
	for range n {
		p, err := g.Pick(&StreamInfo{Start: clk.now()})
		if errors.Is(err, ErrNoPeer) {
			b.WriteByte('-')
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(name(p))
		p.Done(Outcome{Failed: strings.Contains(fail, name(p))})
	}
	return b.String()
}

func TestPassiveHealth(t *testing.T) {
	const ft = 10 * time.Second
	type step struct {
		advance time.Duration
		n       int
		fail    string // peers whose streams fail in this step
		want    string
	}
	for _, tc := range []struct {
		name     string
		maxFails int
		weights  []int
		steps    []step
	}{
		{"max_fails=1 marks down at once", 1, []int{1, 1}, []step{
			{0, 1, "a", "a"},
			{0, 6, "", "bbbbbb"},
		}},
		{"max_fails=2 within fail_timeout", 2, []int{1, 1}, []step{
			{0, 2, "a", "ab"},
			{5 * time.Second, 3, "a", "abb"}, // second failure in the window: down
			{0, 4, "", "bbbb"},
		}},
		{"failures further apart than fail_timeout do not add up", 2, []int{1, 1}, []step{
			{0, 1, "a", "a"},
			{11 * time.Second, 2, "a", "ba"},
			{11 * time.Second, 2, "a", "ba"},
			{0, 4, "", "baba"},
		}},
		{"successes inside the window do not forgive", 2, []int{1, 1}, []step{
			{0, 1, "a", "a"},
			{time.Second, 2, "", "ba"},
			{time.Second, 2, "a", "ba"}, // second failure: down
			{0, 4, "", "bbbb"},
		}},
		{"a success after the window resets", 2, []int{1, 1}, []step{
			{0, 1, "a", "a"},
			{11 * time.Second, 2, "", "ba"}, // a picked after the window, succeeds: fails = 0
			{time.Second, 2, "a", "ba"},     // counts from 1 again
			{0, 4, "", "baba"},
		}},
		{"one probe after fail_timeout; failed probe keeps it out", 1, []int{1, 1}, []step{
			{0, 1, "a", "a"},
			{9 * time.Second, 3, "", "bbb"},
			{time.Second, 3, "a", "abb"}, // fail_timeout over: a is probed once, fails
			{9 * time.Second, 3, "", "bbb"},
			{time.Second, 1, "", "a"}, // second probe succeeds: back in the round
			{0, 4, "", "abab"},
		}},
		{"max_fails=0 never marks down", 0, []int{1, 1}, []step{
			{0, 10, "a", "ababababab"},
		}},
		{"single peer is never marked down", 1, []int{1}, []step{
			{0, 5, "a", "aaaaa"},
		}},
		{"all unavailable: no live upstreams until a probe", 1, []int{1, 1}, []step{
			{0, 2, "ab", "ab"},
			{time.Second, 2, "", "--"},
			{10 * time.Second, 3, "", "aba"}, // a's probe succeeds, then b's
			{0, 4, "", "baba"},
		}},
		{"weights stay exact among live peers", 1, []int{5, 1, 1, 2}, []step{
			{0, 2, "d", "ad"},     // d fails at its first pick
			{0, 7, "", "aabacaa"}, // 5:1:1 over a, b, c
			{0, 14, "", "aabacaaaabacaa"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, clk := healthGroup(t, tc.maxFails, ft, tc.weights...)
			for i, s := range tc.steps {
				clk.advance(s.advance)
				if got := picks(t, g, clk, s.n, s.fail); got != s.want {
					t.Fatalf("step %d: picks %s, want %s", i, got, s.want)
				}
			}
		})
	}
}

// TestProbeWhileInFlight: while the probe stream is still running, the
// peer takes no other stream; a success of a stream picked before the
// failure does not bring it back.
func TestProbeWhileInFlight(t *testing.T) {
	g, clk := healthGroup(t, 1, time.Second, 1, 1)
	old, _ := g.Pick(&StreamInfo{Start: clk.now()})   // a, stays open
	if got := picks(t, g, clk, 2, "a"); got != "ba" { // a fails: down
		t.Fatalf("picks %s, want ba", got)
	}
	clk.advance(500 * time.Millisecond)
	old.Done(Outcome{Duration: 500 * time.Millisecond})
	if got := picks(t, g, clk, 2, ""); got != "bb" {
		t.Fatalf("picks %s, want bb", got)
	}
	clk.advance(600 * time.Millisecond)
	probe, _ := g.Pick(&StreamInfo{Start: clk.now()})
	if name(probe) != "a" {
		t.Fatalf("probe went to %s", name(probe))
	}
	if got := picks(t, g, clk, 3, ""); got != "bbb" {
		t.Fatalf("picks while probing %s, want bbb", got)
	}
	clk.advance(100 * time.Millisecond)
	probe.Done(Outcome{Duration: 100 * time.Millisecond})
	if got := picks(t, g, clk, 4, ""); got != "abab" {
		t.Fatalf("picks after the probe %s, want abab", got)
	}
	if a := g.Peers()[0]; a.Unavailable() || a.Fails() != 0 || a.Failures() != 1 {
		t.Fatalf("a: unavailable %v, fails %d, failures %d", a.Unavailable(), a.Fails(), a.Failures())
	}
}

func TestPickNextSkipsTried(t *testing.T) {
	g, clk := healthGroup(t, 1, time.Second, 1, 1, 1)
	a, _ := g.Pick(&StreamInfo{Start: clk.now()})
	tried := []*Peer{a}
	for range 6 {
		p, err := g.PickNext(&StreamInfo{Start: clk.now()}, tried)
		if err != nil {
			t.Fatal(err)
		}
		if p == a {
			t.Fatal("PickNext returned a tried peer")
		}
		p.Done(Outcome{})
	}
	b, c := g.Peers()[1], g.Peers()[2]
	if _, err := g.PickNext(&StreamInfo{Start: clk.now()}, []*Peer{a, b, c}); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("all tried: %v", err)
	}
	a.Done(Outcome{Failed: true}) // a down
	if p, err := g.PickNext(&StreamInfo{Start: clk.now()}, []*Peer{b}); err != nil || p != c {
		t.Fatalf("got %v, %v; want c", p, err)
	}
}

// TestPickDoesNotAllocate: the per-stream path allocates nothing, healthy
// or with a peer unavailable.
func TestPickDoesNotAllocate(t *testing.T) {
	g, clk := healthGroup(t, 1, time.Hour, 2, 1, 1)
	info := &StreamInfo{Start: clk.now()}
	run := func() {
		p, _ := g.Pick(info)
		p.Done(Outcome{GRPCStatus: 0})
	}
	if n := testing.AllocsPerRun(1000, run); n != 0 {
		t.Fatalf("healthy: %v allocations per pick", n)
	}
	p, _ := g.Pick(info)
	p.Done(Outcome{Failed: true})
	if n := testing.AllocsPerRun(1000, run); n != 0 {
		t.Fatalf("one peer unavailable: %v allocations per pick", n)
	}
}

// BenchmarkPick is the per-stream cost of the balancer: Pick and Done of a
// successful stream, from all Ps at once.
func BenchmarkPick(b *testing.B) {
	u := &config.Upstream{Name: "up", Servers: []config.UpstreamServer{
		{Address: "10.0.0.1:1", Weight: 5, MaxFails: 1, FailTimeout: 10 * time.Second},
		{Address: "10.0.0.2:1", Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second},
		{Address: "10.0.0.3:1", Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second},
	}}
	g, err := NewGroup(u, NewSet(nil, h2.DefaultLimits()), GroupOptions{})
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
			p.Done(Outcome{})
		}
	})
}
