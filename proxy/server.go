// Package proxy is gproxy's engine: it opens the listeners of the
// configuration, tells HTTP/2 from HTTP/1.1 on each connection, routes every
// HTTP/2 stream (virtual server, location, return/if) and bridges each
// grpc_pass stream to an upstream stream picked per stream from the
// location's group, with gRPC-native errors. Frames, flow control and
// limits live in proxy/h2; backends, balancing and connection pools in
// upstream; routing decisions in proxy/route.
package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/tlsconf"
	"github.com/gproxy/gproxy/proxy/access"
	"github.com/gproxy/gproxy/proxy/accesslog"
	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/proxy/limit"
	"github.com/gproxy/gproxy/proxy/route"
	"github.com/gproxy/gproxy/upstream"
	"go.uber.org/zap"
)

// Server runs one configuration, and later ones on Reload.
type Server struct {
	log   *zap.Logger
	pools *upstream.Set
	cur   atomic.Pointer[running]
	zones *limit.Zones // limit_req and limit_conn states, kept across reloads

	maxConns int64 // worker_connections; 0 = unlimited
	nconns   atomic.Int64
	freed    atomic.Int64 // slots drainIdle freed that no accept took yet
	// drainLogged is the unix second of drainIdle's last warning.
	drainLogged atomic.Int64
	connSeq     atomic.Uint64

	stats       serverStats
	methods     methodStats
	metricsOnce sync.Once
	metrics     http.Handler

	mu        sync.Mutex
	listeners []*listener
	retired   []*listener         // removed by reloads; their HTTP/1 servers may still run
	inherit   map[string]*os.File // listening sockets from the previous binary, by key
	conns     map[*clientConn]struct{}
	sniffing  map[net.Conn]time.Time // accepted, no preface yet: when (drainIdle)
	closing   bool
	done      chan struct{} // closed when the last connection ends after closing
	wg        sync.WaitGroup
}

// running is one immutable running configuration: read once per stream.
type running struct {
	cfg       *config.Config
	table     *route.Table
	groups    map[groupKey]*upstream.Group
	listeners map[string]*route.Listener // by network + " " + address
	logs      *accesslog.Set

	// locs holds what a stream routed to a location needs beyond the
	// route, resolved once here so the stream does one map lookup;
	// servers holds the access log of answers given at server level
	// (server `return`, no location matched).
	locs    map[*config.Location]locRun
	servers map[*config.Server]*accesslog.Logger

	// tlsServers holds the TLS side of every server; tlsConfigs the
	// crypto/tls configuration of each server on its ssl listeners.
	tlsServers map[*config.Server]*tlsconf.Server
	tlsConfigs map[tlsKey]*tls.Config
	// passGroups maps each grpc_pass without variables to its group.
	passGroups map[*config.GRPCPass]*upstream.Group
	// passTLS holds the grpc_ssl_* settings of each grpcs:// pass with
	// variables, whose TLS is set up per target (dynpass.go).
	passTLS map[*config.GRPCPass]*config.GRPCSettings
	pools   *upstream.Set // for groups made at run time (dynpass.go)
	dyn     dynamicGroups
}

// locRun is the running state of one location.
type locRun struct {
	group *upstream.Group // grpc_pass target; nil without grpc_pass
	// scheme is the :scheme sent upstream: "https" for grpcs://, as
	// nginx sends.
	scheme string
	log    *accesslog.Logger // nil when access_log is off there
	access *access.Phase     // nil when the location has no access phase
}

// loggerFor returns the access log of an answer given for srv at loc
// (nil loc: at server level). nil means nothing is logged.
func (rc *running) loggerFor(srv *config.Server, loc *route.Location) *accesslog.Logger {
	if loc != nil {
		return rc.locs[loc.Config].log
	}
	return rc.servers[srv]
}

