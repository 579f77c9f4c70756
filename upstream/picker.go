package upstream

import (
	"slices"
	"sync/atomic"

	"github.com/gproxy/gproxy/parser/config"
)

// A picker chooses a peer for a stream among one tier (the primary or the
// backup peers) of a group. It is built by its method's pickerBuilder from
// the peers' state at one moment and never changes afterwards, apart from
// its own atomic counters, so picking takes no lock: a state change builds
// a new one (Group.rebuild), as grpc-go's balancers do.
type picker interface {
	// pick returns a peer with one of its stream slots acquired
	// (Peer.acquire: max_conns is honoured), skipping the peers in tried;
	// nil when no peer of the tier can take the stream.
	pick(info *StreamInfo, tried []*Peer) *Peer
}

// A pickerBuilder makes the picker of a tier: all is every peer of the
// tier in configuration order, down and unavailable ones included (hash
// methods keep their mapping stable over them); up[i] tells whether all[i]
// may be picked.
type pickerBuilder func(b *config.Balance, all []*Peer, up []bool) picker

// builders maps each balancing method (config.Balance.Method) to the
// builder of its pickers.
var builders = map[string]pickerBuilder{
	"round_robin": buildRoundRobin,
	"least_conn":  buildLeastConn,
	"ip_hash":     buildIPHash,
	"hash":        buildHash,
	"random":      buildRandom,
}

// maxRehash is how many times the hash and random methods look again
// when their choice cannot take the stream, before they fall back to
// round robin (nginx: 20).
const maxRehash = 20

// takes reports whether p may take a stream now: not tried already by
// this stream and below max_conns (acquire checks again atomically).
func takes(p *Peer, tried []*Peer) bool { return !p.full() && !slices.Contains(tried, p) }

// snapshot is the balancing state of a group at one moment.
type snapshot struct {
	peers   []*Peer // every peer of the group, in configuration order
	primary picker  // over the primary (not backup) peers
	backup  picker  // over the backup peers; nil when there are none
	// recheck is the earliest time (unix nanoseconds) at which a peer
	// taken out for a while (fail_timeout, ejection) is due back; 0 when
	// none is.
	recheck int64
	// single: a group of one peer never marks it unavailable and never
	// retries (nginx's peers->single).
	single bool
	tries  int // peers not marked down (nginx's peer.tries)
}

// rebuild makes a new snapshot from the group's peers and their state and
// stores it. Every change of peer state ends here; g.mu is held.
func (g *Group) rebuild() {
	s := &snapshot{peers: g.peers}
	var prim, back []*Peer
	var primUp, backUp []bool
	for _, p := range g.peers {
		up := p.usable()
		if !p.Down {
			s.tries++
			if t := p.dueBack(); t != 0 && (s.recheck == 0 || t < s.recheck) {
				s.recheck = t
			}
		}
		if p.Backup {
			back, backUp = append(back, p), append(backUp, up)
		} else {
			prim, primUp = append(prim, p), append(primUp, up)
		}
	}
	s.single = len(g.peers) == 1
	b := &g.Config.Balance
	s.primary = g.build(b, prim, primUp)
	if len(back) > 0 {
		s.backup = g.build(b, back, backUp)
	}
	g.snap.Store(s)
}

// usable reports whether the peer may be picked as its state stands:
// not down, not removed, healthy, not ejected, not unavailable after
// max_fails failures.
func (p *Peer) usable() bool {
	return !p.Down && !p.removed.Load() && !p.unhealthy.Load() && p.ejected.Load() == 0 && p.until.Load() == 0
}

// dueBack is when the peer is next due back (end of fail_timeout or of an
// ejection), unix ns; 0 when it is not waiting for either.
func (p *Peer) dueBack() int64 {
	if p.removed.Load() {
		return 0
	}
	t := p.ejected.Load()
	if u := p.until.Load(); u != 0 && (t == 0 || u < t) && !p.unhealthy.Load() {
		t = u
	}
	return t
}

// live returns the peers of all that are up.
func live(all []*Peer, up []bool) []*Peer {
	var out []*Peer
	for i, p := range all {
		if up[i] {
			out = append(out, p)
		}
	}
	return out
}

// rrPicker is nginx's smooth weighted round robin over the live peers of a
// tier: the order of one round is computed when the picker is built, and
// picking is an atomic increment into it.
type rrPicker struct {
	order []*Peer
	next  atomic.Uint64
}

// maxRound caps the precomputed round; weights are reduced by their
// greatest common divisor first, which gives the same order.
const maxRound = 1 << 16

func buildRoundRobin(_ *config.Balance, all []*Peer, up []bool) picker {
	return newRRPicker(live(all, up))
}

func newRRPicker(live []*Peer) *rrPicker {
	pk := &rrPicker{}
	if len(live) == 0 {
		return pk
	}
	d := 0
	for _, p := range live {
		d = gcd(d, p.Weight)
	}
	total := 0
	w := make([]int, len(live))
	for i, p := range live {
		w[i] = p.Weight / d
		total += w[i]
	}
	sum := total
	if total > maxRound {
		total = maxRound
	}
	cur := make([]int, len(live))
	for n := 0; n < total; n++ {
		best := -1
		for i := range live {
			cur[i] += w[i]
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		pk.order = append(pk.order, live[best])
	}
	return pk
}

// pick takes the next peer of the round, skipping those in tried (a
// retry's exclusions) and those at max_conns: the rest of the round keeps
// its weights.
func (pk *rrPicker) pick(_ *StreamInfo, tried []*Peer) *Peer {
	m := uint64(len(pk.order))
	if m == 0 {
		return nil
	}
	n := pk.next.Add(1) - 1
	if len(tried) == 0 {
		if p := pk.order[n%m]; p.acquire() {
			return p
		}
	}
	for i := range m {
		if p := pk.order[(n+i)%m]; !slices.Contains(tried, p) && p.acquire() {
			return p
		}
	}
	return nil
}
