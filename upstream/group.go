// Package upstream owns backends: groups built from `upstream {}` blocks (or
// the implicit group of `grpc_pass host:port`), the balancing picker, and a
// pool of multiplexed HTTP/2 connections per server. It knows nothing about
// client connections: the engine asks a Group for a Peer per stream, opens
// the stream through the Peer's Pool, and reports how it ended with
// Peer.Done, which feeds nginx's passive health (max_fails, fail_timeout;
// see health.go). Retrying on another peer (grpc_next_upstream) is the
// engine's: it asks again with PickNext.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// ErrNoPeer is returned by Pick when every server of the group is down.
var ErrNoPeer = errors.New("no live upstreams")

// StreamInfo describes the stream a peer is picked for; balancing methods
// that hash or count read it.
type StreamInfo struct {
	Method, Path, Authority string
	RemoteAddr              net.Addr
	Start                   time.Time
}

// Outcome is how a stream on a peer ended, reported once by Peer.Done.
type Outcome struct {
	GRPCStatus    int   // grpc-status received; -1 when none arrived
	Reset         bool  // a side reset the stream
	Err           error // proxy-side failure (connect, timeout, ...), nil on success
	BytesSent     int64 // request bytes sent upstream
	BytesReceived int64 // response bytes received from upstream
	// Duration is the time since the peer was picked for this stream.
	Duration time.Duration
	// Failed marks an unsuccessful attempt as nginx counts it for
	// max_fails: an error or timeout while connecting, sending the request
	// or reading the response header, an invalid response header, and a
	// listed http_5xx/http_429 (grpc_next_upstream). A gRPC status, a
	// client cancel, an error after the response header are not failures.
	Failed bool
}

// Group is one upstream group of the running configuration.
type Group struct {
	Name   string
	Config *config.Upstream
	Peers  []*Peer
	picker atomic.Pointer[rrPicker]

	// single: a group of one peer never marks it unavailable and never
	// retries (nginx's peers->single).
	single bool
	// mu serializes changes of passive health state and picker rebuilds;
	// the per-stream path never takes it while every peer is healthy.
	mu sync.Mutex
	// clock is time.Now; tests replace it.
	clock func() time.Time
}

// Peer is one upstream server address.
type Peer struct {
	Addr    string // "127.0.0.1:50051" or a unix socket path
	Network string // "tcp" or "unix"
	Weight  int
	Down    bool
	Group   *Group
	Pool    *Pool

	// MaxFails and FailTimeout are the server's max_fails= and
	// fail_timeout= (0 max fails: never marked unavailable).
	MaxFails    int
	FailTimeout time.Duration

	active   atomic.Int64 // streams picked and not yet Done
	requests atomic.Int64
	failures atomic.Int64

	health
}

// Active returns the number of streams in progress on the peer.
func (p *Peer) Active() int64 { return p.active.Load() }

// Requests returns the number of streams ever picked for the peer.
func (p *Peer) Requests() int64 { return p.requests.Load() }

// Failures returns the number of unsuccessful attempts ever reported.
func (p *Peer) Failures() int64 { return p.failures.Load() }

// Done reports the end of a stream picked with Group.Pick or PickNext. It
// must be called exactly once per pick. A successful stream on a healthy
// peer costs two atomic operations; failures feed passive health (see
// health.go).
func (p *Peer) Done(o Outcome) {
	p.active.Add(-1)
	if p.Pool != nil && p.Pool.stats != nil {
		p.Pool.stats.observe(o)
	}
	if o.Failed {
		p.failures.Add(1)
		p.Group.failed(p)
		return
	}
	if p.fails.Load() != 0 {
		p.Group.succeeded(p, o.Duration)
	}
}

// GroupOptions are settings taken from the locations that use a group.
type GroupOptions struct {
	// SendTimeout is grpc_send_timeout: bound on one socket write on the
	// group's connections (the largest of the locations using it).
	SendTimeout time.Duration
	// SocketKeepalive is grpc_socket_keepalive: TCP keepalive, with the
	// system's timers, on the group's connections (on if any location
	// using the group turns it on).
	SocketKeepalive bool
	// ReadBufferSize is grpc_buffer_size: the buffer the group's
	// connections read responses into (the largest of the locations using
	// the group); 0 keeps the codec's default.
	ReadBufferSize int
}

