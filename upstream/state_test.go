package upstream

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// seq picks n streams (each ended at once) and returns the peers' names.
func seq(t *testing.T, g *Group, info *StreamInfo, n int) string {
	t.Helper()
	var b strings.Builder
	for range n {
		p, err := g.Pick(info)
		if errors.Is(err, ErrNoPeer) {
			b.WriteByte('-')
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(name(p))
		p.Done(Outcome{})
	}
	return b.String()
}

// TestSetHealthy: a peer an active check found failing leaves the round
// until it passes again; peers start healthy.
func TestSetHealthy(t *testing.T) {
	g, clk := healthGroup(t, 1, time.Second, 1, 1, 1)
	info := &StreamInfo{Start: clk.now()}
	a, b := g.Peers()[0], g.Peers()[1]
	if !a.Healthy() {
		t.Fatal("a peer starts unhealthy")
	}
	g.SetHealthy(b, false)
	if got := seq(t, g, info, 4); got != "acac" {
		t.Fatalf("b unhealthy: %s, want acac", got)
	}
	g.SetHealthy(a, false)
	g.SetHealthy(g.Peers()[2], false)
	if got := seq(t, g, info, 1); got != "-" {
		t.Fatalf("all unhealthy: %s, want no live upstreams", got)
	}
	g.SetHealthy(a, true)
	g.SetHealthy(b, true)
	if got := seq(t, g, info, 4); got != "abab" {
		t.Fatalf("back: %s, want abab", got)
	}
}

// TestEject: an ejected peer is out until its time, then back by itself.
func TestEject(t *testing.T) {
	g, clk := healthGroup(t, 1, time.Second, 1, 1)
	a := g.Peers()[0]
	g.Eject(a, clk.now().Add(5*time.Second))
	if got := seq(t, g, &StreamInfo{Start: clk.now()}, 3); got != "bbb" {
		t.Fatalf("ejected: %s, want bbb", got)
	}
	clk.advance(5 * time.Second)
	if got := seq(t, g, &StreamInfo{Start: clk.now()}, 4); !strings.Contains(got, "a") || a.Ejected() {
		t.Fatalf("after the ejection: %s (ejected %v), want a back", got, a.Ejected())
	}
	g.Eject(a, clk.now().Add(time.Hour))
	g.Eject(a, time.Time{})
	if a.Ejected() {
		t.Fatal("Eject with zero time did not bring the peer back")
	}
}

// TestSetPeers: replacing a server's addresses keeps the peers that stay
// (same *Peer, same state), adds new ones, and drops the rest from the
// round while their streams in flight finish.
func TestSetPeers(t *testing.T) {
	g, clk := healthGroup(t, 1, time.Second, 1, 1)
	info := &StreamInfo{Start: clk.now()}
	a, b := g.Peers()[0], g.Peers()[1]
	inflight, _ := g.Pick(info) // a
	if inflight != a {
		t.Fatalf("first pick %s", name(inflight))
	}
	sv := a.Server
	g.SetPeers(sv, "tcp", []string{"10.0.0.3:1", "10.0.0.4:1"})
	ps := g.Peers()
	if len(ps) != 3 || ps[2] != b || slices.Contains(ps, a) {
		t.Fatalf("peers after SetPeers: %v", ps)
	}
	if got := seq(t, g, info, 6); got != "cdbcdb" {
		t.Fatalf("after SetPeers: %s, want cdbcdb", got)
	}
	inflight.Done(Outcome{}) // the stream in flight on the removed peer ends normally
	c := ps[0]
	g.SetPeers(sv, "tcp", []string{"10.0.0.3:1"})
	if ps := g.Peers(); len(ps) != 2 || ps[0] != c {
		t.Fatalf("a remaining peer was not kept: %v", ps)
	}
}

// TestBackup: backup peers take streams only while no primary peer can.
func TestBackup(t *testing.T) {
	g := group(t,
		config.UpstreamServer{Address: "10.0.0.1:1", Weight: 1, MaxFails: 1, FailTimeout: time.Hour},
		config.UpstreamServer{Address: "10.0.0.2:1", Weight: 1, MaxFails: 1, FailTimeout: time.Hour},
		config.UpstreamServer{Address: "10.0.0.3:1", Weight: 1, Backup: true},
	)
	info := &StreamInfo{}
	if got := seq(t, g, info, 6); got != "ababab" {
		t.Fatalf("primaries up: %s", got)
	}
	a, b := g.Peers()[0], g.Peers()[1]
	g.SetHealthy(a, false)
	if got := seq(t, g, info, 3); got != "bbb" {
		t.Fatalf("one primary up: %s", got)
	}
	g.SetHealthy(b, false)
	if got := seq(t, g, info, 3); got != "ccc" {
		t.Fatalf("primaries down: %s", got)
	}
	g.SetHealthy(a, true)
	if got := seq(t, g, info, 2); got != "aa" {
		t.Fatalf("a primary back: %s", got)
	}
	// A retry that has tried every primary goes to the backup.
	g.SetHealthy(b, true)
	if p, err := g.PickNext(info, []*Peer{a, b}); err != nil || name(p) != "c" {
		t.Fatalf("retry after both primaries: %v %v", p, err)
	}
}

// TestDownNeverPicked: a server marked down takes no stream, whatever the
// method.
func TestDownNeverPicked(t *testing.T) {
	g := group(t,
		config.UpstreamServer{Address: "10.0.0.1:1", Weight: 1},
		config.UpstreamServer{Address: "10.0.0.2:1", Weight: 1, Down: true},
	)
	if got := seq(t, g, &StreamInfo{}, 100); strings.Contains(got, "b") {
		t.Fatalf("down peer picked: %s", got)
	}
}

// TestMaxConnsRoundRobin: a peer at max_conns is skipped; when every peer
// is at its limit there is no live upstream.
func TestMaxConnsRoundRobin(t *testing.T) {
	g := group(t,
		config.UpstreamServer{Address: "10.0.0.1:1", Weight: 1, MaxConns: 2},
		config.UpstreamServer{Address: "10.0.0.2:1", Weight: 1, MaxConns: 1},
	)
	var held []*Peer
	var b strings.Builder
	for range 4 {
		p, err := g.Pick(&StreamInfo{})
		if err != nil {
			b.WriteByte('-')
			continue
		}
		b.WriteString(name(p))
		held = append(held, p)
	}
	if got := b.String(); got != "aba-" {
		t.Fatalf("held streams: %s, want aba-", got)
	}
	held[0].Done(Outcome{})
	if p, err := g.Pick(&StreamInfo{}); err != nil || name(p) != "a" {
		t.Fatalf("after a slot freed: %v %v", p, err)
	}
}

// TestFailureBurstRebuildsOnce: the streams in flight on a peer that dies
// fail one after another; only the first change (available to not)
// rebuilds the pickers, and the later failures still push its return out.
func TestFailureBurstRebuildsOnce(t *testing.T) {
	g, clk := healthGroup(t, 1, time.Second, 1, 1)
	a := g.Peers()[0]
	var held []*Peer
	for range 20 {
		p, _ := g.Pick(&StreamInfo{Start: clk.now()})
		if p == a {
			held = append(held, p)
		} else {
			p.Done(Outcome{})
		}
	}
	held[0].Done(Outcome{Failed: true})
	snap := g.snap.Load()
	clk.advance(500 * time.Millisecond)
	for _, p := range held[1:] {
		p.Done(Outcome{Failed: true})
	}
	if g.snap.Load() != snap {
		t.Fatal("a failure of an already unavailable peer rebuilt the pickers")
	}
	// a's fail_timeout now ends 1s after the last failure, not the first.
	clk.advance(700 * time.Millisecond)
	if got := seq(t, g, &StreamInfo{Start: clk.now()}, 3); got != "bbb" {
		t.Fatalf("1.2s after the first failure, 0.7s after the last: %s, want bbb", got)
	}
	clk.advance(400 * time.Millisecond)
	if got := seq(t, g, &StreamInfo{Start: clk.now()}, 3); !strings.Contains(got, "a") {
		t.Fatalf("after fail_timeout: %s, want a probed", got)
	}
}

// TestSetPeersReleasesPools: a name whose addresses keep changing (pods of
// a headless Service) leaves no pool or remembered health behind for the
// addresses that are gone; the pool of a removed peer drains, and an
// address that comes back gets a fresh pool.
func TestSetPeersReleasesPools(t *testing.T) {
	g, _ := healthGroup(t, 1, time.Second, 1)
	sv := g.Peers()[0].Server
	first := g.Peers()[0].Pool
	for i := range 1000 {
		addr := "10.1." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250) + ":1"
		g.SetPeers(sv, "tcp", []string{addr})
		g.set.rememberHealth(g.Name, addr, true)
	}
	g.set.mu.Lock()
	pools := len(g.set.pools)
	g.set.mu.Unlock()
	g.set.health.mu.Lock()
	remembered := len(g.set.health.ok)
	g.set.health.mu.Unlock()
	if pools != 1 || remembered != 1 {
		t.Fatalf("after 1,000 address changes: %d pools, %d remembered peers; want 1 and 1", pools, remembered)
	}
	first.mu.Lock()
	drained := first.drained
	first.mu.Unlock()
	if !drained {
		t.Fatal("the pool of the first, removed peer was not drained")
	}
	g.SetPeers(sv, "tcp", []string{"10.0.0.1:1"})
	if p := g.Peers()[0].Pool; p == first {
		t.Fatal("an address that came back reused a drained pool")
	}
}
