package upstream

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/upstream/healthcheck"
	dns "github.com/gproxy/gproxy/upstream/resolve"
)

// What changes a group's peers while it runs: active health checks
// (NGINX Plus health_check type=grpc), DNS re-resolution of servers marked
// resolve (nginx 1.27.3+), both started by Group.Start and stopped by
// Group.Stop. Each ends in the group's own state changes (SetHealthy,
// SetPeers), so every picker sees them through one rebuild.

// HealthCheck is one health_check of a location that passes to the group,
// with the timeouts of that location.
type HealthCheck struct {
	config.HealthCheck
	// ConnectTimeout and ReadTimeout are the location's
	// grpc_connect_timeout and grpc_read_timeout, which bound a check as
	// Plus bounds it.
	ConnectTimeout, ReadTimeout time.Duration
}

// dynamic is the running machinery of a group's health checks and name
// resolution.
type dynamic struct {
	// mandatory: a health_check with mandatory: new peers start in the
	// "checking" state (unhealthy) until their first check passes.
	mandatory bool

	mu sync.Mutex // serializes verdicts (and the SetHealthy they end in)
	// failing holds, per peer, a bit per checker that finds it
	// unhealthy; the peer is healthy when no bit is set.
	failing  map[*Peer]uint64
	checkers []*healthcheck.Checker

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

// maxHealthChecks bounds the health_check directives of one group (one bit
// each in dynamic.failing).
const maxHealthChecks = 64

// Start begins the group's health checks and DNS re-resolution, if it has
// any. Servers marked resolve get their first addresses before Start
// returns, or after resolver_timeout at most (they have no peers until
// then). Stop ends it all; a group that is no longer used must be stopped.
func (g *Group) Start() {
	d := &g.dyn
	if d.started {
		return
	}
	d.started = true
	d.mandatory = g.opt.mandatory()
	d.failing = map[*Peer]uint64{}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	g.startResolve(ctx)
	g.startHealthChecks()
}

// Stop ends the group's health checks and re-resolution and waits for
// them. Peers keep their last state; streams in flight are not touched.
func (g *Group) Stop() {
	d := &g.dyn
	if !d.started || d.cancel == nil {
		return
	}
	d.cancel()
	for _, c := range d.checkers {
		c.Stop()
	}
	d.wg.Wait()
}

func (g *Group) logger() *zap.Logger {
	if g.opt.Log != nil {
		return g.opt.Log
	}
	return zap.NewNop()
}

// startHealthChecks starts a checker per health_check of the locations
// that pass to the group.
func (g *Group) startHealthChecks() {
	hcs := g.opt.HealthChecks
	if len(hcs) > maxHealthChecks {
		hcs = hcs[:maxHealthChecks]
	}
	d := &g.dyn
	for i, hc := range hcs {
		bit := uint64(1) << i
		c := &healthcheck.Checker{
			Dial:           g.checkDialer(),
			Secure:         g.opt.TLS != nil,
			Config:         hc.HealthCheck,
			ConnectTimeout: hc.ConnectTimeout,
			ReadTimeout:    hc.ReadTimeout,
			Targets:        g.checkTargets,
			// A peer's first state in the checker is the one
			// startChecking gives it in the group, whichever runs first.
			Initial: func(t healthcheck.Target) bool {
				return !hc.Mandatory || (hc.Persistent && g.set.healthyBefore(g.Name, t.Addr))
			},
			Report: func(t healthcheck.Target, healthy bool, cause error) {
				g.verdict(t.Key.(*Peer), bit, healthy, cause)
			},
		}
		d.checkers = append(d.checkers, c)
	}
	if len(hcs) > 0 && !d.mandatory {
		// Peers start healthy; a later mandatory persistent check
		// may rely on that.
		for _, p := range g.Peers() {
			g.set.rememberHealthOnce(g.Name, p.Addr, p.Healthy())
		}
	}
	if d.mandatory {
		// Every peer starts "checking", except, with persistent, one
		// that was healthy before the reload.
		for _, p := range g.Peers() {
			g.startChecking(p, hcs)
		}
	}
	for _, c := range d.checkers {
		c.Start()
	}
}

// checkDialer is how checks connect: like the group's connections, a TLS
// client of grpcs:// (on a connection of the check's own), or plain TCP.
func (g *Group) checkDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	if g.opt.TLS == nil {
		return nil
	}
	return tlsDialer(dialer(false), g.opt.TLS)
}

// startChecking puts a new peer in the "checking" state of each mandatory
// check (persistent ones keep a state remembered across reloads).
func (g *Group) startChecking(p *Peer, hcs []HealthCheck) {
	d := &g.dyn
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, hc := range hcs {
		if !hc.Mandatory {
			continue
		}
		if hc.Persistent && g.set.healthyBefore(g.Name, p.Addr) {
			continue
		}
		d.failing[p] |= 1 << i
	}
	g.SetHealthy(p, d.failing[p] == 0)
}

