package upstream

import (
	"fmt"
	"math"
	"net"
	"strings"
	"testing"

	"github.com/gproxy/gproxy/parser/config"
)

// methodGroup builds a group of the given method over n servers
// 10.0.0.1:1 ... with weight 1 each.
func methodGroup(t *testing.T, bal config.Balance, n int) *Group {
	t.Helper()
	var servers []config.UpstreamServer
	for i := range n {
		servers = append(servers, config.UpstreamServer{Address: fmt.Sprintf("10.0.0.%d:1", i+1), Weight: 1, MaxFails: 1})
	}
	u := &config.Upstream{Name: "up", Servers: servers, Balance: bal}
	g, err := NewGroup(u, newTestSet(), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestLeastConnStreams: new streams go to the peers holding fewer active
// streams; a peer holding long streams gets none until it catches up;
// equal loads take weighted turns.
func TestLeastConnStreams(t *testing.T) {
	g := methodGroup(t, config.Balance{Method: "least_conn"}, 3)
	long, _ := g.Pick(&StreamInfo{}) // a long stream on a
	if name(long) != "a" {
		t.Fatalf("first pick %s", name(long))
	}
	// a holds one stream; b and c hold none: short streams go to b and c
	// only, in turns.
	if got := seq(t, g, &StreamInfo{}, 8); got != "bcbcbcbc" && got != "cbcbcbcb" {
		t.Fatalf("picks with a holding a stream: %s, want b and c in turns", got)
	}
	// Four more long streams: the loads stay within one of each other
	// (2, 2, 1), and short streams then go to the least loaded only.
	var held []*Peer
	for range 4 {
		p, _ := g.Pick(&StreamInfo{})
		held = append(held, p)
	}
	least := ""
	for _, p := range g.Peers() {
		switch p.Active() {
		case 1:
			least += name(p)
		case 2:
		default:
			t.Fatalf("after held picks %s: %s holds %d streams", names(held), name(p), p.Active())
		}
	}
	if got := seq(t, g, &StreamInfo{}, 3); got != strings.Repeat(least, 3) {
		t.Fatalf("short picks with %s least loaded: %s", least, got)
	}
	long.Done(Outcome{})
	for _, p := range held {
		p.Done(Outcome{})
	}
	if got := seq(t, g, &StreamInfo{}, 6); len(got) != 6 || strings.Count(got, "a") != 2 || strings.Count(got, "b") != 2 {
		t.Fatalf("idle again: %s, want each peer in turn", got)
	}
}

// TestLeastConnWeighted: loads are compared per weight, ties follow the
// smooth weighted round robin.
func TestLeastConnWeighted(t *testing.T) {
	u := &config.Upstream{Name: "up", Balance: config.Balance{Method: "least_conn"}, Servers: []config.UpstreamServer{
		{Address: "10.0.0.1:1", Weight: 5}, {Address: "10.0.0.2:1", Weight: 1}, {Address: "10.0.0.3:1", Weight: 1},
	}}
	g, err := NewGroup(u, newTestSet(), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := seq(t, g, &StreamInfo{}, 7); got != "aabacaa" {
		t.Fatalf("idle: %s, want the smooth order aabacaa", got)
	}
	// Held streams: a takes 5 for every 1 of b and c.
	var held []*Peer
	for range 70 {
		p, _ := g.Pick(&StreamInfo{})
		held = append(held, p)
	}
	count := map[string]int{}
	for _, p := range held {
		count[name(p)]++
	}
	if count["a"] != 50 || count["b"] != 10 || count["c"] != 10 {
		t.Fatalf("held streams per peer %v, want a 50, b 10, c 10", count)
	}
}

func names(ps []*Peer) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(name(p))
	}
	return b.String()
}

// TestHashSticks: a key always maps to the same peer; keys spread over
// the peers; a peer marked unavailable moves only its own keys.
func TestHashSticks(t *testing.T) {
	for _, consistent := range []bool{false, true} {
		t.Run(fmt.Sprint("consistent=", consistent), func(t *testing.T) {
			g := methodGroup(t, config.Balance{Method: "hash", Consistent: consistent}, 3)
			first := map[string]*Peer{}
			count := map[*Peer]int{}
			for i := range 3000 {
				key := fmt.Sprint("user-", i)
				for range 3 {
					p, err := g.Pick(&StreamInfo{Key: []byte(key)})
					if err != nil {
						t.Fatal(err)
					}
					p.Done(Outcome{})
					if q := first[key]; q != nil && q != p {
						t.Fatalf("key %s moved from %s to %s", key, q.Addr, p.Addr)
					}
					first[key] = p
				}
				count[first[key]]++
			}
			for p, n := range count {
				if n < 600 {
					t.Errorf("peer %s has %d of 3000 keys", p.Addr, n)
				}
			}
			b := g.Peers()[1]
			g.SetHealthy(b, false)
			for key, was := range first {
				p, _ := g.Pick(&StreamInfo{Key: []byte(key)})
				p.Done(Outcome{})
				if p == b || (was != b && p != was) {
					t.Fatalf("b unhealthy: key %s went from %s to %s", key, was.Addr, p.Addr)
				}
			}
		})
	}
}

// TestConsistentHashAddServer: with `consistent`, adding a fourth server
// to three moves under 35% of 10,000 keys (ideally 25%).
func TestConsistentHashAddServer(t *testing.T) {
	g3 := methodGroup(t, config.Balance{Method: "hash", Consistent: true}, 3)
	g4 := methodGroup(t, config.Balance{Method: "hash", Consistent: true}, 4)
	moved := 0
	for i := range 10000 {
		k := []byte(fmt.Sprintf("/pkg.Svc/Method?id=%d", i))
		a, _ := g3.Pick(&StreamInfo{Key: k})
		b, _ := g4.Pick(&StreamInfo{Key: k})
		a.Done(Outcome{})
		b.Done(Outcome{})
		if a.Addr != b.Addr {
			moved++
		}
	}
	if moved >= 3500 {
		t.Fatalf("%d of 10000 keys moved", moved)
	}
	t.Logf("%d of 10000 keys moved", moved)
	// Without consistent, most keys move.
	h3 := methodGroup(t, config.Balance{Method: "hash"}, 3)
	h4 := methodGroup(t, config.Balance{Method: "hash"}, 4)
	moved = 0
	for i := range 10000 {
		k := []byte(fmt.Sprintf("/pkg.Svc/Method?id=%d", i))
		a, _ := h3.Pick(&StreamInfo{Key: k})
		b, _ := h4.Pick(&StreamInfo{Key: k})
		a.Done(Outcome{})
		b.Done(Outcome{})
		if a.Addr != b.Addr {
			moved++
		}
	}
	if moved < 5000 {
		t.Fatalf("plain hash moved only %d of 10000 keys", moved)
	}
}

// TestHashEmptyKey: an empty key falls back to round robin, as nginx.
func TestHashEmptyKey(t *testing.T) {
	g := methodGroup(t, config.Balance{Method: "hash"}, 3)
	if got := seq(t, g, &StreamInfo{}, 6); got != "abcabc" {
		t.Fatalf("empty key: %s, want round robin", got)
	}
}

// TestIPHash: clients of one /24 stick to one peer; IPv6 addresses hash
// whole; clients spread over the peers.
func TestIPHash(t *testing.T) {
	g := methodGroup(t, config.Balance{Method: "ip_hash"}, 3)
	pick := func(ip string) *Peer {
		p, err := g.Pick(&StreamInfo{RemoteAddr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}})
		if err != nil {
			t.Fatal(err)
		}
		p.Done(Outcome{})
		return p
	}
	count := map[*Peer]int{}
	for i := range 300 {
		net24 := fmt.Sprintf("10.%d.%d.", i/256, i%256)
		p := pick(net24 + "1")
		for _, last := range []string{"2", "77", "254"} {
			if q := pick(net24 + last); q != p {
				t.Fatalf("%s1 went to %s, %s%s to %s", net24, p.Addr, net24, last, q.Addr)
			}
		}
		count[p]++
	}
	if len(count) != 3 {
		t.Fatalf("300 networks went to %d peers", len(count))
	}
	if pick("2001:db8::1") != pick("2001:db8::1") {
		t.Fatal("an IPv6 client moved")
	}
	// nginx's hash of 127.0.0.x: 89 -> (89*113+127)%6271 -> ... % 3.
	h := uint64(89)
	for _, b := range []byte{127, 0, 0} {
		h = (h*113 + uint64(b)) % 6271
	}
	if p := pick("127.0.0.1"); p != g.Peers()[h%3] {
		t.Fatalf("127.0.0.1 went to %s, nginx's formula says %s", p.Addr, g.Peers()[h%3].Addr)
	}
}

