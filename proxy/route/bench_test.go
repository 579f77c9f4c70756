package route

import (
	"fmt"
	"testing"

	"github.com/gproxy/gproxy/parser/config"
	"golang.org/x/net/http2/hpack"
)

// benchSetup is a server among many on one address, with a realistic
// location list, and a gRPC request to it.
func benchSetup(tb testing.TB) (*Table, *Listener, *config.Server, *Request) {
	var servers []*config.Server
	for i := 0; i < 50; i++ {
		servers = append(servers, srv("0.0.0.0:30051", fmt.Sprintf("svc%d.example.com", i), fmt.Sprintf("*.svc%d.example.net", i)))
	}
	s := servers[25]
	s.Locations = []*config.Location{loc("= /"), loc("/")}
	for i := 0; i < 30; i++ {
		s.Locations = append(s.Locations, loc(fmt.Sprintf("/pkg%d.Service/", i)))
	}
	s.Locations = append(s.Locations, loc("^~ /grpc.health.v1.Health/"))
	t := mustNew(tb, &config.HTTP{Servers: servers})
	r := &Request{
		Method: "POST", Scheme: "http", Authority: "svc25.example.com:30051", Path: "/pkg17.Service/Method",
		Headers:    []hpack.HeaderField{{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}},
		RemoteAddr: tcpAddr("127.0.0.1:40000"), LocalAddr: tcpAddr("127.0.0.1:30051"), Proto: "HTTP/2.0",
	}
	return t, t.Listeners()[0], s, r
}

// TestHotPathAllocations pins the allocation-free paths the engine relies
// on (counted, not timed).
func TestHotPathAllocations(t *testing.T) {
	tb, l, s, r := benchSetup(t)
	realIP := tpl("x $remote_addr")
	buf := make([]byte, 0, 128)
	// The engine routes the request its connection holds (a heap
	// object): variables' getters are called through the table, so a
	// Request on the stack would move to the heap.
	rr := new(Request)
	checks := []struct {
		name string
		max  float64
		f    func()
	}{
		{"Listener.Server exact", 0, func() { l.Server("svc25.example.com:30051") }},
		{"Listener.Server wildcard", 0, func() { l.Server("a.svc7.example.net") }},
		{"Table.Location prefix", 0, func() { tb.Location(s, "/pkg17.Service/Method") }},
		{"AppendExpand literal+$remote_addr", 0, func() { buf = tb.AppendExpand(buf[:0], realIP, r) }},
		{"Expand $http_te", 0, func() { tb.Expand(tpl1, r) }},
		{"Expand literal+$remote_addr", 1, func() { tb.Expand(realIP, r) }},
		{"Route", 0, func() { *rr = *r; tb.Route(l, rr) }},
	}
	for _, c := range checks {
		if n := testing.AllocsPerRun(200, c.f); n > c.max {
			t.Errorf("%s: %.1f allocs, want <= %.0f", c.name, n, c.max)
		}
	}
}

var tpl1 = tpl("$http_te")

func BenchmarkServerExact(b *testing.B) {
	_, l, _, _ := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		l.Server("svc25.example.com:30051")
	}
}

func BenchmarkServerWildcard(b *testing.B) {
	_, l, _, _ := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		l.Server("a.svc7.example.net")
	}
}

func BenchmarkLocationPrefix(b *testing.B) {
	tb, _, s, _ := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		tb.Location(s, "/pkg17.Service/Method")
	}
}

func BenchmarkAppendExpandRemoteAddr(b *testing.B) {
	tb, _, _, r := benchSetup(b)
	t := tpl("x-real-ip: $remote_addr")
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = tb.AppendExpand(buf[:0], t, r)
	}
}

func BenchmarkExpandRemoteAddr(b *testing.B) {
	tb, _, _, r := benchSetup(b)
	t := tpl("x-real-ip: $remote_addr")
	b.ReportAllocs()
	for b.Loop() {
		tb.Expand(t, r)
	}
}

func BenchmarkRoute(b *testing.B) {
	tb, l, _, r := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		rr := *r
		tb.Route(l, &rr)
	}
}

// TestConcurrentUse shares one Table between goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	tb, l, _, r := benchSetup(t)
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				rr := *r
				if _, loc, a := tb.Route(l, &rr); a != nil || loc == nil {
					t.Errorf("route: %+v %v", a, loc)
					return
				}
				tb.Expand(tpl("$remote_addr $request_id $uri"), &rr)
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
