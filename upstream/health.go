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
func (g *Group) counts(p *Peer) bool { return p.MaxFails > 0 && !g.Single() }

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
		// Only the change from available rebuilds the pickers: the
		// streams still in flight on a dead peer fail in a burst, and
		// each only moves its time (recheck notices a later one).
		if p.until.Swap(now+ft) == 0 {
			g.rebuild()
		}
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
		g.rebuild()
	}
}

// recheck runs when a peer is due back (the snapshot's recheck time has
// come): ejections that have ended are lifted, and the first unavailable
// peer whose fail_timeout has ended (and that is not in tried, and has a
// free slot) is handed out as the probe, kept out of the round for
// another fail_timeout meanwhile. Backup peers are probed only when no
// primary peer is up. It returns the probe, with its slot acquired, or nil.
func (g *Group) recheck(now time.Time, tried []*Peer) *Peer {
	t := now.UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := false
	primaryUp := false
	for _, p := range g.peers {
		if e := p.ejected.Load(); e != 0 && e <= t {
			p.ejected.Store(0)
			changed = true
		}
		primaryUp = primaryUp || (!p.Backup && p.usable())
	}
	var probe *Peer
	for _, p := range g.peers {
		if until := p.until.Load(); p.Down || until == 0 || until > t || (p.Backup && primaryUp) ||
			p.removed.Load() || p.unhealthy.Load() || p.ejected.Load() != 0 || slices.Contains(tried, p) || !p.acquire() {
			continue
		}
		p.until.Store(t + int64(p.FailTimeout))
		probe = p
		changed = true
		break
	}
	if changed || g.nextDue() != g.snap.Load().recheck {
		g.rebuild()
	}
	return probe
}

// nextDue is what rebuild would set as the snapshot's recheck time; g.mu
// is held.
func (g *Group) nextDue() int64 {
	var due int64
	for _, p := range g.peers {
		if t := p.dueBack(); !p.Down && t != 0 && (due == 0 || t < due) {
			due = t
		}
	}
	return due
}