// TestRandom: picks follow the weights; `two` prefers the less loaded of
// its two draws.
func TestRandom(t *testing.T) {
	u := &config.Upstream{Name: "up", Balance: config.Balance{Method: "random"}, Servers: []config.UpstreamServer{
		{Address: "10.0.0.1:1", Weight: 3}, {Address: "10.0.0.2:1", Weight: 1},
	}}
	g, err := NewGroup(u, newTestSet(), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := seq(t, g, &StreamInfo{}, 8000)
	if a := strings.Count(got, "a"); math.Abs(float64(a)/8000-0.75) > 0.03 {
		t.Fatalf("weight 3 of 4 took %d of 8000", a)
	}
	g2 := methodGroup(t, config.Balance{Method: "random", Two: true, TwoMethod: "least_conn"}, 3)
	// With random two, a peer holding many streams is picked only when
	// both draws land on it, which two distinct draws never do.
	a := g2.Peers()[0]
	for range 10 {
		a.acquire()
	}
	if got := seq(t, g2, &StreamInfo{}, 300); strings.Contains(got, "a") {
		t.Fatalf("random two picked the loaded peer: %s", got)
	}
}

// TestMethodsMaxConns: no method passes max_conns, and each falls back to
// the other peers (or no live upstreams) at the limit.
func TestMethodsMaxConns(t *testing.T) {
	for _, bal := range []config.Balance{
		{Method: "round_robin"}, {Method: "least_conn"}, {Method: "ip_hash"}, {Method: "hash"},
		{Method: "hash", Consistent: true}, {Method: "random"}, {Method: "random", Two: true},
	} {
		t.Run(fmt.Sprint(bal.Method, bal.Consistent, bal.Two), func(t *testing.T) {
			u := &config.Upstream{Name: "up", Balance: bal, Servers: []config.UpstreamServer{
				{Address: "10.0.0.1:1", Weight: 1, MaxConns: 3}, {Address: "10.0.0.2:1", Weight: 2, MaxConns: 2},
			}}
			g, err := NewGroup(u, newTestSet(), GroupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var held []*Peer
			for range 8 {
				p, err := g.Pick(&StreamInfo{Key: []byte("k"), RemoteAddr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3)}})
				if err == nil {
					held = append(held, p)
				}
			}
			a, b := g.Peers()[0], g.Peers()[1]
			if len(held) != 5 || a.Active() != 3 || b.Active() != 2 {
				t.Fatalf("held %d streams (a %d, b %d), want 5 (3, 2)", len(held), a.Active(), b.Active())
			}
			for _, p := range held {
				p.Done(Outcome{})
			}
		})
	}
}

