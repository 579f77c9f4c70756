package proxy

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/route"
	"github.com/gproxy/gproxy/tlsconf"
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

// dynamicGroups are the groups made for run-time addresses.
type dynamicGroups struct {
	mu     sync.Mutex
	byAddr map[string]*upstream.Group
}

var (
	errNoResolver     = errors.New("no resolver defined to resolve")
	errTooManyTargets = errors.New("too many distinct grpc_pass addresses")
)

// groupFor returns the group a call routed to a pass goes to.
func (rc *running) groupFor(gp *config.GRPCPass, tbl *route.Table, r *route.Request) (*upstream.Group, string, error) {
	if gp.Upstream != nil {
		return rc.passGroups[gp], "", nil
	}
	target := tbl.Expand(gp.Target, r)
	var named *config.Upstream
	if h := rc.cfg.HTTP; h != nil {
		if named = h.UpstreamByName[target]; named != nil && gp.Scheme != "grpcs" {
			return rc.groups[groupKey{u: named}], target, nil
		}
	}
	if named == nil && !isAddress(target) {
		// nginx resolves a name at run time only with a resolver; gproxy
		// does not resolve names named by variables yet.
		return nil, target, errNoResolver
	}
	key := gp.Scheme + " " + target
	rc.dyn.mu.Lock()
	defer rc.dyn.mu.Unlock()
	if g := rc.dyn.byAddr[key]; g != nil {
		return g, target, nil
	}
	if len(rc.dyn.byAddr) >= maxDynamicGroups {
		return nil, target, errTooManyTargets
	}
	u := named
	if u == nil {
		u = &config.Upstream{
			Name: target, Implicit: true,
			KeepaliveTime: time.Hour, KeepaliveTimeout: 60 * time.Second, KeepaliveRequests: 1000,
			Servers: []config.UpstreamServer{{Address: target, Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second}},
			Pos:     gp.Pos,
		}
	}
	var opts upstream.GroupOptions
	if gp.Scheme == "grpcs" {
		// grpcs:// with variables: the TLS client is made per target,
		// whose host is the default grpc_ssl_name.
		ut, err := tlsconf.NewUpstream(rc.passTLS[gp], target)
		if err != nil {
			return nil, target, err
		}
		opts.TLS, opts.TLSKey = ut.Config, ut.Key
	}
	g, err := upstream.NewGroup(u, rc.pools, opts)
	if err != nil {
		return nil, target, err
	}
	if rc.dyn.byAddr == nil {
		rc.dyn.byAddr = map[string]*upstream.Group{}
	}
	rc.dyn.byAddr[key] = g
	return g, target, nil
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