// New builds the running configuration for cfg without opening sockets.
// Features gproxy cannot run yet are errors naming FILE:LINE.
func New(cfg *config.Config, log *zap.Logger) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		log:      log,
		pools:    upstream.NewSet(nil, upstreamLimits()),
		zones:    limit.NewZones(),
		conns:    make(map[*clientConn]struct{}),
		sniffing: make(map[net.Conn]time.Time),
		maxConns: int64(cfg.WorkerConnections),
	}
	rc, err := s.build(cfg, false)
	if err != nil {
		return nil, err
	}
	s.cur.Store(rc)
	s.methods.configure(cfg)
	return s, nil
}

// upstreamLimits are the codec limits of upstream connections.
func upstreamLimits() h2.Limits {
	l := h2.DefaultLimits()
	l.MaxRequests = 0
	l.StreamWindow = respAllowance // see call.go, Response flow control
	return l
}

// build makes the running configuration of cfg. Its access log Set is
// open on success; on error nothing stays open. With check, no access log
// is opened (rc.logs stays nil): the configuration is only judged.
func (s *Server) build(cfg *config.Config, check bool) (*running, error) {
	rc := &running{
		cfg:        cfg,
		groups:     make(map[groupKey]*upstream.Group),
		passGroups: make(map[*config.GRPCPass]*upstream.Group),
		passTLS:    make(map[*config.GRPCPass]*config.GRPCSettings),
		listeners:  make(map[string]*route.Listener),
		locs:       make(map[*config.Location]locRun),
		servers:    make(map[*config.Server]*accesslog.Logger),
		pools:      s.pools,
	}
	tbl, err := route.New(cfg.HTTP)
	if err != nil {
		return nil, err
	}
	rc.table = tbl
	for _, l := range tbl.Listeners() {
		rc.listeners[l.Network+" "+l.Address] = l
	}
	if err := rc.buildTLS(); err != nil {
		return nil, err
	}
	if !check {
		if rc.logs, err = accesslog.New(cfg.HTTP, tbl, s.log); err != nil {
			return nil, err
		}
	}
	if err := s.buildGroups(rc, check); err != nil {
		if rc.logs != nil {
			rc.logs.Close()
		}
		return nil, err
	}
	s.noteRSAFallback()
	return rc, nil
}

// stopGroups ends the health checks and re-resolution of rc's groups, once
// rc no longer takes new streams.
func (rc *running) stopGroups() {
	for _, g := range rc.groups {
		g.Stop()
	}
	rc.stopDynamic()
}

// buildGroups makes the upstream groups of rc and resolves each server's
// and location's running state. Unless check (gproxy -t), it starts the
// groups' health checks and DNS re-resolution.
func (s *Server) buildGroups(rc *running, check bool) error {
	h := rc.cfg.HTTP
	if h == nil {
		return nil
	}
	opts, order, err := groupOptions(h)
	if err != nil {
		return err
	}
	for _, k := range order {
		opts[k].Log = s.log
		g, err := upstream.NewGroup(k.u, s.pools, *opts[k])
		if err != nil {
			rc.stopGroups()
			return err
		}
		rc.groups[k] = g
	}
	var zones access.Zones
	zones.Req, zones.Conn = s.zones.Bind(h.LimitReqZones, h.LimitConnZones)
	var walk func([]*config.Location) error
	walk = func(locs []*config.Location) error {
		for _, l := range locs {
			lr := locRun{log: rc.logs.For(&l.Settings)}
			for _, gp := range locationPasses(l) {
				if gp.Upstream != nil {
					rc.passGroups[gp] = rc.groups[groupKeyOf(l, gp)]
				} else {
					// a target with variables may name grpcs:// at run time
					rc.passTLS[gp] = &l.Settings.GRPC
				}
			}
			if l.GRPCPass != nil && l.GRPCPass.Upstream != nil {
				lr.group = rc.passGroups[l.GRPCPass]
				lr.scheme = schemeOf(l.GRPCPass.Scheme)
			}
			ph, err := access.New(&l.Settings, l.LimitExcept, rc.table, zones, s.log)
			if err != nil {
				return err
			}
			lr.access = ph
			rc.locs[l] = lr
			if err := walk(l.Locations); err != nil {
				return err
			}
		}
		return nil
	}
	for _, srv := range h.Servers {
		rc.servers[srv] = rc.logs.For(&srv.Settings)
		if err := walk(srv.Locations); err != nil {
			rc.stopGroups()
			return err
		}
	}
	// Health checks and DNS re-resolution run while the configuration
	// does (stopGroups ends them).
	if !check {
		for _, g := range rc.groups {
			g.Start()
		}
	}
	return nil
}

