package upstream

import (
	"sync/atomic"

	"github.com/gproxy/gproxy/parser/config"
)

// leastConnPicker is nginx's least_conn counted in streams, not
// connections (the point for gRPC, where one connection carries many
// calls): the peer with the fewest active streams relative to its weight
// (a.active*b.weight < b.active*a.weight). Ties take weighted turns: when
// every peer ties (an idle group) exactly nginx's smooth weighted round
// robin, otherwise the tied peers in proportion to their weights.
//
// The choice reads the peers' counters without a lock; two picks racing
// may both choose the same peer, as two nginx workers may, but max_conns
// holds (acquire).
type leastConnPicker struct {
	peers []*Peer
	order []*Peer // one round of smooth weighted round robin over peers
	next  atomic.Uint64
}

func buildLeastConn(_ *config.Balance, all []*Peer, up []bool) picker {
	peers := live(all, up)
	return &leastConnPicker{peers: peers, order: newRRPicker(peers).order}
}

func (pk *leastConnPicker) pick(_ *StreamInfo, tried []*Peer) *Peer {
	// A peer that fills up between the choice and acquire is passed over
	// by the next round's choice, so this ends.
	for range len(pk.peers) {
		p := pk.choose(pk.next.Add(1)-1, tried)
		if p == nil {
			return nil
		}
		if p.acquire() {
			return p
		}
	}
	return nil
}

// choose returns the least loaded peer that may take a stream, the k-th
// turn among equals.
func (pk *leastConnPicker) choose(k uint64, tried []*Peer) *Peer {
	var best *Peer
	var bestActive int64
	ties, tieWeight := 0, 0
	for _, p := range pk.peers {
		if !takes(p, tried) {
			continue
		}
		a := p.active.Load()
		switch l, r := a*int64(weightOf(best)), bestActive*int64(p.Weight); {
		case best == nil || l < r:
			best, bestActive, ties, tieWeight = p, a, 1, p.Weight
		case l == r:
			ties++
			tieWeight += p.Weight
		}
	}
	switch {
	case ties <= 1:
		return best
	case ties == len(pk.peers):
		return pk.order[k%uint64(len(pk.order))]
	}
	x := int(k % uint64(tieWeight))
	for _, p := range pk.peers {
		if takes(p, tried) && p.active.Load()*int64(best.Weight) == bestActive*int64(p.Weight) {
			if x < p.Weight {
				return p
			}
			x -= p.Weight
		}
	}
	return best // the loads moved meanwhile
}

func weightOf(p *Peer) int {
	if p == nil {
		return 0
	}
	return p.Weight
}
