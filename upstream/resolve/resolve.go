// Package resolve asks the DNS servers of nginx's `resolver` directive for
// the addresses of upstream servers marked `resolve` (nginx 1.27.3+), and
// keeps asking while gproxy runs: a Watch re-resolves one server line when
// its answer expires (the records' TTL, or the resolver's valid=) and hands
// every changed set of addresses to its owner. This is how a group follows
// a Kubernetes headless Service.
//
// Queries go over UDP to each configured server in turn (TCP when an
// answer is truncated), bounded by resolver_timeout, with
// github.com/miekg/dns. A and, unless ipv6=off, AAAA records are asked for;
// with service= the SRV records of the service, whose targets are then
// resolved in turn.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Resolver is one `resolver` directive.
type Resolver struct {
	// Servers are the DNS servers, "ip:port", asked in turn.
	Servers []string
	// Timeout bounds one query to one server (resolver_timeout; 30s in
	// nginx when not set).
	Timeout time.Duration
	// Valid, when not zero, replaces the TTL of every answer (valid=).
	Valid time.Duration
	// IPv6 asks for AAAA records too (ipv6=on, the default).
	IPv6 bool

	next atomic.Uint32
}

// ErrNotFound is a name with no address (NXDOMAIN, or no records of the
// type asked).
var ErrNotFound = errors.New("host not found")

// MinTTL is the shortest time an answer is kept: a TTL of 0 would make a
// Watch ask without pause.
const MinTTL = time.Second

// LookupHost returns the addresses of name and how long they may be kept.
// A name that exists without addresses is ErrNotFound.
func (r *Resolver) LookupHost(ctx context.Context, name string) (ips []string, ttl time.Duration, err error) {
	if ip := net.ParseIP(name); ip != nil {
		return []string{ip.String()}, time.Duration(1<<63 - 1), nil
	}
	types := []uint16{dns.TypeA}
	if r.IPv6 {
		types = append(types, dns.TypeAAAA)
	}
	var firstErr error
	for _, t := range types {
		m, err := r.exchange(ctx, name, t)
		if err != nil {
			if firstErr == nil || errors.Is(firstErr, ErrNotFound) {
				firstErr = err
			}
			continue
		}
		for _, rr := range m.Answer {
			switch a := rr.(type) {
			case *dns.A:
				ips = append(ips, a.A.String())
				ttl = minTTL(ttl, a.Hdr.Ttl)
			case *dns.AAAA:
				ips = append(ips, a.AAAA.String())
				ttl = minTTL(ttl, a.Hdr.Ttl)
			}
		}
	}
	if len(ips) == 0 {
		if firstErr == nil {
			firstErr = ErrNotFound
		}
		return nil, 0, firstErr
	}
	return ips, r.keep(ttl), nil
}

// SRV is one SRV record's target with its addresses.
type SRV struct {
	Target   string
	Port     int
	Priority int
	Weight   int
	IPs      []string
}

// LookupSRV returns the SRV records of qname (e.g. "_grpc._tcp.svc.ns"),
// with the addresses of their targets, and how long they may be kept.
func (r *Resolver) LookupSRV(ctx context.Context, qname string) ([]SRV, time.Duration, error) {
	m, err := r.exchange(ctx, qname, dns.TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	var ttl time.Duration
	// Addresses the server sent along (the additional section) save a
	// query per target.
	extra := map[string][]string{}
	for _, rr := range m.Extra {
		switch a := rr.(type) {
		case *dns.A:
			extra[lower(a.Hdr.Name)] = append(extra[lower(a.Hdr.Name)], a.A.String())
		case *dns.AAAA:
			if r.IPv6 {
				extra[lower(a.Hdr.Name)] = append(extra[lower(a.Hdr.Name)], a.AAAA.String())
			}
		}
	}
	var out []SRV
	for _, rr := range m.Answer {
		s, ok := rr.(*dns.SRV)
		if !ok {
			continue
		}
		ttl = minTTL(ttl, s.Hdr.Ttl)
		rec := SRV{Target: strings.TrimSuffix(s.Target, "."), Port: int(s.Port), Priority: int(s.Priority), Weight: int(s.Weight)}
		if ips := extra[lower(s.Target)]; len(ips) > 0 {
			rec.IPs = ips
		} else {
			ips, t, err := r.LookupHost(ctx, rec.Target)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return nil, 0, err
			}
			rec.IPs = ips
			if t > 0 && t < ttl {
				ttl = t
			}
		}
		out = append(out, rec)
	}
	if len(out) == 0 {
		return nil, 0, ErrNotFound
	}
	return out, r.keep(ttl), nil
}

func (r *Resolver) keep(ttl time.Duration) time.Duration {
	if r.Valid > 0 {
		return r.Valid
	}
	return max(ttl, MinTTL)
}

