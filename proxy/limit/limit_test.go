package limit

import (
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

func reqZone(t *testing.T, size int64, rate int64) *ReqZone {
	t.Helper()
	cz := &config.LimitReqZone{Name: "z", Key: config.Template{Raw: "$binary_remote_addr"}, Size: size, Rate: rate}
	rq, _ := NewZones().Bind([]*config.LimitReqZone{cz}, nil)
	return rq[cz]
}

func keys(k ...string) [][]byte {
	out := make([][]byte, len(k))
	for i, s := range k {
		out[i] = []byte(s)
	}
	return out
}

// TestLeakyBucket follows nginx's arithmetic at 2r/s (rate 2000) with
// burst=2: one request every 100 ms adds 1000 and drains 200.
func TestLeakyBucket(t *testing.T) {
	z := reqZone(t, 1<<20, 2000)
	lim := []Req{NewReq(z, config.LimitReq{Burst: 2})}
	now := clockStart
	type step struct {
		at     int64
		status ReqStatus
		delay  time.Duration
	}
	steps := []step{
		{0, ReqPassed, 0},                          // new state: excess 0
		{0, ReqDelayed, 500 * time.Millisecond},    // excess 1000: wait 1000/2 r/s
		{0, ReqDelayed, 1000 * time.Millisecond},   // excess 2000
		{0, ReqRejected, 0},                        // 3000 > burst 2000: state unchanged
		{500, ReqDelayed, 1000 * time.Millisecond}, // 2000 - 1000 + 1000
		{1500, ReqDelayed, 500 * time.Millisecond}, // 2000 - 2000 + 1000
		{5000, ReqPassed, 0},                       // drained
	}
	for i, s := range steps {
		res := checkReqAt(lim, keys("a"), false, now+s.at)
		if res.Status != s.status || res.Delay != s.delay {
			t.Errorf("step %d at +%dms: %v %v, want %v %v", i, s.at, res.Status, res.Delay, s.status, s.delay)
		}
	}
	// Another key has its own state.
	if res := checkReqAt(lim, keys("b"), false, now); res.Status != ReqPassed {
		t.Errorf("key b: %v", res.Status)
	}
	// An empty key is not limited.
	if res := checkReqAt(lim, keys(""), false, now); res.Status != ReqNone {
		t.Errorf("empty key: %v", res.Status)
	}
}

func TestNoDelayAndDelay(t *testing.T) {
	z := reqZone(t, 1<<20, 1000)
	nodelay := []Req{NewReq(z, config.LimitReq{Burst: 3, NoDelay: true})}
	now := clockStart
	var got []ReqStatus
	for i := 0; i < 5; i++ {
		got = append(got, checkReqAt(nodelay, keys("a"), false, now).Status)
	}
	want := []ReqStatus{ReqPassed, ReqPassed, ReqPassed, ReqPassed, ReqRejected}
	if !equal(got, want) {
		t.Errorf("burst=3 nodelay: %v, want %v", got, want)
	}
	delay := []Req{NewReq(z, config.LimitReq{Burst: 3, Delay: 1})}
	got = nil
	for i := 0; i < 5; i++ {
		got = append(got, checkReqAt(delay, keys("b"), false, now).Status)
	}
	want = []ReqStatus{ReqPassed, ReqPassed, ReqDelayed, ReqDelayed, ReqRejected}
	if !equal(got, want) {
		t.Errorf("burst=3 delay=1: %v, want %v", got, want)
	}
	// Dry run: the same decisions, reported, nothing refused or delayed.
	got = nil
	for i := 0; i < 5; i++ {
		res := checkReqAt(delay, keys("c"), true, now)
		if res.Delay != 0 {
			t.Errorf("dry run delays %v", res.Delay)
		}
		got = append(got, res.Status)
	}
	want = []ReqStatus{ReqPassed, ReqPassed, ReqDelayedDryRun, ReqDelayedDryRun, ReqRejectedDryRun}
	if !equal(got, want) {
		t.Errorf("dry run: %v, want %v", got, want)
	}
}

// TestTwoLimits: the longest delay wins and a refusal by the last limit
// releases the earlier reservation.
func TestTwoLimits(t *testing.T) {
	slow := reqZone(t, 1<<20, 1000)
	fast := reqZone(t, 1<<20, 10000)
	lims := []Req{NewReq(slow, config.LimitReq{Burst: 5}), NewReq(fast, config.LimitReq{Burst: 1})}
	now := clockStart
	checkReqAt(lims, keys("a", "a"), false, now)
	res := checkReqAt(lims, keys("a", "a"), false, now)
	if res.Status != ReqDelayed || res.Delay != time.Second || res.Zone != "z" {
		t.Errorf("second: %+v, want the slow zone's 1s", res)
	}
	if res := checkReqAt(lims, keys("a", "a"), false, now); res.Status != ReqRejected {
		t.Errorf("third: %+v, want rejected by the fast zone", res)
	}
	slow.st.mu.Lock()
	count := slow.st.nodes["a"].count
	slow.st.mu.Unlock()
	if count != 0 {
		t.Errorf("slow zone state still reserved: count %d", count)
	}
}

// TestReqZoneSize: 32 KiB holds 256 states of 128 bytes; the 257th key
// evicts the least recently used state.
func TestReqZoneSize(t *testing.T) {
	z := reqZone(t, 32<<10, 1000)
	lim := []Req{NewReq(z, config.LimitReq{})}
	now := clockStart
	for i := 0; i < 300; i++ {
		k := []byte{byte(i >> 8), byte(i), 0, 0}
		if res := checkReqAt(lim, [][]byte{k}, false, now); res.Status != ReqPassed {
			t.Fatalf("key %d: %+v", i, res)
		}
	}
	if n := z.Len(); n != 256 {
		t.Errorf("zone holds %d states, want 256", n)
	}
}

func TestConnZone(t *testing.T) {
	cz := &config.LimitConnZone{Name: "c", Key: config.Template{Raw: "$binary_remote_addr"}, Size: 32 << 10}
	_, cn := NewZones().Bind(nil, []*config.LimitConnZone{cz})
	z := cn[cz]
	lim := []Conn{{Zone: z, Max: 2}}
	var h1, h2, h3 Held
	if r := CheckConn(lim, keys("a"), false, &h1); r.Status != ConnPassed {
		t.Fatal(r)
	}
	if r := CheckConn(lim, keys("a"), false, &h2); r.Status != ConnPassed {
		t.Fatal(r)
	}
	if r := CheckConn(lim, keys("a"), false, &h3); r.Status != ConnRejected {
		t.Fatalf("third: %+v", r)
	}
	if z.Count("a") != 2 {
		t.Errorf("count %d", z.Count("a"))
	}
	h1.Release()
	h1.Release() // twice is harmless
	if z.Count("a") != 1 {
		t.Errorf("count after release %d", z.Count("a"))
	}
	h2.Release()
	// 32 KiB holds 512 states of 64 bytes; an idle state makes room.
	var held []Held
	for i := 0; i < 512; i++ {
		var h Held
		if r := CheckConn(lim, [][]byte{{byte(i >> 8), byte(i), 1, 1}}, false, &h); r.Status != ConnPassed {
			t.Fatalf("key %d: %+v", i, r)
		}
		held = append(held, h)
	}
	var h Held
	if r := CheckConn(lim, keys("new"), false, &h); r.Status != ConnRejected || !r.NoMemory {
		t.Errorf("full zone: %+v", r)
	}
	held[0].Release()
	if r := CheckConn(lim, keys("new"), false, &h); r.Status != ConnPassed {
		t.Errorf("after one release: %+v", r)
	}
}

func equal(a, b []ReqStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestZonesAcrossReload: a reload that keeps a zone's name, size and key
// keeps its states (a new rate applies to them); changing the size or
// key starts the zone empty.
func TestZonesAcrossReload(t *testing.T) {
	zs := NewZones()
	bind := func(size int64, key string, rate int64) *ReqZone {
		cz := &config.LimitReqZone{Name: "z", Key: config.Template{Raw: key}, Size: size, Rate: rate}
		rq, _ := zs.Bind([]*config.LimitReqZone{cz}, nil)
		return rq[cz]
	}
	z1 := bind(1<<20, "$binary_remote_addr", 1000)
	checkReqAt([]Req{NewReq(z1, config.LimitReq{})}, keys("a"), false, clockStart)
	if z := bind(1<<20, "$binary_remote_addr", 2000); z.Len() != 1 || z.rate != 2000 {
		t.Errorf("same zone: %d states, rate %d", z.Len(), z.rate)
	}
	if z := bind(2<<20, "$binary_remote_addr", 2000); z.Len() != 0 {
		t.Errorf("new size: %d states", z.Len())
	}
	z2 := bind(2<<20, "$binary_remote_addr", 2000)
	checkReqAt([]Req{NewReq(z2, config.LimitReq{})}, keys("a"), false, clockStart)
	if z := bind(2<<20, "$server_name", 2000); z.Len() != 0 {
		t.Errorf("new key: %d states", z.Len())
	}
}

// TestLongIdleHighRate: a state idle for days at a very high rate drains
// to zero instead of overflowing.
func TestLongIdleHighRate(t *testing.T) {
	z := reqZone(t, 1<<20, 100000000*1000)
	lim := []Req{NewReq(z, config.LimitReq{})}
	checkReqAt(lim, keys("a"), false, clockStart)
	if res := checkReqAt(lim, keys("a"), false, clockStart+30*24*3600*1000); res.Status != ReqPassed {
		t.Errorf("after 30 days: %+v", res)
	}
}
