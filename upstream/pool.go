package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/h2"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// initialMaxFrameSize is SETTINGS_MAX_FRAME_SIZE's initial value (RFC 9113
// 6.5.2); the codec caps frames at the server's actual setting.
const initialMaxFrameSize = 1 << 14

// DialFunc opens a connection to an upstream server. Every upstream
// connection is made through one, so TLS (grpcs://) can wrap it later.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Set holds the connection pools of all groups, keyed by upstream name and
// address, so a reload that keeps an upstream keeps its connections.
type Set struct {
	dial DialFunc // nil: a net.Dialer per pool, with its keepalive setting
	lim  h2.Limits

	mu    sync.Mutex
	pools map[poolKey]*Pool
	// gen counts configuration builds (NewGeneration); each pool records
	// the last one that asked for it, so DrainUnused can let go of pools
	// a new configuration no longer names. replaced holds pools that a
	// build replaced by one with other settings, for the same reason.
	gen      uint64
	replaced []*Pool

	// health remembers peers' health across reloads (dynamic.go).
	health healthMemory
}

type poolKey struct{ upstream, network, addr, tls string }

// NewSet makes an empty set. dial nil means a plain net.Dialer; lim are the
// codec limits of upstream connections (IdleTimeout, MaxRequests and
// WriteTimeout are then set per upstream).
func NewSet(dial DialFunc, lim h2.Limits) *Set {
	return &Set{dial: dial, lim: lim, pools: make(map[poolKey]*Pool)}
}

// dialer is the plain TCP dialer. Go turns TCP keepalive on by default;
// nginx leaves it off unless grpc_socket_keepalive is on, and then uses
// the system's timers.
func dialer(keepalive bool) DialFunc {
	d := net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: keepalive, Idle: -1, Interval: -1, Count: -1}}
	if !keepalive {
		d.KeepAlive = -1
	}
	return d.DialContext
}

func (s *Set) pool(u *config.Upstream, network, addr string, opt GroupOptions) *Pool {
	lim := s.lim
	lim.IdleTimeout = u.KeepaliveTimeout
	if lim.IdleTimeout == 0 {
		lim.IdleTimeout = 60 * time.Second
	}
	// keepalive_requests bounds a cached connection in nginx; without
	// `keepalive` nginx caches none, and gproxy's connections are
	// multiplexed, so the limit applies only when keepalive is set.
	lim.MaxRequests = 0
	if u.Keepalive > 0 {
		lim.MaxRequests = u.KeepaliveRequests
	} else {
		// Without `keepalive` nginx keeps no idle connection: gproxy's
		// are shared by the streams open together, then closed.
		lim.CloseIdle = true
	}
	// DATA towards the server goes in frames as large as the protocol's
	// default SETTINGS_MAX_FRAME_SIZE, as nginx's grpc module sends up to
	// the server's frame size: http2_chunk_size (8k) is about what clients
	// get, and halving the frames only adds frame headers and work.
	lim.ChunkSize = initialMaxFrameSize
	if opt.SendTimeout > 0 {
		lim.WriteTimeout = opt.SendTimeout
	}
	if opt.ReadBufferSize > 0 {
		lim.ReadBufferSize = opt.ReadBufferSize
		// The response header must fit grpc_buffer_size in nginx: a
		// larger buffer takes larger headers.
		lim.MaxHeaderListSize = max(lim.MaxHeaderListSize, uint32(opt.ReadBufferSize))
	}
	if lim.PingInterval == 0 {
		// A call whose backend has been silent for this long gets a PING
		// (nginx sends none). Not sooner: gRPC servers refuse PINGs more
		// often than every 5 minutes by default (grpc-go's keepalive
		// EnforcementPolicy.MinTime) and close the connection, open calls
		// with it, after three. The answer may take gRPC's default
		// keepalive timeout, 20 s.
		lim.PingInterval, lim.PingTimeout = 5*time.Minute, 20*time.Second
	}
	k := poolKey{u.Name, network, addr, opt.TLSKey}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pools[k]
	if p == nil || p.lim != lim || p.keepalive != opt.SocketKeepalive || p.maxAge != u.KeepaliveTime {
		dial := s.dial
		if dial == nil {
			dial = dialer(opt.SocketKeepalive)
		}
		if opt.TLS != nil {
			dial = tlsDialer(dial, opt.TLS)
		}
		stats := &PeerStats{}
		if p != nil {
			s.replaced = append(s.replaced, p)
			stats = p.stats // the peer stays: so do its counters
		}
		p = &Pool{network: network, addr: addr, dial: dial, lim: lim,
			keepalive: opt.SocketKeepalive, maxAge: u.KeepaliveTime, stats: stats}
		s.pools[k] = p
	}
	p.gen = s.gen
	p.refs++
	return p
}