// groupOptions collects the options of each upstream's group from the
// locations that pass to it: the largest grpc_send_timeout and
// grpc_buffer_size of those locations, and grpc_socket_keepalive if any
// of them asks for it. order lists the upstreams in the order groups are
// built: those passed to first, then the unused ones (still checked, as
// nginx does).
func groupOptions(h *config.HTTP) (opts map[groupKey]*upstream.GroupOptions, order []groupKey, err error) {
	opts = map[groupKey]*upstream.GroupOptions{}
	used := map[*config.Upstream]bool{}
	var walk func([]*config.Location) error
	walk = func(locs []*config.Location) error {
		for _, l := range locs {
			for _, gp := range locationPasses(l) {
				if gp.Upstream == nil {
					if gp.Scheme == "grpcs" {
						// Loaded again per target at run time
						// (dynpass.go); checked here.
						if _, err := tlsconf.NewUpstream(&l.Settings.GRPC, ""); err != nil {
							return err
						}
					}
					continue // resolved per call (dynpass.go)
				}
				k := groupKeyOf(l, gp)
				used[gp.Upstream] = true
				o := opts[k]
				if o == nil {
					o = &upstream.GroupOptions{}
					if gp.Scheme == "grpcs" {
						ut, err := tlsconf.NewUpstream(&l.Settings.GRPC, gp.Upstream.Name)
						if err != nil {
							return err
						}
						o.TLS, o.TLSKey = ut.Config, ut.Key
					}
					opts[k] = o
					order = append(order, k)
				}
				g := &l.Settings.GRPC
				o.SendTimeout = max(o.SendTimeout, g.SendTimeout)
				o.SocketKeepalive = o.SocketKeepalive || g.SocketKeepalive
				o.ReadBufferSize = max(o.ReadBufferSize, g.BufferSize)
				for _, hc := range l.HealthChecks {
					o.HealthChecks = append(o.HealthChecks, upstream.HealthCheck{
						HealthCheck: hc, ConnectTimeout: g.ConnectTimeout, ReadTimeout: g.ReadTimeout})
				}
			}
			if err := walk(l.Locations); err != nil {
				return err
			}
		}
		return nil
	}
	for _, srv := range h.Servers {
		if err := walk(srv.Locations); err != nil {
			return nil, nil, err
		}
	}
	for _, u := range h.Upstreams {
		if !used[u] {
			k := groupKey{u: u}
			opts[k] = &upstream.GroupOptions{}
			order = append(order, k)
		}
	}
	return opts, order, nil
}

// groupKey names a group: an upstream, and for grpcs:// the TLS settings
// of the locations passing to it (tlsconf.Upstream.Key), so locations
// with different grpc_ssl_* settings get connections of their own.
type groupKey struct {
	u   *config.Upstream
	tls string // "" for grpc://
}

// schemeOf is the :scheme a pass sends upstream.
func schemeOf(scheme string) string {
	if scheme == "grpcs" {
		return "https"
	}
	return "http"
}

// groupKeyOf is the group of pass gp of location l.
func groupKeyOf(l *config.Location, gp *config.GRPCPass) groupKey {
	k := groupKey{u: gp.Upstream}
	if gp.Scheme == "grpcs" {
		k.tls = "grpcs " + tlsconf.UpstreamKey(&l.Settings.GRPC, gp.Upstream.Name)
	}
	return k
}

