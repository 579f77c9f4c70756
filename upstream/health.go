package upstream

import (
	"slices"
	"sync/atomic"
	"time"
)

// Passive health, as nginx's round robin keeps it for the server
// parameters max_fails= and fail_timeout= (defaults 1 and 10s):
//
//   - An unsuccessful attempt (Outcome.Failed) counts against the peer.
//     max_fails of them within fail_timeout make the peer unavailable for
//     fail_timeout; max_fails=0 disables the counting.
//   - When fail_timeout has passed, one stream is let through as a probe
//     and the peer stays out of the round meanwhile (nginx moves the
//     peer's "checked" time to now). If the probe succeeds the peer is
//     back; if it fails the peer is unavailable for another fail_timeout.
//   - A success resets the count only when the stream was picked at least
//     fail_timeout after the last failure (nginx's "accessed < checked"):
//     successes in between do not forgive failures within the window.
//   - A failure more than fail_timeout after the previous one starts a new
//     count, as the documentation states the window (nginx's code keeps
//     counting until a success after the window).
//   - A group of a single peer ignores all of this: nginx never marks its
//     only server unavailable.
//
// Not modelled: nginx also lowers a failing peer's effective weight by
// weight/max_fails per failure and lets it climb back one step per pick;
// gproxy's round over the available peers keeps the configured weights.

// health is a peer's passive health state. fails and until are written
// under Group.mu and read without it; lastFail is under Group.mu.
type health struct {
	fails    atomic.Int32
	until    atomic.Int64 // unix ns until which the peer takes no stream; 0 = available
	lastFail int64        // unix ns of the last counted failure
}

// Unavailable reports whether passive health has taken the peer out of the
// round (after max_fails failures, or while its probe is in flight).
func (p *Peer) Unavailable() bool { return p.until.Load() != 0 }

// Fails returns the peer's current count of failures in the window.
func (p *Peer) Fails() int { return int(p.fails.Load()) }

func (g *Group) now() time.Time {
	if g.clock != nil {
		return g.clock()
	}
	return time.Now()
}

// counts reports whether failures of p are counted at all.
func (g *Group) counts(p *Peer) bool { return !g.single && p.MaxFails > 0 }

// failed records an unsuccessful attempt on p.
func (g *Group) failed(p *Peer) {
	if !g.counts(p) {
		return
	}
	now := g.now().UnixNano()
	ft := int64(p.FailTimeout)
	g.mu.Lock()
	defer g.mu.Unlock()
	n := p.fails.Load()
	if n > 0 && int(n) < p.MaxFails && now-p.lastFail > ft {
		n = 0 // the window of the earlier failures has passed
	}
	n++
	p.fails.Store(n)
	p.lastFail = now
	if int(n) >= p.MaxFails {
		p.until.Store(now + ft)
		g.picker.Store(newRRPicker(g.Peers))
	}
}

// succeeded records a successful stream on p picked age ago, when p has
// failures on record.
func (g *Group) succeeded(p *Peer, age time.Duration) {
	if !g.counts(p) {
		return
	}
	picked := g.now().Add(-age).UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	if p.fails.Load() == 0 || picked < p.lastFail+int64(p.FailTimeout) {
		return
	}
	p.fails.Store(0)
	if p.until.Load() != 0 {
		p.until.Store(0)
		g.picker.Store(newRRPicker(g.Peers))
	}
}

// probe hands out the first unavailable peer whose fail_timeout has ended
// (and that is not in tried) as the probe, keeping it out of the round for
// another fail_timeout meanwhile. nil when there is none.
func (g *Group) probe(now time.Time, tried []*Peer) *Peer {
	t := now.UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.Peers {
		if until := p.until.Load(); p.Down || until == 0 || until > t || slices.Contains(tried, p) {
			continue
		}
		p.until.Store(t + int64(p.FailTimeout))
		g.picker.Store(newRRPicker(g.Peers))
		return p
	}
	return nil
}
