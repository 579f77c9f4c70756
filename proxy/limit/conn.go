package limit

import (
	"sync"

	"github.com/gproxy/gproxy/parser/config"
)

// ConnZone is a limit_conn_zone of a running configuration.
type ConnZone struct {
	Name string
	Key  config.Template
	st   *connState
}

// connState is a zone's counts, shared across reloads.
type connState struct {
	size int64
	key  string

	mu    sync.Mutex
	nodes map[string]*connNode
	used  int64
	// idle lists the states no request holds, most recently released
	// first. nginx frees such a state at once; gproxy keeps it for the
	// key's next request (saving two allocations per call) and frees
	// the least recently released when a new key needs the room, so a
	// zone refuses a new key exactly when nginx's would.
	idleHead, idleTail *connNode
}

type connNode struct {
	key        string
	conn       int
	cost       int64
	prev, next *connNode // in the idle list while conn == 0
}

func (st *connState) idlePush(n *connNode) {
	n.prev, n.next = nil, st.idleHead
	if st.idleHead != nil {
		st.idleHead.prev = n
	}
	st.idleHead = n
	if st.idleTail == nil {
		st.idleTail = n
	}
}

func (st *connState) idleRemove(n *connNode) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		st.idleHead = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		st.idleTail = n.prev
	}
	n.prev, n.next = nil, nil
}

// makeRoom frees idle states, least recently released first, until cost
// more bytes fit; false if they cannot.
func (st *connState) makeRoom(cost int64) bool {
	for st.used+cost > st.size {
		n := st.idleTail
		if n == nil {
			return false
		}
		st.idleRemove(n)
		delete(st.nodes, n.key)
		st.used -= n.cost
	}
	return true
}

// connNodeBase is offsetof(ngx_rbtree_node_t, color) +
// offsetof(ngx_http_limit_conn_node_t, data) on 64-bit systems.
const connNodeBase = 36

// Conn is one limit_conn of a location.
type Conn struct {
	Zone *ConnZone
	Max  int
}

// ConnStatus is $limit_conn_status.
type ConnStatus uint8

// Values of $limit_conn_status; ConnNone when no limit applied.
const (
	ConnNone ConnStatus = iota
	ConnPassed
	ConnRejected
	ConnRejectedDryRun
)

var connStatusText = [...]string{"", "PASSED", "REJECTED", "REJECTED_DRY_RUN"}

func (s ConnStatus) String() string { return connStatusText[s] }

// Held is the limit_conn counts a request holds until it ends. The zero
// value holds nothing. Release gives them back; it may be called more
// than once.
type Held struct {
	one  connRef
	more []connRef
}

type connRef struct {
	st   *connState
	node *connNode
}

func (h *Held) add(st *connState, n *connNode) {
	if h.one.node == nil {
		h.one = connRef{st, n}
		return
	}
	h.more = append(h.more, connRef{st, n})
}

// Release gives back every count h holds.
func (h *Held) Release() {
	if h.one.node != nil {
		h.one.release()
		h.one = connRef{}
	}
	for _, r := range h.more {
		r.release()
	}
	h.more = nil
}

func (r connRef) release() {
	st := r.st
	st.mu.Lock()
	r.node.conn--
	if r.node.conn == 0 {
		st.idlePush(r.node)
	}
	st.mu.Unlock()
}

// ConnResult is what a location's limit_conn list decided for a request.
type ConnResult struct {
	Status ConnStatus
	// Zone names the zone that refused (Rejected, RejectedDryRun).
	Zone string
	// NoMemory is set when the zone had no room for a new key.
	NoMemory bool
}

// CheckConn runs a location's limit_conn list (ngx_http_limit_conn_handler):
// keys[i] is limits[i]'s key for the request; an empty key (or one over
// 255 bytes) skips its limit. On success the request holds a count in
// each zone until h.Release; on refusal it holds none.
func CheckConn(limits []Conn, keys [][]byte, dryRun bool, h *Held) ConnResult {
	var res ConnResult
	for i := range limits {
		key := keys[i]
		if len(key) == 0 || len(key) > 255 {
			continue
		}
		res.Status = ConnPassed
		z := limits[i].Zone
		st := z.st
		st.mu.Lock()
		n := st.nodes[string(key)]
		switch {
		case n == nil:
			cost := slabSize(connNodeBase + len(key))
			if !st.makeRoom(cost) {
				st.mu.Unlock()
				h.Release()
				return refused(z, dryRun, true)
			}
			n = &connNode{key: string(key), conn: 1, cost: cost}
			st.nodes[n.key] = n
			st.used += cost
		case n.conn >= limits[i].Max:
			st.mu.Unlock()
			h.Release()
			return refused(z, dryRun, false)
		case n.conn == 0:
			st.idleRemove(n)
			n.conn = 1
		default:
			n.conn++
		}
		st.mu.Unlock()
		h.add(st, n)
	}
	return res
}

func refused(z *ConnZone, dryRun, noMem bool) ConnResult {
	r := ConnResult{Status: ConnRejected, Zone: z.Name, NoMemory: noMem}
	if dryRun {
		r.Status = ConnRejectedDryRun
	}
	return r
}

// Count is the number of requests key holds in the zone (for tests).
func (z *ConnZone) Count(key string) int {
	z.st.mu.Lock()
	defer z.st.mu.Unlock()
	if n := z.st.nodes[key]; n != nil {
		return n.conn
	}
	return 0
}
