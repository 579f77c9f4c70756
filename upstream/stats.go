package upstream

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of the per-peer call
// latency histogram (the time from picking the peer to the end of the
// call).
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// maxGRPCStatus is the largest gRPC status code counted by its number;
// others, and calls that ended without a status, count as "none".
const maxGRPCStatus = 16

// PeerStats are the counters of one peer's calls, written with atomic
// operations when a call ends (no lock on the stream path) and read when
// metrics or the status page are asked for. They live with the peer's
// connection pool, so a reload that keeps the peer in its upstream keeps
// its counters.
type PeerStats struct {
	calls      [maxGRPCStatus + 2]atomic.Uint64 // by grpc-status; the last is "none"
	failures   atomic.Uint64                    // attempts nginx counts for max_fails
	retries    atomic.Uint64                    // attempts passed on to another peer
	ejections  atomic.Uint64                    // times outlier detection took the peer out
	latency    [len(bucketsFixed)]atomic.Uint64 // not cumulative; the last is +Inf
	latencySum atomic.Int64                     // nanoseconds
}

// bucketsFixed sizes the latency array: one more than LatencyBuckets.
var bucketsFixed [15]struct{}

func (s *PeerStats) observe(o Outcome) {
	code := o.GRPCStatus
	if code < 0 || code > maxGRPCStatus {
		code = maxGRPCStatus + 1
	}
	s.calls[code].Add(1)
	if o.Failed {
		s.failures.Add(1)
	}
	sec := o.Duration.Seconds()
	i := 0
	for i < len(LatencyBuckets) && sec > LatencyBuckets[i] {
		i++
	}
	s.latency[i].Add(1)
	s.latencySum.Add(int64(o.Duration))
}

// Retried counts an attempt on this peer that the call passed on to
// another peer (grpc_next_upstream).
func (s *PeerStats) Retried() { s.retries.Add(1) }

// Ejected counts one ejection of the peer by outlier detection. It is
// the hook for whoever ejects peers (gproxy_upstream_peer_ejections_total
// reports it).
func (s *PeerStats) Ejected() { s.ejections.Add(1) }

// PeerSnapshot is a copy of PeerStats at one moment.
type PeerSnapshot struct {
	// Calls counts finished calls by grpc-status; index 17 is calls that
	// ended without one (reset, proxy-side error).
	Calls     [maxGRPCStatus + 2]uint64
	Failures  uint64
	Retries   uint64
	Ejections uint64
	// Buckets are cumulative counts for LatencyBuckets, then +Inf.
	Buckets    [15]uint64
	LatencySum time.Duration
}

// Total is the number of finished calls.
func (p *PeerSnapshot) Total() uint64 {
	var n uint64
	for _, c := range p.Calls {
		n += c
	}
	return n
}

// Snapshot reads the counters.
func (s *PeerStats) Snapshot() PeerSnapshot {
	var p PeerSnapshot
	for i := range s.calls {
		p.Calls[i] = s.calls[i].Load()
	}
	p.Failures = s.failures.Load()
	p.Retries = s.retries.Load()
	p.Ejections = s.ejections.Load()
	var cum uint64
	for i := range s.latency {
		cum += s.latency[i].Load()
		p.Buckets[i] = cum
	}
	p.LatencySum = time.Duration(s.latencySum.Load())
	return p
}

// Stats returns the peer's counters.
func (p *Peer) Stats() *PeerStats {
	if p.Pool == nil || p.Pool.stats == nil {
		return &PeerStats{}
	}
	return p.Pool.stats
}