// Start opens every listener and serves in the background. It returns once
// all are listening, or the first error (nothing stays open then).
func (s *Server) Start() error {
	rc := s.cur.Load()
	var lns []*listener
	for _, l := range rc.table.Listeners() {
		key := l.Network + " " + l.Address
		ln, err := listenOn(l, s.inherit[key])
		delete(s.inherit, key)
		if err != nil {
			for _, x := range lns {
				x.ln.Close()
			}
			return err
		}
		if l.SSL {
			ln.tlsConf = s.tlsConfig(ln)
		}
		lns = append(lns, ln)
	}
	// Inherited sockets the configuration no longer names close, as
	// nginx closes them after a binary upgrade.
	for key, f := range s.inherit {
		f.Close()
		delete(s.inherit, key)
	}
	s.mu.Lock()
	s.listeners = lns
	s.mu.Unlock()
	for _, ln := range lns {
		s.wg.Add(1)
		go s.acceptLoop(ln)
	}
	startMemoryTrim()
	return nil
}

// Addrs returns the bound listener addresses.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.ln.Addr()
	}
	return out
}

// ReopenLogs writes what the access logs have buffered and opens their
// files again by path (SIGUSR1, after logrotate renamed them).
func (s *Server) ReopenLogs() error {
	return s.cur.Load().logs.Reopen()
}

// Shutdown stops accepting, sends GOAWAY on every client connection and
// waits for their streams to finish, or ctx to end (then it closes the
// rest).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	conns := s.stopAcceptingLocked()
	if s.done == nil {
		s.done = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.done)
		}
	}
	done := s.done
	s.mu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
	for _, l := range s.allListeners() {
		l.stopHTTP1(ctx)
	}
	select {
	case <-done:
		s.wg.Wait()
		s.cur.Load().stopGroups()
		s.pools.Close()
		s.cur.Load().logs.Close() // after the last stream logged: flushes
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes listeners, client connections and upstream connections at
// once.
func (s *Server) Close() error {
	s.mu.Lock()
	conns := s.stopAcceptingLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	for _, l := range s.allListeners() {
		l.stopHTTP1(nil)
	}
	s.cur.Load().stopGroups()
	s.pools.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	s.cur.Load().logs.Close()
	return nil
}

// allListeners is the open listeners and those reloads removed.
func (s *Server) allListeners() []*listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(slices.Clip(s.listeners), s.retired...)
}

// stopAcceptingLocked closes the listeners and returns the client
// connections open now; s.mu is held.
func (s *Server) stopAcceptingLocked() []*clientConn {
	s.closing = true
	for _, l := range s.listeners {
		l.ln.Close()
	}
	conns := make([]*clientConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// track registers a client connection; false when the server is closing.
func (s *Server) track(c *clientConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *clientConn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.done != nil && len(s.conns) == 0 {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
	}
	s.mu.Unlock()
}

// Check builds the running configuration of cfg as New does, then
// releases it, opening no listener, log file or backend connection:
// `gproxy -t` calls it so that every configuration gproxy would refuse to
// start with fails the test too, with the same message (one predicate,
// not a copy of it).
func Check(cfg *config.Config) error {
	s := &Server{log: zap.NewNop(), pools: upstream.NewSet(nil, upstreamLimits()), conns: map[*clientConn]struct{}{}, zones: limit.NewZones()}
	defer s.pools.Close()
	_, err := s.build(cfg, true)
	return err
}

// locationPasses lists the grpc_pass targets of a location: its own and
// those inside its if blocks.
func locationPasses(l *config.Location) []*config.GRPCPass {
	var out []*config.GRPCPass
	if l.GRPCPass != nil {
		out = append(out, l.GRPCPass)
	}
	for _, st := range l.Rewrite {
		if st.If != nil && st.If.GRPCPass != nil {
			out = append(out, st.If.GRPCPass)
		}
	}
	return out
}
