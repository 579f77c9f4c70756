// Package dnstest runs an authoritative DNS server on loopback for tests
// (github.com/miekg/dns), whose records a test changes while it runs.
package dnstest

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/gproxy/gproxy/proxy/nettest"
)

// Server answers A, AAAA and SRV queries from its table over UDP and TCP on
// the same 127.0.0.1 port. Unknown names are NXDOMAIN.
type Server struct {
	// Addr is "127.0.0.1:PORT", for a `resolver` line.
	Addr string

	mu      sync.Mutex
	records map[string][]dns.RR // by lower-case FQDN
	queries int
}

// Start runs a server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{records: map[string][]dns.RR{}}
	pc, err := nettest.ListenPacket("udp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = pc.LocalAddr().String()
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: ln, Handler: s}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return s
}

// Set replaces the records of name with rrs, each in zone-file syntax
// without the owner ("A 127.0.0.2", "SRV 0 5 50051 b.example.",
// "AAAA ::1"), with the given TTL. No rrs removes the name.
func (s *Server) Set(name string, ttl int, rrs ...string) {
	name = strings.ToLower(dns.Fqdn(name))
	var out []dns.RR
	for _, r := range rrs {
		rr, err := dns.NewRR(name + " " + strconv.Itoa(ttl) + " IN " + r)
		if err != nil {
			panic(err)
		}
		out = append(out, rr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(out) == 0 {
		delete(s.records, name)
		return
	}
	s.records[name] = out
}

// Queries returns how many queries were answered.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	s.mu.Lock()
	s.queries++
	if len(q.Question) == 1 {
		qu := q.Question[0]
		rrs, ok := s.records[strings.ToLower(qu.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == qu.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
	}
	s.mu.Unlock()
	w.WriteMsg(m)
}