// release is called when DNS re-resolution removes a peer of p: once no
// peer of any group holds p, it leaves the set and drains (its streams in
// flight finish, then its connections close), and the health remembered
// for the address is forgotten, so a set that follows a churning name
// (pods coming and going behind a headless Service) does not grow with
// every address it ever saw. Pools a reload stopped naming are drained by
// DrainUnused instead.
func (s *Set) release(p *Pool, group string) {
	s.mu.Lock()
	p.refs--
	if p.refs > 0 {
		s.mu.Unlock()
		return
	}
	for k, q := range s.pools {
		if q == p {
			delete(s.pools, k)
		}
	}
	s.mu.Unlock()
	s.forgetHealth(group, p.addr)
	p.Drain()
}

// NewGeneration starts a configuration build: pools asked for from now on
// belong to it.
func (s *Set) NewGeneration() {
	s.mu.Lock()
	s.gen++
	s.mu.Unlock()
}

// DrainUnused runs once the configuration built since the last
// NewGeneration serves: pools it did not ask for (peers removed, moved to
// another upstream, or pools replaced by ones with other settings) open
// no more streams; their connections close as their streams finish.
// Pools the new configuration kept, and their connections, are untouched.
// It returns how many pools it drained.
func (s *Set) DrainUnused() int {
	s.mu.Lock()
	drain := s.replaced
	s.replaced = nil
	for k, p := range s.pools {
		if p.gen != s.gen {
			drain = append(drain, p)
			delete(s.pools, k)
		}
	}
	s.mu.Unlock()
	for _, p := range drain {
		p.Drain()
	}
	return len(drain)
}

// Drain makes the pool open no more streams on its connections, which
// close once their streams finish. A call of the configuration being
// replaced that already picked this peer may still open one: it gets a
// connection of its own, closed when its streams are done.
func (p *Pool) Drain() {
	p.mu.Lock()
	p.drained = true
	conns := append([]*h2.Conn(nil), p.conns...)
	p.mu.Unlock()
	for _, c := range conns {
		c.GoAway()
	}
}

// tlsDialer wraps dial with a TLS client handshake (grpcs://), bounded by
// the dial's context (grpc_connect_timeout covers both, as in nginx).
func tlsDialer(dial DialFunc, cfg *tls.Config) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("SSL handshake: %w", err)
		}
		return tc, nil
	}
}

// Close closes every pooled connection.
func (s *Set) Close() {
	s.mu.Lock()
	pools := make([]*Pool, 0, len(s.pools)+len(s.replaced))
	pools = append(pools, s.replaced...)
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	for _, p := range pools {
		p.Close()
	}
}

// Pool is the set of multiplexed HTTP/2 connections to one server. Streams
// share a connection until the server's SETTINGS_MAX_CONCURRENT_STREAMS is
// reached or it goes away; only then is another dialed.
type Pool struct {
	network, addr string
	dial          DialFunc
	lim           h2.Limits
	keepalive     bool          // grpc_socket_keepalive
	refs          int           // peers holding the pool (Set.mu); see Set.release
	maxAge        time.Duration // upstream keepalive_time: no new streams on an older connection

	mu      sync.Mutex
	conns   []*h2.Conn
	retire  map[*h2.Conn]*time.Timer // keepalive_time timers of conns
	dialing int
	warming int // connections whose server has not sent SETTINGS yet
	waiters []func(*h2.Conn, error)
	closed  bool   // Close: no more streams at all
	drained bool   // Drain: no stream joins a pooled connection
	gen     uint64 // see Set.gen
	stats   *PeerStats
}

// DialError is a failure to connect to an upstream server.
type DialError struct {
	Addr    string
	Timeout bool
	Err     error
}

func (e *DialError) Error() string {
	if e.Timeout {
		return "connect to " + e.Addr + " timed out"
	}
	return "connect to " + e.Addr + " failed: " + rootCause(e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// rootCause strips the "dial tcp ...:" wrappers: "connection refused".
func rootCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		err = op.Err
	}
	var sc *os.SyscallError
	if errors.As(err, &sc) {
		err = sc.Err
	}
	return err.Error()
}

// TryOpen opens a stream on a connection with room, or returns nil if none
// has room. It is Open's fast path, for callers that build retry only
// when it is needed.
func (p *Pool) TryOpen(fields []hpack.HeaderField, end bool, h h2.StreamHandler) *h2.Stream {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.openLocked(fields, end, h)
}

func (p *Pool) openLocked(fields []hpack.HeaderField, end bool, h h2.StreamHandler) *h2.Stream {
	for i := len(p.conns) - 1; i >= 0; i-- {
		if s, err := p.conns[i].OpenStream(fields, end, h); err == nil {
			return s
		}
	}
	return nil
}

