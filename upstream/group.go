// Package upstream owns backends: groups built from `upstream {}` blocks (or
// the implicit group of `grpc_pass host:port`), the balancing methods, the
// state of each server, and a pool of multiplexed HTTP/2 connections per
// server. It knows nothing about client connections: the engine asks a
// Group for a Peer per stream, opens the stream through the Peer's Pool,
// and reports how it ended with Peer.Done, which feeds nginx's passive
// health (max_fails, fail_timeout; see health.go). Retrying on another
// peer (grpc_next_upstream) is the engine's: it asks again with PickNext.
//
// Each balancing method is a picker (picker.go): an immutable snapshot of
// the peers' state, rebuilt by Group.rebuild whenever that state changes,
// so that a pick takes no lock. What changes the state: passive failures
// (Peer.Done), active health checks (Group.SetHealthy), outlier ejection
// (Group.Eject) and DNS re-resolution (Group.SetPeers).
package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gproxy/gproxy/parser/config"
)

// ErrNoPeer is returned by Pick when every server of the group is down.
var ErrNoPeer = errors.New("no live upstreams")

// StreamInfo describes the stream a peer is picked for; balancing methods
// that hash or count read it.
type StreamInfo struct {
	Method, Path, Authority string
	RemoteAddr              net.Addr // the client's address (ip_hash)
	Start                   time.Time
	// Key is the value of the group's `hash` key for this stream, computed
	// by the caller with the request's variables (Group.HashKey tells
	// which); the picker only reads it. Empty: nginx falls back to round
	// robin.
	Key []byte
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
	// HeaderTime is the time from the pick to the response header; 0
	// when none arrived (least_time header).
	HeaderTime time.Duration
	// Failed marks an unsuccessful attempt as nginx counts it for
	// max_fails: an error or timeout while connecting, sending the request
	// or reading the response header, an invalid response header, and a
	// listed http_5xx/http_429 (grpc_next_upstream). A gRPC status, a
	// client cancel, an error after the response header are not failures.
	Failed bool
}

// Group is one upstream group of the running configuration.
//
// Its peers and their state (configured down, passive failures, the
// active health flag, outlier ejection) change under mu; every change
// ends in rebuild, which makes a new immutable snapshot of the pickers and
// stores it atomically. Pick reads the snapshot and takes no lock.
type Group struct {
	Name   string
	Config *config.Upstream

	snap atomic.Pointer[snapshot]

	// mu serializes changes of peer state and snapshot rebuilds; the
	// per-stream path never takes it while no peer waits for a recheck.
	mu sync.Mutex
	// peers is every peer in configuration order (SetPeers replaces a
	// server's share of it); read by rebuild under mu.
	peers []*Peer
	// build makes the pickers of the balancing method.
	build pickerBuilder
	set   *Set
	opt   GroupOptions
	// clock is time.Now; tests replace it.
	clock func() time.Time

	dyn dynamic // health checks and re-resolution (dynamic.go)
}

// Peer is one upstream server address.
type Peer struct {
	Addr    string // "127.0.0.1:50051" or a unix socket path
	Network string // "tcp" or "unix"
	Weight  int
	Down    bool // the server's `down`: never picked
	Backup  bool // the server's `backup`: picked only when no primary peer is
	Group   *Group
	Pool    *Pool
	// Server is the `server` line the peer comes from (an element of
	// Group.Config.Servers); a name that resolves to several addresses
	// makes a peer per address, all with the same Server.
	Server *config.UpstreamServer

	// MaxFails and FailTimeout are the server's max_fails= and
	// fail_timeout= (0 max fails: never marked unavailable).
	MaxFails    int
	FailTimeout time.Duration
	// MaxConns is the server's max_conns=: the most streams in progress
	// on the peer at once (0: unlimited). A peer at its limit is skipped
	// as nginx skips it; the count never exceeds it.
	MaxConns int64

	active   atomic.Int64 // streams picked and not yet Done
	requests atomic.Int64
	failures atomic.Int64

	// unhealthy is set by an active health check (Group.SetHealthy).
	unhealthy atomic.Bool
	// ejected is the unix ns until which outlier ejection keeps the peer
	// out (Group.Eject); 0 when not ejected.
	ejected atomic.Int64
	// removed is set when SetPeers drops the peer from its group: streams
	// in flight on it finish, no new ones are picked for it.
	removed atomic.Bool

	health
	lat     latency      // least_time (leasttime.go)
	outlier outlierState // gproxy_outlier_detection (outlier.go)
}

// Active returns the number of streams in progress on the peer.
func (p *Peer) Active() int64 { return p.active.Load() }