// NewGroup builds a group. Balancing methods and server parameters gproxy
// does not honour yet are errors naming FILE:LINE, so a configuration never
// silently balances differently from nginx.
func NewGroup(u *config.Upstream, set *Set, opt GroupOptions) (*Group, error) {
	if m := u.Balance.Method; m != "" && m != "round_robin" {
		return nil, fmt.Errorf("%q is not supported yet by gproxy in %s", m, pos(u.Balance.Pos, u.Pos))
	}
	g := &Group{Name: u.Name, Config: u}
	for i := range u.Servers {
		sv := &u.Servers[i]
		for _, unsupported := range []struct {
			set  bool
			name string
		}{
			{sv.Backup, "backup"},
			{sv.MaxConns > 0, "max_conns"},
			{sv.Resolve, "resolve"},
			{sv.Service != "", "service"},
		} {
			if unsupported.set {
				return nil, fmt.Errorf("server parameter %q is not supported yet by gproxy in %s", unsupported.name, pos(sv.Pos, u.Pos))
			}
		}
		addrs, network, err := resolve(sv.Address)
		if err != nil {
			return nil, fmt.Errorf("host not found in upstream %q: %v in %s", sv.Address, err, pos(sv.Pos, u.Pos))
		}
		w := sv.Weight
		if w <= 0 {
			w = 1
		}
		for _, a := range addrs {
			g.Peers = append(g.Peers, &Peer{
				Addr:        a,
				Network:     network,
				Weight:      w,
				Down:        sv.Down,
				Group:       g,
				Pool:        set.pool(u, network, a, opt),
				MaxFails:    sv.MaxFails,
				FailTimeout: sv.FailTimeout,
			})
		}
	}
	g.single = len(g.Peers) == 1
	g.picker.Store(newRRPicker(g.Peers))
	return g, nil
}

// Single reports whether the group has one peer: nginx then never marks it
// unavailable and never passes a request to a "next" server.
func (g *Group) Single() bool { return g.single }

// Pick chooses the peer for one stream: smooth weighted round robin, as
// nginx, over the servers neither marked down nor unavailable after
// max_fails failures. Once a peer's fail_timeout has passed, the next
// stream is its probe. While every peer is healthy it takes no lock and
// does not allocate. ErrNoPeer means every peer is down or unavailable
// (nginx's "no live upstreams").
func (g *Group) Pick(info *StreamInfo) (*Peer, error) {
	return g.pick(info, nil)
}

// PickNext chooses a peer for another attempt of a stream (nginx's
// grpc_next_upstream), skipping the peers already tried.
func (g *Group) PickNext(info *StreamInfo, tried []*Peer) (*Peer, error) {
	return g.pick(info, tried)
}

func (g *Group) pick(info *StreamInfo, tried []*Peer) (*Peer, error) {
	pk := g.picker.Load()
	if pk.recheck != 0 {
		var now time.Time
		if info != nil {
			now = info.Start
		}
		if now.IsZero() {
			now = g.now()
		}
		if now.UnixNano() >= pk.recheck {
			if p := g.probe(now, tried); p != nil {
				p.active.Add(1)
				p.requests.Add(1)
				return p, nil
			}
			pk = g.picker.Load()
		}
	}
	p := pk.pick(tried)
	if p == nil {
		return nil, ErrNoPeer
	}
	p.active.Add(1)
	p.requests.Add(1)
	return p, nil
}

// rrPicker is an immutable snapshot of one round of nginx's smooth weighted
// round robin over the available peers: the order is computed once, and
// picking is an atomic increment into it. A change of a peer's
// availability builds a new snapshot.
type rrPicker struct {
	order []*Peer
	next  atomic.Uint64
	// recheck is the earliest time (unix nanoseconds) at which an
	// unavailable peer's fail_timeout ends; 0 when none is unavailable.
	recheck int64
}

// maxRound caps the precomputed round; weights are reduced by their
// greatest common divisor first, which gives the same order.
const maxRound = 1 << 16

func newRRPicker(peers []*Peer) *rrPicker {
	pk := &rrPicker{}
	var live []*Peer
	for _, p := range peers {
		if p.Down {
			continue
		}
		if until := p.until.Load(); until != 0 {
			if pk.recheck == 0 || until < pk.recheck {
				pk.recheck = until
			}
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return pk
	}
	d := 0
	for _, p := range live {
		d = gcd(d, p.Weight)
	}
	total := 0
	w := make([]int, len(live))
	for i, p := range live {
		w[i] = p.Weight / d
		total += w[i]
	}
	if total > maxRound {
		total = maxRound
	}
	cur := make([]int, len(live))
	sum := 0
	for _, x := range w {
		sum += x
	}
	for n := 0; n < total; n++ {
		best := -1
		for i := range live {
			cur[i] += w[i]
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		pk.order = append(pk.order, live[best])
	}
	return pk
}

// pick takes the next peer of the round, skipping those in tried (a
// retry's exclusions: the rest of the round keeps its weights).
func (p *rrPicker) pick(tried []*Peer) *Peer {
	if len(p.order) == 0 {
		return nil
	}
	n := p.next.Add(1) - 1
	if len(tried) == 0 {
		return p.order[n%uint64(len(p.order))]
	}
	for i := range uint64(len(p.order)) {
		if q := p.order[(n+i)%uint64(len(p.order))]; !slices.Contains(tried, q) {
			return q
		}
	}
	return nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// resolve turns a server address into dialable addresses: an IP address
// stays as is, a name is resolved now (nginx resolves at load time and makes
// one peer per address).
func resolve(addr string) (addrs []string, network string, err error) {
	if len(addr) > 5 && addr[:5] == "unix:" {
		return []string{addr[5:]}, "unix", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", err
	}
	if net.ParseIP(host) != nil {
		return []string{net.JoinHostPort(host, port)}, "tcp", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, "", err
	}
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip, port))
	}
	return addrs, "tcp", nil
}

func pos(p, fallback config.Pos) string {
	if p.File == "" {
		p = fallback
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}
