// Package limit is gproxy's limit_req and limit_conn: per-key request rate
// (nginx's leaky bucket) and concurrent request counts, kept in zones of
// bounded size shared by every connection.
//
// The algorithms are ngx_http_limit_req_module's and
// ngx_http_limit_conn_module's, counted per request: for gRPC, per call
// (HTTP/2 stream).
//
// limit_req: each key has a state of (excess, last), excess in thousandths
// of a request. A request at time now (ms) computes
//
//	excess = max(0, state.excess - rate*(now-last)/1000 + 1000)
//
// and is rejected when excess exceeds burst; otherwise the state takes
// the new excess, and the request waits (excess-delay)/rate seconds when
// excess exceeds delay (no wait with nodelay). With several limit_req in
// one location, each earlier one only reserves its state until the last
// one has decided, and the longest wait wins.
//
// Zone size: a zone of SIZE bytes holds as many states as nginx's slab
// allocator fits on a 64-bit system: a limit_req state takes the power of
// two at or above 80 bytes plus the key (128 bytes for keys up to 48
// bytes, e.g. $binary_remote_addr, so 1m holds 8,192 keys); a limit_conn
// state the power of two at or above 36 bytes plus the key (64 bytes for
// keys up to 28 bytes: 16,384 keys per 1m). nginx's slab pages take a
// few percent of a zone for their own bookkeeping; gproxy does not
// subtract that, so a zone holds slightly more keys than in nginx. When a
// limit_req zone is full, a new key first drops up to two least recently
// used states idle for 60 s with their excess drained, then the least
// recently used state outright (ngx_http_limit_req_expire); if none can
// go (all in use by requests deciding right now) the request is refused
// as nginx refuses it. A full limit_conn zone refuses a new key while
// every state in it is held by requests in progress (states no request
// holds are kept for reuse and freed first when room is needed).
package limit

import (
	"math/bits"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// epoch anchors the millisecond clock the zones use. The clock starts
// an hour in, so that "last = 0" (a state reserved but not yet
// accounted) means "long ago" as it does with nginx's uptime clock.
var epoch = time.Now()

const clockStart = int64(time.Hour / time.Millisecond)

func nowMS() int64 { return time.Since(epoch).Milliseconds() + clockStart }

// msAt is t on the zones' clock; the zero time is now. The engine passes
// the time the request arrived, which it has read already.
func msAt(t time.Time) int64 {
	if t.IsZero() {
		return nowMS()
	}
	return t.Sub(epoch).Milliseconds() + clockStart
}

// slabSize is the size nginx's slab allocator gives an allocation of n
// bytes (a power of two, at least 8), for allocations below half a page.
func slabSize(n int) int64 {
	if n <= 8 {
		return 8
	}
	return 1 << bits.Len(uint(n-1))
}

// Zones keeps the zones of the running configurations by name. A reload
// that keeps a zone's name, kind, size and key keeps its states, as nginx
// keeps a shared memory zone across reloads; any other zone starts empty.
type Zones struct {
	mu   sync.Mutex
	req  map[string]*reqState
	conn map[string]*connState
}

// NewZones returns an empty set of zones.
func NewZones() *Zones {
	return &Zones{req: map[string]*reqState{}, conn: map[string]*connState{}}
}

// Bind returns the running zones of a configuration's zones, reusing the
// states of zones that exist with the same name, size and key. Zones of
// earlier configurations that cfg no longer has are forgotten (requests
// still running on them finish on their own).
func (zs *Zones) Bind(reqs []*config.LimitReqZone, conns []*config.LimitConnZone) (map[*config.LimitReqZone]*ReqZone, map[*config.LimitConnZone]*ConnZone) {
	zs.mu.Lock()
	defer zs.mu.Unlock()
	rq := make(map[*config.LimitReqZone]*ReqZone, len(reqs))
	nreq := make(map[string]*reqState, len(reqs))
	for _, z := range reqs {
		st := zs.req[z.Name]
		if st == nil || st.size != z.Size || st.key != z.Key.Raw {
			st = &reqState{size: z.Size, key: z.Key.Raw, nodes: map[string]*reqNode{}}
		}
		nreq[z.Name] = st
		rq[z] = &ReqZone{Name: z.Name, Key: z.Key, rate: z.Rate, st: st}
	}
	cn := make(map[*config.LimitConnZone]*ConnZone, len(conns))
	nconn := make(map[string]*connState, len(conns))
	for _, z := range conns {
		st := zs.conn[z.Name]
		if st == nil || st.size != z.Size || st.key != z.Key.Raw {
			st = &connState{size: z.Size, key: z.Key.Raw, nodes: map[string]*connNode{}}
		}
		nconn[z.Name] = st
		cn[z] = &ConnZone{Name: z.Name, Key: z.Key, st: st}
	}
	zs.req, zs.conn = nreq, nconn
	return rq, cn
}