// checkTargets lists the peers the checks look at: every peer not marked
// down.
func (g *Group) checkTargets() []healthcheck.Target {
	peers := g.Peers()
	out := make([]healthcheck.Target, 0, len(peers))
	for _, p := range peers {
		if !p.Down {
			out = append(out, healthcheck.Target{Key: p, Network: p.Network, Addr: p.Addr})
		}
	}
	return out
}

// verdict records one checker's change of mind about p.
func (g *Group) verdict(p *Peer, bit uint64, healthy bool, cause error) {
	d := &g.dyn
	d.mu.Lock()
	defer d.mu.Unlock()
	if healthy {
		d.failing[p] &^= bit
	} else {
		d.failing[p] |= bit
	}
	ok := d.failing[p] == 0
	if ok == p.Healthy() && ok {
		return
	}
	g.set.rememberHealth(g.Name, p.Addr, ok)
	if ok {
		// A passed check proves the server up: passive failures
		// (max_fails) from while it was down no longer hold it back.
		g.mu.Lock()
		p.fails.Store(0)
		p.until.Store(0)
		g.mu.Unlock()
	}
	g.SetHealthy(p, ok)
	// NGINX Plus's shape: the failed check's error, then the change.
	where := `, health check "" of peer ` + p.Addr + ` in upstream "` + g.Name + `"`
	if ok {
		g.logger().Info("peer is healthy" + where)
		return
	}
	action := "checking"
	var ce *healthcheck.CheckError
	if errors.As(cause, &ce) {
		g.logger().Error(ce.Error() + where)
		action = ce.Action
	}
	g.logger().Warn("peer is unhealthy while " + action + where)
}

// startResolve starts a Watch per server line marked resolve, and waits
// for their first answers (at most resolver_timeout).
func (g *Group) startResolve(ctx context.Context) {
	u := g.Config
	res := u.Resolver
	timeout := u.ResolverTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var first sync.WaitGroup
	for i := range u.Servers {
		sv := &u.Servers[i]
		if !sv.Resolve || res == nil {
			continue
		}
		host, port, _ := net.SplitHostPort(sv.Address)
		w := &dns.Watch{
			Resolver: &dns.Resolver{Servers: res.Addresses, Timeout: timeout, Valid: res.Valid, IPv6: res.IPv6},
			Host:     host, Port: port, Service: sv.Service,
			Update: func(addrs []string) { g.resolved(sv, addrs) },
			Error: func(err error) {
				g.logger().Error(strings.TrimSpace(err.Error()) + ` while resolving server "` + sv.Address + `" of upstream "` + g.Name + `"`)
			},
		}
		first.Add(1)
		g.dyn.wg.Add(1)
		go func() {
			defer g.dyn.wg.Done()
			rctx, cancel := context.WithTimeout(ctx, timeout)
			next := w.Resolve(rctx)
			cancel()
			first.Done()
			t := time.NewTimer(next)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			w.Run(ctx)
		}()
	}
	first.Wait()
}

// resolved installs the addresses DNS gave for server line sv: peers that
// remain keep their state and streams; new ones start in the "checking"
// state of mandatory health checks.
func (g *Group) resolved(sv *config.UpstreamServer, addrs []string) {
	before := map[*Peer]bool{}
	for _, p := range g.Peers() {
		before[p] = true
	}
	g.SetPeers(sv, "tcp", addrs)
	now := map[*Peer]bool{}
	for _, p := range g.Peers() {
		now[p] = true
		if g.dyn.mandatory && !before[p] {
			g.startChecking(p, g.opt.HealthChecks)
		}
	}
	// Forget the verdicts about peers that left (DNS churn must not grow
	// the map).
	d := &g.dyn
	d.mu.Lock()
	for p := range d.failing {
		if !now[p] {
			delete(d.failing, p)
		}
	}
	d.mu.Unlock()
}

// mandatory reports whether a health_check of the group is mandatory: new
// peers then start in the "checking" state.
func (o *GroupOptions) mandatory() bool {
	for _, hc := range o.HealthChecks {
		if hc.Mandatory {
			return true
		}
	}
	return false
}

// healthMemory remembers, across reloads, which peers passed their health
// checks (health_check mandatory persistent).
type healthMemory struct {
	mu sync.Mutex
	ok map[string]bool // upstream name + " " + address
}

func (s *Set) rememberHealth(group, addr string, ok bool) {
	m := &s.health
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ok == nil {
		m.ok = map[string]bool{}
	}
	m.ok[group+" "+addr] = ok
}

// rememberHealthOnce records ok for a peer with no record yet.
func (s *Set) rememberHealthOnce(group, addr string, ok bool) {
	m := &s.health
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ok == nil {
		m.ok = map[string]bool{}
	}
	if _, seen := m.ok[group+" "+addr]; !seen {
		m.ok[group+" "+addr] = ok
	}
}

// forgetHealth drops what was remembered of a peer that left its group.
func (s *Set) forgetHealth(group, addr string) {
	m := &s.health
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.ok, group+" "+addr)
}

func (s *Set) healthyBefore(group, addr string) bool {
	m := &s.health
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ok[group+" "+addr]
}
