package upstream

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// Outlier ejection (gproxy_outlier_detection, a gproxy extension after
// Envoy's outlier_detection): passive health that reads gRPC statuses,
// which nginx's max_fails never counts.
//
//   - A stream that ends in UNAVAILABLE (14) or INTERNAL (13), or fails as
//     nginx counts failures (connect error, timeout; Outcome.Failed), is
//     an error; any other end (OK, any other status, a reset) resets the
//     count. consecutive= errors in a row eject the peer.
//   - An ejection lasts base_ejection_time times the number of times the
//     peer has been ejected, at most max(max_ejection_time,
//     base_ejection_time), as in Envoy. Each interval= spent without an
//     ejection lowers that number by one.
//   - At most max_ejection_percent of the group's peers are ejected at
//     once, but one always may be (Envoy's rule); and never the last peer
//     that can take streams: Envoy would then route to every host anyway
//     (its panic threshold), and "no live upstreams" helps no one.
//   - The ejected peer comes back by itself when its time is up (the
//     group's recheck); the count starts again from zero.

// gRPC status codes that count as errors.
const (
	grpcInternal    = 13
	grpcUnavailable = 14
)

// outlierState is a peer's outlier bookkeeping.
type outlierState struct {
	consecutive atomic.Int32
	// ejections and lastEnd (unix ns the last ejection ends) are under
	// Group.mu.
	ejections int
	lastEnd   int64
}

// observeOutlier counts the outcome of a stream for outlier ejection.
func (p *Peer) observeOutlier(od *config.OutlierDetection, o Outcome) {
	if !o.Failed && o.GRPCStatus != grpcUnavailable && o.GRPCStatus != grpcInternal {
		if p.outlier.consecutive.Load() != 0 {
			p.outlier.consecutive.Store(0)
		}
		return
	}
	if int(p.outlier.consecutive.Add(1)) >= od.Consecutive {
		p.Group.eject(p, od)
	}
}

// eject takes p out for its ejection time, if the group's limits allow.
func (g *Group) eject(p *Peer, od *config.OutlierDetection) {
	now := g.now().UnixNano()
	g.mu.Lock()
	if p.removed.Load() || p.ejected.Load() > now || !p.usable() {
		g.mu.Unlock()
		return
	}
	total, ejected, usable := 0, 0, 0
	for _, q := range g.peers {
		if q.Down || q.removed.Load() {
			continue
		}
		total++
		if q.ejected.Load() > now {
			ejected++
		}
		if q.usable() && !q.Backup {
			usable++
		}
	}
	if (ejected > 0 && (ejected+1)*100 > od.MaxEjectionPercent*total) || (usable <= 1 && !p.Backup) {
		g.mu.Unlock()
		return
	}
	st := &p.outlier
	if st.lastEnd != 0 && now > st.lastEnd {
		st.ejections = max(0, st.ejections-int((now-st.lastEnd)/int64(od.Interval)))
	}
	st.ejections++
	d := od.BaseEjectionTime * time.Duration(st.ejections)
	if limit := max(od.MaxEjectionTime, od.BaseEjectionTime); d > limit {
		d = limit
	}
	until := now + int64(d)
	st.lastEnd = until
	st.consecutive.Store(0)
	g.mu.Unlock()
	g.Eject(p, time.Unix(0, until))
	g.logger().Warn("upstream server " + p.Addr + " ejected for " + d.String() + " after " +
		strconv.Itoa(od.Consecutive) + ` consecutive errors, upstream "` + g.Name + `"`)
}
