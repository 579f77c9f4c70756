package upstream

import (
	"math/rand/v2"
	"sort"

	"github.com/gproxy/gproxy/parser/config"
)

// randomPicker is nginx's `random`: a peer drawn at random with
// probability proportional to its weight; with `two`, two distinct peers
// are drawn and the one with fewer active streams per weight
// (least_conn, the only method nginx offers there) is taken. A draw that
// cannot take the stream (tried, at max_conns) is drawn again, up to 20
// times, then round robin decides, as in nginx.
type randomPicker struct {
	peers  []*Peer
	ranges []uint64 // ranges[i]: total weight of peers before peers[i]
	total  uint64
	two    bool
	rr     *rrPicker
}

func buildRandom(b *config.Balance, all []*Peer, up []bool) picker {
	peers := live(all, up)
	pk := &randomPicker{peers: peers, two: b.Two, rr: newRRPicker(peers)}
	for _, p := range peers {
		pk.ranges = append(pk.ranges, pk.total)
		pk.total += uint64(p.Weight)
	}
	return pk
}

// draw returns a peer at random, weighted.
func (pk *randomPicker) draw() *Peer {
	x := rand.Uint64N(pk.total)
	i := sort.Search(len(pk.ranges), func(i int) bool { return pk.ranges[i] > x }) - 1
	return pk.peers[i]
}

func (pk *randomPicker) pick(info *StreamInfo, tried []*Peer) *Peer {
	if len(pk.peers) < 2 {
		return pk.rr.pick(info, tried)
	}
	var prev *Peer
	for range maxRehash + 1 {
		p := pk.draw()
		if p == prev || !takes(p, tried) {
			continue
		}
		if pk.two && prev == nil {
			prev = p
			continue
		}
		if prev != nil && p.active.Load()*int64(prev.Weight) > prev.active.Load()*int64(p.Weight) {
			p = prev
		}
		if p.acquire() {
			return p
		}
		prev = nil
	}
	return pk.rr.pick(info, tried)
}
