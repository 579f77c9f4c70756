package healthcheck

import (
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// Target is one server to check.
type Target struct {
	// Key is the owner's handle for the server (a peer); targets are told
	// apart by it.
	Key           any
	Network, Addr string // as the peer dials it
}

// Checker checks the targets of one health_check directive. Its fields are
// set before Start and not changed afterwards.
type Checker struct {
	Config config.HealthCheck
	// ConnectTimeout and ReadTimeout bound each check.
	ConnectTimeout, ReadTimeout time.Duration
	// Targets returns the servers to check now; it is called once per
	// interval, so servers that come and go (DNS) are followed.
	Targets func() []Target
	// Report is told each change of a target's health, with the failed
	// check's error when it turns unhealthy, and the failure of a
	// target's first check even when it was unhealthy already.
	Report func(t Target, healthy bool, cause error)
	// Initial is a new target's health before its first check; nil means
	// healthy unless Config.Mandatory (then "checking": unhealthy until
	// the first check passes).
	Initial func(t Target) bool
	// Dial replaces the plain dialer: for grpcs:// a TLS dialer, with
	// Secure set.
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Secure bool

	mu     sync.Mutex
	state  map[any]*targetState
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type targetState struct {
	healthy   bool
	checked   bool // a check has completed
	inflight  bool
	fails     int // consecutive failed checks
	passes    int // consecutive passed checks
	lastCause error
}

// Start runs the checks in the background until Stop: the first round at
// once, then one every interval (plus a random part of jitter).
func (c *Checker) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	c.state = map[any]*targetState{}
	c.cancel = cancel
	c.mu.Unlock()
	c.wg.Add(1)
	go c.loop(ctx)
}

// Stop ends the checks and waits for those in flight to return.
func (c *Checker) Stop() {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
}

// Healthy reports the checker's view of a target (tests, status): its
// health and whether a check has completed.
func (c *Checker) Healthy(key any) (healthy, checked bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.state[key]; st != nil {
		return st.healthy, st.checked
	}
	return false, false
}

func (c *Checker) loop(ctx context.Context) {
	defer c.wg.Done()
	for {
		c.round(ctx)
		wait := c.Config.Interval
		if j := c.Config.Jitter; j > 0 {
			wait += rand.N(j)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// round starts a check of every target that has none in flight, and
// forgets the targets that are gone.
func (c *Checker) round(ctx context.Context) {
	targets := c.Targets()
	seen := make(map[any]bool, len(targets))
	c.mu.Lock()
	for _, t := range targets {
		seen[t.Key] = true
		st := c.state[t.Key]
		if st == nil {
			healthy := !c.Config.Mandatory
			if c.Initial != nil {
				healthy = c.Initial(t)
			}
			st = &targetState{healthy: healthy}
			c.state[t.Key] = st
		}
		if st.inflight {
			continue
		}
		st.inflight = true
		c.wg.Add(1)
		go c.check(ctx, t)
	}
	for k, st := range c.state {
		if !seen[k] && !st.inflight {
			delete(c.state, k)
		}
	}
	c.mu.Unlock()
}

func (c *Checker) check(ctx context.Context, t Target) {
	defer c.wg.Done()
	addr := t.Addr
	if c.Config.Port != 0 && t.Network != "unix" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = net.JoinHostPort(host, strconv.Itoa(c.Config.Port))
		}
	}
	p := Probe{
		Network: t.Network, Addr: addr, Service: c.Config.GRPCService, OKStatus: c.Config.GRPCStatus,
		ConnectTimeout: c.ConnectTimeout, ReadTimeout: c.ReadTimeout, Dial: c.Dial, Secure: c.Secure,
	}
	err := p.Run(ctx)
	if ctx.Err() != nil {
		return // stopped: a cancelled check says nothing of the server
	}
	c.mu.Lock()
	st := c.state[t.Key]
	st.inflight = false
	first := !st.checked
	st.checked = true
	was := st.healthy
	if err == nil {
		st.fails = 0
		st.passes++
		// A server in the "checking" state (mandatory, never checked)
		// is healthy after its first pass.
		if !st.healthy && (first || st.passes >= c.Config.Passes) {
			st.healthy = true
		}
	} else {
		st.passes = 0
		st.fails++
		st.lastCause = err
		if st.healthy && (first && c.Config.Mandatory || st.fails >= c.Config.Fails) {
			st.healthy = false
		}
	}
	now := st.healthy
	c.mu.Unlock()
	// A first check that fails is told too, though a "checking" target
	// stays unhealthy: the owner logs why it does not come up.
	if now != was || first && err != nil {
		c.Report(t, now, err)
	}
}
