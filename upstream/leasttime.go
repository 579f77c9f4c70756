package upstream

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// least_time (NGINX Plus): a stream goes to the peer with the least
// average response time and fewest active streams, weights considered:
// the smallest avg*(active+1)/weight. The average is an exponentially
// weighted moving average of the time to the response header
// (`least_time header`) or to the end of the response (`last_byte`), each
// finished stream moving it by ewmaAlpha of the difference. With
// `inflight`, streams still running count too: a peer whose running
// streams are older on average than its average takes that age instead,
// so a peer that stopped answering stops being chosen before its streams
// end. A peer without a measurement yet counts as fast as the fastest
// measured one (so it gets tried, and active+1 spreads the load). Ties
// take turns.

// ewmaAlpha is the weight of a new measurement in the moving average.
const ewmaAlpha = 0.2

// latency is a peer's measured response time, written by Peer.Done and
// read by the picker without a lock.
type latency struct {
	avg atomic.Uint64 // float64 bits of the average, in ns; 0 = none yet
	// startSum is the sum of the pick times (ns since epoch) of the
	// streams in progress picked by a least_time inflight picker.
	startSum atomic.Int64
}

// epoch is the origin of latency.startSum's times, which keeps the sum of
// many of them well inside an int64.
var epoch = time.Now()

func init() { builders["least_time"] = buildLeastTime }

type leastTimePicker struct {
	peers    []*Peer
	inflight bool
	next     atomic.Uint64
}

func buildLeastTime(b *config.Balance, all []*Peer, up []bool) picker {
	return &leastTimePicker{peers: live(all, up), inflight: b.Inflight}
}

func (pk *leastTimePicker) pick(_ *StreamInfo, tried []*Peer) *Peer {
	for range len(pk.peers) {
		p := pk.choose(pk.next.Add(1)-1, tried)
		if p == nil {
			return nil
		}
		if p.acquire() {
			if pk.inflight {
				p.lat.startSum.Add(int64(time.Since(epoch)))
			}
			return p
		}
	}
	return nil
}

// choose returns the peer with the least score among those that take the
// stream; ties are broken by turns starting at k.
func (pk *leastTimePicker) choose(k uint64, tried []*Peer) *Peer {
	n := len(pk.peers)
	if n == 0 {
		return nil
	}
	var now int64
	if pk.inflight {
		now = int64(time.Since(epoch))
	}
	fastest := math.Inf(1)
	for _, p := range pk.peers {
		if a := math.Float64frombits(p.lat.avg.Load()); a > 0 && a < fastest {
			fastest = a
		}
	}
	if math.IsInf(fastest, 1) {
		fastest = 1
	}
	var best *Peer
	bestScore := math.Inf(1)
	start := int(k % uint64(n))
	for i := range n {
		p := pk.peers[(start+i)%n]
		if !takes(p, tried) {
			continue
		}
		avg := math.Float64frombits(p.lat.avg.Load())
		if avg == 0 {
			avg = fastest
		}
		active := p.active.Load()
		if pk.inflight && active > 0 {
			if age := float64(now - p.lat.startSum.Load()/active); age > avg {
				avg = age
			}
		}
		if s := avg * float64(active+1) / float64(p.Weight); s < bestScore {
			best, bestScore = p, s
		}
	}
	return best
}

// observeLatency feeds a finished stream into the peer's average, for
// groups balanced by least_time.
func (p *Peer) observeLatency(b *config.Balance, o Outcome) {
	if b.Inflight {
		// Remove the stream's pick time from the sum; once the peer is
		// idle the sum is exactly zero (this also drops the drift of
		// streams not picked by the picker, such as passive-health probes).
		if p.active.Load() == 0 {
			p.lat.startSum.Store(0)
		} else {
			p.lat.startSum.Add(-int64(time.Since(epoch) - o.Duration))
		}
	}
	d := o.Duration
	if b.LeastTime == "header" && o.HeaderTime > 0 {
		d = o.HeaderTime
	}
	x := float64(max(d, 1))
	for {
		bits := p.lat.avg.Load()
		old := math.Float64frombits(bits)
		if old == 0 {
			old = x
		}
		if p.lat.avg.CompareAndSwap(bits, math.Float64bits(old+ewmaAlpha*(x-old))) {
			return
		}
	}
}

// AverageTime returns the peer's moving average response time for
// least_time (0 before its first measurement).
func (p *Peer) AverageTime() time.Duration {
	return time.Duration(math.Float64frombits(p.lat.avg.Load()))
}