// BenchmarkPickMethods is BenchmarkPick for each balancing method: Pick
// and Done of a successful stream from all Ps at once, three servers
// weighted 5,1,1.
func BenchmarkPickMethods(b *testing.B) {
	for _, bal := range []config.Balance{
		{Method: "round_robin"}, {Method: "least_conn"}, {Method: "ip_hash"},
		{Method: "hash"}, {Method: "hash", Consistent: true},
		{Method: "random"}, {Method: "random", Two: true},
	} {
		name := bal.Method
		if bal.Consistent {
			name += "_consistent"
		}
		if bal.Two {
			name += "_two"
		}
		b.Run(name, func(b *testing.B) {
			u := &config.Upstream{Name: "up", Balance: bal, Servers: []config.UpstreamServer{
				{Address: "10.0.0.1:1", Weight: 5, MaxFails: 1},
				{Address: "10.0.0.2:1", Weight: 1, MaxFails: 1},
				{Address: "10.0.0.3:1", Weight: 1, MaxFails: 1},
			}}
			g, err := NewGroup(u, newTestSet(), GroupOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				info := &StreamInfo{Key: []byte("user-12345"), RemoteAddr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5000}}
				for pb.Next() {
					p, err := g.Pick(info)
					if err != nil {
						b.Fatal(err)
					}
					p.Done(Outcome{})
				}
			})
		})
	}
}