func minTTL(cur time.Duration, ttl uint32) time.Duration {
	d := time.Duration(ttl) * time.Second
	if cur == 0 || d < cur {
		return d
	}
	return cur
}

func lower(s string) string { return strings.ToLower(dns.Fqdn(s)) }

// exchange asks the servers in turn for name's records of type t, until one
// answers. NXDOMAIN and an empty answer are ErrNotFound.
func (r *Resolver) exchange(ctx context.Context, name string, t uint16) (*dns.Msg, error) {
	if len(r.Servers) == 0 {
		return nil, errors.New("no resolver defined")
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), t)
	q.RecursionDesired = true
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	start := int(r.next.Add(1))
	var last error
	for i := range r.Servers {
		srv := r.Servers[(start+i)%len(r.Servers)]
		m, err := exchangeOne(ctx, q, srv, timeout)
		if err != nil {
			last = fmt.Errorf("%s could not be resolved (%s: %v)", name, srv, err)
			continue
		}
		switch m.Rcode {
		case dns.RcodeSuccess:
			if len(m.Answer) == 0 {
				return nil, ErrNotFound
			}
			return m, nil
		case dns.RcodeNameError:
			return nil, fmt.Errorf("%s could not be resolved (3: Host not found): %w", name, ErrNotFound)
		default:
			last = fmt.Errorf("%s could not be resolved (%d: %s)", name, m.Rcode, dns.RcodeToString[m.Rcode])
		}
	}
	return nil, last
}

func exchangeOne(ctx context.Context, q *dns.Msg, srv string, timeout time.Duration) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: "udp", Timeout: timeout}
	m, _, err := c.ExchangeContext(ctx, q, srv)
	if err == nil && m.Truncated {
		c.Net = "tcp"
		m, _, err = c.ExchangeContext(ctx, q, srv)
	}
	return m, err
}

// SRVName is nginx's name for the SRV query of `server NAME service=S`: a
// service without a dot becomes "_S._tcp.NAME", one with dots "S.NAME".
func SRVName(service, host string) string {
	if strings.Contains(service, ".") {
		return service + "." + host
	}
	return "_" + service + "._tcp." + host
}

// Watch keeps one server line resolved.
type Watch struct {
	Resolver *Resolver
	// Host and Port are the server's name and port (A/AAAA); with
	// Service set, the port comes from the SRV records.
	Host, Port string
	Service    string
	// Update receives each new set of addresses ("ip:port", sorted); an
	// empty set when the name no longer exists. It is not called when
	// an answer repeats the current set, nor when a lookup fails for
	// another reason (the peers stay as they are).
	Update func(addrs []string)
	// Error is told of failed lookups (for the error log); may be nil.
	Error func(err error)

	cur     []string
	started bool
}

// Resolve performs one lookup now, calls Update if the set changed, and
// returns how long until the next.
func (w *Watch) Resolve(ctx context.Context) time.Duration {
	addrs, ttl, err := w.lookup(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) {
		if w.Error != nil {
			w.Error(err)
		}
		// Keep what we have; ask again soon.
		return min(w.retry(), 5*time.Second)
	}
	if err != nil {
		if w.Error != nil {
			w.Error(err)
		}
		addrs, ttl = nil, w.retry()
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	if !w.started || !slices.Equal(addrs, w.cur) {
		w.started = true
		w.cur = addrs
		w.Update(slices.Clone(addrs))
	}
	return ttl
}

func (w *Watch) retry() time.Duration {
	if v := w.Resolver.Valid; v > 0 {
		return v
	}
	return 5 * time.Second
}

// Run re-resolves until ctx ends, each time the last answer expires. The
// first lookup happens at once.
func (w *Watch) Run(ctx context.Context) {
	for {
		d := w.Resolve(ctx)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (w *Watch) lookup(ctx context.Context) ([]string, time.Duration, error) {
	if w.Service == "" {
		ips, ttl, err := w.Resolver.LookupHost(ctx, w.Host)
		if err != nil {
			return nil, 0, err
		}
		out := make([]string, len(ips))
		for i, ip := range ips {
			out[i] = net.JoinHostPort(ip, w.Port)
		}
		return out, ttl, nil
	}
	recs, ttl, err := w.Resolver.LookupSRV(ctx, SRVName(w.Service, w.Host))
	if err != nil {
		return nil, 0, err
	}
	// The records of the best (lowest) priority are the servers.
	best := recs[0].Priority
	for _, r := range recs {
		best = min(best, r.Priority)
	}
	var out []string
	for _, r := range recs {
		if r.Priority != best {
			continue
		}
		for _, ip := range r.IPs {
			out = append(out, net.JoinHostPort(ip, strconv.Itoa(r.Port)))
		}
	}
	return out, ttl, nil
}
