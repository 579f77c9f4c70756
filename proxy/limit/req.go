package limit

import (
	"math"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// ReqZone is a limit_req_zone of a running configuration.
type ReqZone struct {
	Name string
	Key  config.Template
	rate int64 // thousandths of a request per second
	st   *reqState
}

// reqState is a zone's states, shared across reloads.
type reqState struct {
	size int64
	key  string

	mu         sync.Mutex
	nodes      map[string]*reqNode
	head, tail *reqNode // most and least recently used
	used       int64
}

// reqNode is the state of one key.
type reqNode struct {
	key        string
	last       int64 // ms
	excess     int64 // thousandths of a request
	count      int   // requests that reserved this state and have not decided yet
	cost       int64
	prev, next *reqNode
}

// reqNodeBase is offsetof(ngx_rbtree_node_t, color) +
// offsetof(ngx_http_limit_req_node_t, data) on 64-bit systems.
const reqNodeBase = 80

// idleMS is how long a state must have been idle before a new key may
// drop it without force.
const idleMS = 60000

// Req is one limit_req of a location.
type Req struct {
	Zone  *ReqZone
	burst int64 // thousandths
	delay int64 // thousandths
}

// NewReq binds a location's limit_req to its running zone.
func NewReq(z *ReqZone, c config.LimitReq) Req {
	r := Req{Zone: z, burst: int64(c.Burst) * 1000, delay: int64(c.Delay) * 1000}
	if c.NoDelay {
		r.delay = math.MaxInt64 / 2
	}
	return r
}

// ReqStatus is $limit_req_status.
type ReqStatus uint8

// Values of $limit_req_status; ReqNone when no limit applied.
const (
	ReqNone ReqStatus = iota
	ReqPassed
	ReqDelayed
	ReqRejected
	ReqDelayedDryRun
	ReqRejectedDryRun
)

var reqStatusText = [...]string{"", "PASSED", "DELAYED", "REJECTED", "DELAYED_DRY_RUN", "REJECTED_DRY_RUN"}

func (s ReqStatus) String() string { return reqStatusText[s] }

// ReqResult is what a location's limit_req list decided for a request.
type ReqResult struct {
	Status ReqStatus
	// Delay is how long the request waits before it goes on (Delayed).
	Delay time.Duration
	// Excess (thousandths of a request) and Zone are for the log line
	// of a rejected or delayed request.
	Excess int64
	Zone   string
	// NoMemory is set when a new key found its zone full (nginx's
	// "could not allocate node").
	NoMemory bool
}

type lookupRC int

const (
	rcDeclined lookupRC = iota
	rcOK
	rcAgain
	rcBusy
	rcError
)

// CheckReq runs a location's limit_req list (ngx_http_limit_req_handler):
// keys[i] is the value of limits[i]'s zone key for the request; an empty
// key skips its limit. dryRun is limit_req_dry_run: nothing is refused or
// delayed, but the states are accounted as nginx accounts them.
// now is when the request arrived (the zero time means now).
func CheckReq(limits []Req, keys [][]byte, dryRun bool, now time.Time) ReqResult {
	return checkReqAt(limits, keys, dryRun, msAt(now))
}

// checkReqAt is CheckReq at time now (ms).
func checkReqAt(limits []Req, keys [][]byte, dryRun bool, now int64) ReqResult {
	var (
		excess int64
		rc     = rcDeclined
		lim    *Req
		n      int
		nodes  [4]*reqNode
		held   = nodes[:0]
	)
	for n = 0; n < len(limits); n++ {
		lim = &limits[n]
		key := keys[n]
		if len(key) == 0 || len(key) > 65535 {
			held = append(held, nil)
			continue
		}
		var node *reqNode
		rc, excess, node = lim.Zone.lookup(key, n == len(limits)-1, now, lim.burst)
		held = append(held, node)
		if rc != rcAgain {
			break
		}
	}
	if rc == rcDeclined {
		return ReqResult{}
	}
	if rc == rcBusy || rc == rcError {
		unlockReq(limits, held[:min(n, len(held))])
		res := ReqResult{Status: ReqRejected, Excess: excess, Zone: lim.Zone.Name, NoMemory: rc == rcError}
		if dryRun {
			res.Status = ReqRejectedDryRun
		}
		return res
	}
	if rc == rcAgain {
		excess = 0
	}
	if n == len(limits) {
		n = len(limits) - 1
	}
	delay, excess, lim := account(limits, held[:n], excess, lim, now)
	if delay == 0 {
		return ReqResult{Status: ReqPassed}
	}
	res := ReqResult{Status: ReqDelayed, Delay: time.Duration(delay) * time.Millisecond, Excess: excess, Zone: lim.Zone.Name}
	if dryRun {
		res.Status, res.Delay = ReqDelayedDryRun, 0
	}
	return res
}

// lookup finds or adds key's state and computes its excess
// (ngx_http_limit_req_lookup). account is set for the last limit of the
// list: its state is updated at once; earlier ones are reserved (count)
// and returned for account to update.
func (z *ReqZone) lookup(key []byte, account bool, now, burst int64) (lookupRC, int64, *reqNode) {
	st := z.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if lr := st.nodes[string(key)]; lr != nil {
		st.touch(lr)
		ms := now - lr.last
		if ms < -60000 {
			ms = 1
		} else if ms < 0 {
			ms = 0
		}
		excess := max(lr.excess-drained(z.rate, ms)+1000, 0)
		if excess > burst {
			return rcBusy, excess, nil
		}
		if account {
			lr.excess = excess
			if ms != 0 {
				lr.last = now
			}
			return rcOK, excess, nil
		}
		lr.count++
		return rcAgain, excess, lr
	}
	cost := slabSize(reqNodeBase + len(key))
	z.expire(1, now)
	if st.used+cost > st.size {
		z.expire(0, now)
		if st.used+cost > st.size {
			return rcError, 0, nil
		}
	}
	lr := &reqNode{key: string(key), cost: cost}
	st.nodes[lr.key] = lr
	st.used += cost
	st.pushFront(lr)
	if account {
		lr.last = now
		return rcOK, 0, nil
	}
	lr.count = 1
	return rcAgain, 0, lr
}

// account updates the states reserved by the earlier limits of the list
// and returns the longest delay (ms) any of them asks for, with its excess
// and limit (ngx_http_limit_req_account).
func account(limits []Req, held []*reqNode, excess int64, lim *Req, now int64) (int64, int64, *Req) {
	var maxDelay int64
	if excess > lim.delay {
		maxDelay = (excess - lim.delay) * 1000 / lim.Zone.rate
	}
	for i := len(held) - 1; i >= 0; i-- {
		lr := held[i]
		if lr == nil {
			continue
		}
		z := limits[i].Zone
		z.st.mu.Lock()
		ms := now - lr.last
		if ms < -60000 {
			ms = 1
		} else if ms < 0 {
			ms = 0
		}
		e := max(lr.excess-drained(z.rate, ms)+1000, 0)
		if ms != 0 {
			lr.last = now
		}
		lr.excess = e
		lr.count--
		z.st.mu.Unlock()
		if e <= limits[i].delay {
			continue
		}
		if d := (e - limits[i].delay) * 1000 / z.rate; d > maxDelay {
			maxDelay, excess, lim = d, e, &limits[i]
		}
	}
	return maxDelay, excess, lim
}

// unlockReq releases the states reserved before a limit refused.
func unlockReq(limits []Req, held []*reqNode) {
	for i, lr := range held {
		if lr == nil {
			continue
		}
		st := limits[i].Zone.st
		st.mu.Lock()
		lr.count--
		st.mu.Unlock()
	}
}

// expire drops states from the least recently used end
// (ngx_http_limit_req_expire): n == 1 drops up to two idle, drained
// states; n == 0 drops the oldest by force first. A state reserved by a
// request in progress stops the search.
func (z *ReqZone) expire(n int, now int64) {
	st := z.st
	for n < 3 {
		lr := st.tail
		if lr == nil || lr.count > 0 {
			return
		}
		if n != 0 {
			ms := now - lr.last
			if ms < 0 {
				ms = -ms
			}
			if ms < idleMS {
				return
			}
			if lr.excess-drained(z.rate, ms) > 0 {
				return
			}
		}
		n++
		st.remove(lr)
		delete(st.nodes, lr.key)
		st.used -= lr.cost
	}
}

func (st *reqState) pushFront(lr *reqNode) {
	lr.prev, lr.next = nil, st.head
	if st.head != nil {
		st.head.prev = lr
	}
	st.head = lr
	if st.tail == nil {
		st.tail = lr
	}
}

func (st *reqState) remove(lr *reqNode) {
	if lr.prev != nil {
		lr.prev.next = lr.next
	} else {
		st.head = lr.next
	}
	if lr.next != nil {
		lr.next.prev = lr.prev
	} else {
		st.tail = lr.prev
	}
	lr.prev, lr.next = nil, nil
}

func (st *reqState) touch(lr *reqNode) {
	if st.head == lr {
		return
	}
	st.remove(lr)
	st.pushFront(lr)
}

// drained is how much excess (thousandths) rate drains in ms
// milliseconds: rate*ms/1000, saturating instead of overflowing for a
// state idle for days at a very high rate.
func drained(rate, ms int64) int64 {
	if ms > 0 && rate > math.MaxInt64/ms {
		return math.MaxInt64 / 2
	}
	return rate * ms / 1000
}

// Len is the number of states the zone holds (for tests).
func (z *ReqZone) Len() int {
	z.st.mu.Lock()
	defer z.st.mu.Unlock()
	return len(z.st.nodes)
}
