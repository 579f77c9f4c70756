package proxy

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/tlsconf"
	"github.com/gproxy/gproxy/proxy/route"
	"github.com/gproxy/gproxy/upstream"
)

// Where a grpc_pass sends a call. A target without variables was resolved
// when the configuration was built; one with variables (`grpc_pass
// grpc://$backend`) is resolved per call as nginx resolves it: an upstream
// block of that name first, else an address.

// maxDynamicGroups bounds the groups made for addresses named at run time
// by one running configuration: the variables may come from the client
// ($arg_b), and each group keeps a connection pool.
const maxDynamicGroups = 256

// dynamicGroups are the groups made for run-time targets.
type dynamicGroups struct {
	mu     sync.Mutex
	byAddr map[string]*dynGroup
}

// dynGroup is a run-time group and the once that starts it: a named
// target resolves its first addresses in Start, which may wait for DNS up
// to resolver_timeout, so it runs outside dynamicGroups.mu, and streams
// that want the group meanwhile wait for it.
type dynGroup struct {
	g     *upstream.Group
	start sync.Once
}

var (
	errNoResolver     = errors.New("no resolver defined to resolve")
	errTooManyTargets = errors.New("too many distinct grpc_pass addresses")
	errNotResolved    = errors.New("could not be resolved")
)

// groupFor returns the group a call routed to a pass goes to. st are the
// request's settings, whose resolver (and resolver_timeout) resolve a
// target that names a host, as nginx's resolver does for grpc_pass with
// variables; every address it gives is used, round robin, and is kept up
// to date by DNS (valid=, else the records' TTL).
//
// The value may carry the scheme itself (`grpc_pass $arg_b;` with
// b=grpcs://host:port), as nginx reads it; scheme is the one that
// applies, "grpc" or "grpcs".
func (rc *running) groupFor(gp *config.GRPCPass, tbl *route.Table, r *route.Request, st *config.Settings) (g *upstream.Group, target, scheme string, err error) {
	if gp.Upstream != nil {
		return rc.passGroups[gp], "", gp.Scheme, nil
	}
	target, scheme = tbl.Expand(gp.Target, r), gp.Scheme
	if len(target) > len("grpcs://") && strings.EqualFold(target[:len("grpcs://")], "grpcs://") {
		target, scheme = target[len("grpcs://"):], "grpcs"
	} else if len(target) > len("grpc://") && strings.EqualFold(target[:len("grpc://")], "grpc://") {
		target = target[len("grpc://"):]
	}
	var named *config.Upstream
	if h := rc.cfg.HTTP; h != nil {
		if named = h.UpstreamByName[target]; named != nil && scheme != "grpcs" {
			return rc.groups[groupKey{u: named}], target, scheme, nil
		}
	}
	resolve := named == nil && !isAddress(target)
	if resolve && (st == nil || st.Resolver == nil) {
		return nil, target, scheme, errNoResolver
	}
	key := scheme + " " + target
	rc.dyn.mu.Lock()
	dg := rc.dyn.byAddr[key]
	if dg == nil {
		if len(rc.dyn.byAddr) >= maxDynamicGroups {
			rc.dyn.mu.Unlock()
			return nil, target, scheme, errTooManyTargets
		}
		g, err := rc.newDynamicGroup(gp, scheme, named, target, resolve, st)
		if err != nil {
			rc.dyn.mu.Unlock()
			return nil, target, scheme, err
		}
		if rc.dyn.byAddr == nil {
			rc.dyn.byAddr = map[string]*dynGroup{}
		}
		dg = &dynGroup{g: g}
		rc.dyn.byAddr[key] = dg
	}
	rc.dyn.mu.Unlock()
	dg.start.Do(dg.g.Start)
	if resolve && len(dg.g.Peers()) == 0 {
		return nil, target, scheme, errNotResolved
	}
	return dg.g, target, scheme, nil
}

// newDynamicGroup makes the group of a run-time target: the upstream block
// it names (for grpcs://, which needs its own TLS client), else one server
// at that address, resolved by st's resolver if it names a host.
func (rc *running) newDynamicGroup(gp *config.GRPCPass, scheme string, named *config.Upstream, target string, resolve bool, st *config.Settings) (*upstream.Group, error) {
	u := named
	if u == nil {
		address := target
		if resolve {
			if _, _, err := net.SplitHostPort(target); err != nil {
				address = net.JoinHostPort(target, defaultPort(scheme))
			}
		}
		u = &config.Upstream{
			Name: target, Implicit: true,
			KeepaliveTime: time.Hour, KeepaliveTimeout: 60 * time.Second, KeepaliveRequests: 1000,
			Servers: []config.UpstreamServer{{Address: address, Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second, Resolve: resolve}},
			Pos:     gp.Pos,
		}
		if resolve {
			u.Resolver, u.ResolverTimeout = st.Resolver, st.ResolverTimeout
		}
	}
	var opts upstream.GroupOptions
	if scheme == "grpcs" {
		// grpcs:// with variables: the TLS client is made per target,
		// whose host is the default grpc_ssl_name.
		ut, err := tlsconf.NewUpstream(rc.passTLS[gp], target)
		if err != nil {
			return nil, err
		}
		opts.TLS, opts.TLSKey = ut.Config, ut.Key
	}
	return upstream.NewGroup(u, rc.pools, opts)
}

// defaultPort is the port of a grpc_pass target that names none: nginx
// takes 80 for grpc:// and 443 for grpcs://.
func defaultPort(scheme string) string {
	if scheme == "grpcs" {
		return "443"
	}
	return "80"
}

// stopDynamic ends the re-resolution of rc's run-time groups.
func (rc *running) stopDynamic() {
	rc.dyn.mu.Lock()
	defer rc.dyn.mu.Unlock()
	for _, dg := range rc.dyn.byAddr {
		dg.start.Do(func() {}) // a group never started needs no stop
		dg.g.Stop()
	}
}

// isAddress reports whether s is an IP address with a port, or a Unix
// socket: what gproxy connects to without a name lookup.
func isAddress(s string) bool {
	if strings.HasPrefix(s, "unix:/") {
		return true
	}
	_, err := netip.ParseAddrPort(s)
	return err == nil
}