// Requests returns the number of streams ever picked for the peer.
func (p *Peer) Requests() int64 { return p.requests.Load() }

// Failures returns the number of unsuccessful attempts ever reported.
func (p *Peer) Failures() int64 { return p.failures.Load() }

// Healthy reports the active health flag (true unless SetHealthy said
// otherwise).
func (p *Peer) Healthy() bool { return !p.unhealthy.Load() }

// Ejected reports whether outlier ejection keeps the peer out now.
func (p *Peer) Ejected() bool { return p.ejected.Load() != 0 }

// acquire takes one of the peer's stream slots: false when max_conns
// streams are in progress. It never lets the count pass max_conns.
func (p *Peer) acquire() bool {
	if p.MaxConns <= 0 {
		p.active.Add(1)
		return true
	}
	for {
		n := p.active.Load()
		if n >= p.MaxConns {
			return false
		}
		if p.active.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// full reports whether the peer is at max_conns now.
func (p *Peer) full() bool { return p.MaxConns > 0 && p.active.Load() >= p.MaxConns }

// Done reports the end of a stream picked with Group.Pick or PickNext. It
// must be called exactly once per pick. A successful stream on a healthy
// peer costs two atomic operations; failures feed passive health (see
// health.go).
func (p *Peer) Done(o Outcome) {
	p.active.Add(-1)
	if p.Pool != nil && p.Pool.stats != nil {
		p.Pool.stats.observe(o)
	}
	if u := p.Group.Config; u.Balance.Method == "least_time" {
		p.observeLatency(&u.Balance, o)
	}
	if od := p.Group.Config.Outlier; od != nil {
		p.observeOutlier(od, o)
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
	// TLS is the client configuration of grpcs:// (nil for grpc://):
	// every connection of the group is a TLS client with it. TLSKey
	// identifies it, so pools of equal settings are shared across reloads.
	TLS    *tls.Config
	TLSKey string
	// HealthChecks are the health_check directives of the locations
	// using the group (dynamic.go).
	HealthChecks []HealthCheck
	// Log is the error log of health checks and re-resolution; nil
	// logs nothing.
	Log *zap.Logger
}

// NewGroup builds a group: a peer per address of each server line (a name
// is resolved now, as nginx resolves at load), and the pickers of its
// balancing method. The parser has checked the configuration; what it
// lets through runs, so an error here is only a name that stopped
// resolving since, naming FILE:LINE.
func NewGroup(u *config.Upstream, set *Set, opt GroupOptions) (*Group, error) {
	m := u.Balance.Method
	if m == "" {
		m = "round_robin"
	}
	build, ok := builders[m]
	if !ok {
		return nil, fmt.Errorf("%q is not supported by gproxy in %s", u.Balance.Method, pos(u.Balance.Pos, u.Pos))
	}
	g := &Group{Name: u.Name, Config: u, build: build, set: set, opt: opt}
	var peers []*Peer
	for i := range u.Servers {
		sv := &u.Servers[i]
		if sv.Resolve {
			continue // its peers come from DNS once the group starts (dynamic.go)
		}
		addrs, network, err := resolve(sv.Address)
		if err != nil {
			return nil, fmt.Errorf("host not found in upstream %q: %v in %s", sv.Address, err, pos(sv.Pos, u.Pos))
		}
		for _, a := range addrs {
			peers = append(peers, g.newPeer(sv, network, a))
		}
	}
	g.mu.Lock()
	g.peers = peers
	g.rebuild()
	g.mu.Unlock()
	return g, nil
}

// newPeer makes the peer of address addr of server line sv.
func (g *Group) newPeer(sv *config.UpstreamServer, network, addr string) *Peer {
	w := sv.Weight
	if w <= 0 {
		w = 1
	}
	p := &Peer{
		Addr:        addr,
		Network:     network,
		Weight:      w,
		Down:        sv.Down,
		Backup:      sv.Backup,
		Group:       g,
		Pool:        g.set.pool(g.Config, network, addr, g.opt),
		Server:      sv,
		MaxFails:    sv.MaxFails,
		FailTimeout: sv.FailTimeout,
		MaxConns:    int64(sv.MaxConns),
	}
	// A mandatory health check holds a new peer back until it passes.
	p.unhealthy.Store(g.opt.mandatory())
	return p
}

// HashKey returns the key template of a `hash` group, whose value the
// caller puts in StreamInfo.Key for each stream; nil for other methods.
func (g *Group) HashKey() *config.Template {
	if g.Config.Balance.Method != "hash" {
		return nil
	}
	return &g.Config.Balance.Key
}

// Peers returns the group's peers now, in configuration order. The slice
// must not be modified.
func (g *Group) Peers() []*Peer { return g.snap.Load().peers }

// Single reports whether the group has one peer: nginx then never marks it
// unavailable and never passes a request to a "next" server.
func (g *Group) Single() bool { return g.snap.Load().single }

// Tries is nginx's peer.tries: how many peers one stream may be tried on
// (every peer not marked down, backups included).
func (g *Group) Tries() int { return g.snap.Load().tries }

// Pick chooses the peer for one stream with the group's balancing method,
// over the peers that are not down, not unavailable after max_fails
// failures, healthy, not ejected, and below max_conns; backup peers only
// when no primary peer can take it. Once a peer's fail_timeout has
// passed, the next stream is its probe. While no peer waits for such a
// recheck it takes no lock and does not allocate. ErrNoPeer is nginx's
// "no live upstreams".
func (g *Group) Pick(info *StreamInfo) (*Peer, error) {
	return g.pick(info, nil)
}

// PickNext chooses a peer for another attempt of a stream (nginx's
// grpc_next_upstream), skipping the peers already tried. Hash methods
// continue the stream's rehash sequence where Pick left it, as nginx does.
func (g *Group) PickNext(info *StreamInfo, tried []*Peer) (*Peer, error) {
	return g.pick(info, tried)
}

func (g *Group) pick(info *StreamInfo, tried []*Peer) (*Peer, error) {
	s := g.snap.Load()
	if s.recheck != 0 {
		var now time.Time
		if info != nil {
			now = info.Start
		}
		if now.IsZero() {
			now = g.now()
		}
		if now.UnixNano() >= s.recheck {
			if p := g.recheck(now, tried); p != nil {
				p.requests.Add(1)
				return p, nil
			}
			s = g.snap.Load()
		}
	}
	if info == nil {
		info = &StreamInfo{}
	}
	p := s.primary.pick(info, tried)
	if p == nil && s.backup != nil {
		p = s.backup.pick(info, tried)
	}
	if p == nil {
		return nil, ErrNoPeer
	}
	p.requests.Add(1)
	return p, nil
}

// SetHealthy records the verdict of an active health check on p (a peer
// of g): a peer that is not healthy leaves every picker until a later
// SetHealthy(p, true). Peers start healthy. Passive failure counting
// (max_fails) goes on independently.
func (g *Group) SetHealthy(p *Peer, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p.unhealthy.Load() == !ok {
		return
	}
	p.unhealthy.Store(!ok)
	g.rebuild()
}

// Eject takes p (a peer of g) out of every picker until the time until
// (outlier ejection); the peer comes back by itself then, on the first
// pick after it. A zero until brings it back at once.
func (g *Group) Eject(p *Peer, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var t int64
	if !until.IsZero() {
		t = until.UnixNano()
	}
	if p.ejected.Load() == t {
		return
	}
	p.ejected.Store(t)
	if t != 0 {
		p.Stats().Ejected()
	}
	g.rebuild()
}

// SetPeers makes the peers of server line sv (a pointer into
// g.Config.Servers) one per address in addrs ("ip:port"; network "tcp"
// or "unix"), as a DNS re-resolution found them. Peers whose address
// remains are kept with their state and connections; new ones start
// healthy; peers that leave are marked removed and picked no more, while
// their streams in flight finish, then their pool's connections close
// (Set.release).
func (g *Group) SetPeers(sv *config.UpstreamServer, network string, addrs []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	keep := make(map[string]*Peer)
	for _, p := range g.peers {
		if p.Server != sv {
			continue
		}
		if p.Network == network && slices.Contains(addrs, p.Addr) {
			keep[p.Addr] = p
		} else if !p.removed.Swap(true) {
			g.set.release(p.Pool, g.Name)
		}
	}
	var out []*Peer
	placed := false
	for _, p := range g.peers {
		if p.Server != sv {
			out = append(out, p)
		} else if !placed {
			// The server's peers stay where its line is.
			placed = true
			out = append(out, g.peersOf(sv, network, addrs, keep)...)
		}
	}
	if !placed {
		out = append(out, g.peersOf(sv, network, addrs, keep)...)
	}
	g.peers = out
	g.rebuild()
}

// peersOf lists the peers of sv for addrs, reusing those in keep.
func (g *Group) peersOf(sv *config.UpstreamServer, network string, addrs []string, keep map[string]*Peer) []*Peer {
	var ps []*Peer
	for _, a := range addrs {
		if p := keep[a]; p != nil {
			ps = append(ps, p)
			delete(keep, a)
			continue
		}
		ps = append(ps, g.newPeer(sv, network, a))
	}
	return ps
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