// Open opens a stream on a connection with room. If none has room it
// returns nil, starts a dial if needed, and later calls retry on another
// goroutine, with a fresh connection to open the stream on (which may
// still be refused: then call Open again) or with a *DialError.
func (p *Pool) Open(fields []hpack.HeaderField, end bool, h h2.StreamHandler,
	connectTimeout time.Duration, retry func(*h2.Conn, error)) *h2.Stream {
	p.mu.Lock()
	if s := p.openLocked(fields, end, h); s != nil {
		p.mu.Unlock()
		return s
	}
	if p.closed {
		p.mu.Unlock()
		go retry(nil, &DialError{Addr: p.addr, Err: h2.ErrClosed})
		return nil
	}
	p.waiters = append(p.waiters, retry)
	// A connection whose server has not sent SETTINGS yet takes its other
	// streams once they arrive (see dialOne): wait for it, not a new dial.
	if pending := p.dialing + p.warming; pending == 0 || len(p.waiters) > 64*pending {
		p.dialing++
		go p.dialOne(connectTimeout)
	}
	p.mu.Unlock()
	return nil
}

func (p *Pool) dialOne(timeout time.Duration) {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := p.connect(ctx)

	p.mu.Lock()
	p.dialing--
	warming := false
	if err == nil {
		if p.closed {
			c.Close()
			err = &DialError{Addr: p.addr, Err: h2.ErrClosed}
			c = nil
		} else if p.drained {
			// For the waiters only: it closes once their streams end.
			defer c.GoAway()
			warming = !isReady(c)
		} else {
			p.conns = append(p.conns, c)
			if p.maxAge > 0 {
				// Past keepalive_time the connection takes no new
				// streams and closes once its streams are done.
				if p.retire == nil {
					p.retire = make(map[*h2.Conn]*time.Timer)
				}
				p.retire[c] = time.AfterFunc(p.maxAge, c.GoAway)
			}
			warming = !isReady(c)
		}
	}
	if !warming {
		ws := p.waiters
		p.waiters = nil
		p.mu.Unlock()
		for _, w := range ws {
			w(c, err)
		}
		return
	}
	// Until the server's SETTINGS arrive the connection takes one stream
	// (RFC 9113 3.4 lets it go before them; some servers, nginx's test
	// backend among them, send SETTINGS only after the first HEADERS).
	// Hand it to waiters one at a time until one opens its stream (an
	// abandoned call opens none); the rest wait for the SETTINGS.
	p.warming++
	for len(p.waiters) > 0 && c.CanOpen() && !isReady(c) {
		w := p.waiters[0]
		p.waiters[0] = nil
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		w(c, nil)
		p.mu.Lock()
	}
	p.mu.Unlock()
	<-c.Ready() // also closed when the connection ends
	if cerr := c.Err(); cerr != nil && !c.Established() {
		err = &DialError{Addr: p.addr, Err: cerr}
		c = nil
	}
	// A connection that worked and has closed since (its early stream
	// done, and no keepalive) is no failure: the waiters find it closed
	// and open again.

	p.mu.Lock()
	p.warming--
	ws := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, w := range ws {
		w(c, err)
	}
}

// isReady reports whether c's server has sent its SETTINGS (or c closed).
func isReady(c *h2.Conn) bool {
	select {
	case <-c.Ready():
		return true
	default:
		return false
	}
}

// connect dials and starts the connection, whose preface and SETTINGS are
// then on their way: streams may open at once (see dialOne). The connect
// timeout covers the dial (and TLS handshake), as grpc_connect_timeout does
// in nginx; a server that never sends SETTINGS is bounded by the streams'
// read timeouts and the connection's own (PING, idle).
func (p *Pool) connect(ctx context.Context) (*h2.Conn, error) {
	nc, err := p.dial(ctx, p.network, p.addr)
	if err != nil {
		return nil, &DialError{Addr: p.addr, Timeout: ctx.Err() != nil, Err: err}
	}
	c := h2.NewConn(nc, nil, h2.Client, p.lim, p)
	c.Start(nil)
	return c, nil
}

// Conns returns the number of open connections (tests, status).
func (p *Pool) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close closes every connection of the pool.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	conns := append([]*h2.Conn(nil), p.conns...)
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// HandleStream implements h2.ConnHandler; servers cannot open streams
// towards us (push is disabled), so it never runs.
func (p *Pool) HandleStream(s *h2.Stream, _ *http2.MetaHeadersFrame) h2.StreamHandler {
	s.Reset(http2.ErrCodeRefusedStream)
	return nil
}

// HandleGoAway implements h2.ConnHandler: the connection refuses new
// streams by itself; nothing to do until it closes.
func (p *Pool) HandleGoAway(*h2.Conn) {}

// HandleClose implements h2.ConnHandler: forget the connection.
func (p *Pool) HandleClose(c *h2.Conn, _ error) {
	p.mu.Lock()
	for i, x := range p.conns {
		if x == c {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	if t := p.retire[c]; t != nil {
		t.Stop()
		delete(p.retire, c)
	}
	p.mu.Unlock()
}
