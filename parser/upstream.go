package parser

import (
	"net"
	"strings"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// upstream {} and what goes in it (nginx's upstream, round-robin,
// least_conn, ip_hash, hash, random and keepalive modules).

var upstreamCommands = []command{
	{name: "upstream", ctx: cHTTP, args: take1, block: true, status: statusImplemented, set: setUpstream},
	{name: "server", ctx: cUps, args: more1, status: statusImplemented, set: setUpstreamServer},
	{name: "least_conn", ctx: cUps, args: noArgs, status: statusImplemented, set: setBalance},
	{name: "ip_hash", ctx: cUps, args: noArgs, status: statusImplemented, set: setBalance},
	{name: "hash", ctx: cUps, args: take12, status: statusImplemented, set: setBalance},
	{name: "random", ctx: cUps, args: noArgs | take12, status: statusImplemented, set: setBalance},
	{name: "keepalive", ctx: cUps, args: take1, status: statusImplemented,
		set: upsValue(parsePositive, func(u *config.Upstream, v int) { u.Keepalive = v })},
	{name: "keepalive_time", ctx: cUps, args: take1, status: statusImplemented,
		set: upsValue(parseMsec, func(u *config.Upstream, v time.Duration) { u.KeepaliveTime = v })},
	{name: "keepalive_timeout", ctx: cUps, args: take1, status: statusImplemented,
		set: upsValue(parseMsec, func(u *config.Upstream, v time.Duration) { u.KeepaliveTimeout = v })},
	{name: "keepalive_requests", ctx: cUps, args: take1, status: statusImplemented,
		set: upsValue(parseCount, func(u *config.Upstream, v int) { u.KeepaliveRequests = v })},
}

// upsRef is one entry of nginx's list of upstreams: an upstream block, or
// a host named by grpc_pass. Entries are matched by host name so that
// `grpc_pass grpc://backend;` may come before `upstream backend {}`.
type upsRef struct {
	name     string
	port     string // "" when the reference gave none
	explicit bool
	u        *config.Upstream
	pos      config.Pos
	balanced bool // a balancing directive was given
	// passes are the grpc_pass targets waiting for u.
	passes []*config.GRPCPass
}

// addUpstream finds or adds the entry for name, with nginx's checks.
func (l *loader) addUpstream(n *lex.Node, name, port string, explicit bool) (*upsRef, error) {
	hs := l.http
	for _, r := range hs.ups {
		if !strings.EqualFold(r.name, name) {
			continue
		}
		if explicit && r.explicit {
			return nil, l.errf(n, "duplicate upstream \"%s\"", name)
		}
		if r.explicit && port != "" {
			return nil, l.errf(n, "upstream \"%s\" may not have port %s", name, port)
		}
		if explicit && r.port != "" {
			// nginx names the place of the reference, not of the block.
			return nil, l.errAt(r.pos, "upstream \"%s\" may not have port %s", name, r.port)
		}
		if r.port != port {
			continue
		}
		if explicit {
			r.explicit = true
			r.pos = l.pos(n)
		}
		return r, nil
	}
	r := &upsRef{name: name, port: port, explicit: explicit, pos: l.pos(n)}
	hs.ups = append(hs.ups, r)
	return r, nil
}

func newUpstream(name string, pos config.Pos) *config.Upstream {
	return &config.Upstream{
		Name:              name,
		Balance:           config.Balance{Method: "round_robin"},
		KeepaliveTime:     time.Hour,
		KeepaliveTimeout:  60 * time.Second,
		KeepaliveRequests: 1000,
		Pos:               pos,
	}
}

func setUpstream(l *loader, _ *block, n *lex.Node) error {
	r, err := l.addUpstream(n, n.Args[0], "", true)
	if err != nil {
		return err
	}
	u := newUpstream(n.Args[0], l.pos(n))
	r.u = u
	hs := l.http
	hs.h.Upstreams = append(hs.h.Upstreams, u)
	hs.h.UpstreamByName[u.Name] = u
	if err := l.walk(n.Children, &block{kind: cUps, ups: u, lvl: newLevel()}); err != nil {
		return err
	}
	// nginx checks this as soon as the block has been read, so the
	// message names the closing brace and comes before later errors.
	if len(u.Servers) == 0 && !n.Unclosed {
		return l.errAt(config.Pos{File: l.file, Line: n.CloseLine}, "no servers are inside upstream")
	}
	return nil
}

// serverParams are the parameters of an upstream server line and how
// each is read.
var serverParams = map[string]func(l *loader, s *config.UpstreamServer, v string) bool{
	"weight=": func(_ *loader, s *config.UpstreamServer, v string) bool {
		n, ok := parseNum(v)
		s.Weight = n
		return ok && n > 0
	},
	"max_conns=": func(_ *loader, s *config.UpstreamServer, v string) bool {
		n, ok := parseNum(v)
		s.MaxConns = n
		return ok
	},
	"max_fails=": func(_ *loader, s *config.UpstreamServer, v string) bool {
		n, ok := parseNum(v)
		s.MaxFails = n
		return ok
	},
	"fail_timeout=": func(_ *loader, s *config.UpstreamServer, v string) bool {
		d, ok := parseTime(v, true)
		s.FailTimeout = d
		return ok
	},
	"backup":   func(_ *loader, s *config.UpstreamServer, _ string) bool { s.Backup = true; return true },
	"down":     func(_ *loader, s *config.UpstreamServer, _ string) bool { s.Down = true; return true },
	"resolve":  func(_ *loader, s *config.UpstreamServer, _ string) bool { s.Resolve = true; return true },
	"service=": func(_ *loader, s *config.UpstreamServer, v string) bool { s.Service = v; return v != "" },
}

// methodsWithoutBackup are balancing methods that, as in nginx, take no
// backup servers.
var methodsWithoutBackup = map[string]bool{"ip_hash": true, "hash": true, "random": true}

func setUpstreamServer(l *loader, b *block, n *lex.Node) error {
	s := config.UpstreamServer{Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second, Pos: l.pos(n)}
	for _, p := range n.Args[1:] {
		key := p
		if i := strings.IndexByte(p, '='); i >= 0 {
			key = p[:i+1]
		}
		f, ok := serverParams[key]
		if !ok || !f(l, &s, p[len(key):]) {
			return l.errf(n, "invalid parameter \"%s\"", p)
		}
		if key == "backup" && methodsWithoutBackup[b.ups.Balance.Method] {
			return l.errf(n, "balancing method does not support parameter \"%s\"", p)
		}
	}
	if s.Service != "" && !s.Resolve {
		return l.errf(n, `service upstream "%s" requires the "resolve" parameter`, n.Args[0])
	}
	addr := n.Args[0]
	if strings.HasPrefix(addr, "unix:") {
		if len(addr) == len("unix:") {
			return l.errf(n, `no path in the unix domain socket in upstream "%s"`, addr)
		}
		if s.Resolve {
			// A socket path has no name to re-resolve.
			return l.errf(n, `invalid parameter "resolve"`)
		}
		s.Address = addr
		b.ups.Servers = append(b.ups.Servers, s)
		return nil
	}
	host, port, msg := splitHostPort(addr, "80")
	if msg != "" {
		return l.errf(n, `%s in upstream "%s"`, msg, addr)
	}
	if hasPort := strings.Contains(strings.TrimPrefix(addr, addr[:strings.LastIndexByte(addr, ']')+1]), ":"); s.Service != "" && hasPort {
		// nginx 1.27.3: the port comes from the SRV records.
		return l.errf(n, `service upstream "%s" may not have port`, addr)
	}
	if s.Service != "" {
		// With service= the port comes from DNS SRV records.
		port = "0"
	}
	if !s.Resolve {
		if ips, err := l.lookup(host); err != nil || len(ips) == 0 {
			return l.errf(n, "host not found in upstream \"%s\"", addr)
		}
	}
	s.Address = net.JoinHostPort(host, port)
	b.ups.Servers = append(b.ups.Servers, s)
	return nil
}

// splitHostPort splits host[:port] or [v6][:port], with nginx's wording
// for a bad port.
func splitHostPort(s, defPort string) (host, port, msg string) {
	hasPort := false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", "invalid host"
		}
		if net.ParseIP(s[1:end]) == nil {
			return "", "", "invalid IPv6 address"
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", "", "invalid host"
			}
			port, hasPort = rest[1:], true
		}
	} else if i := strings.IndexByte(s, ':'); i >= 0 {
		// nginx takes the first colon: "::1" has the port ":1".
		host, port, hasPort = s[:i], s[i+1:], true
	} else {
		host = s
	}
	// As in ngx_parse_url, a given port is checked before the host.
	if hasPort {
		if v, ok := parseNum(port); !ok || v < 1 || v > 65535 {
			return "", "", "invalid port"
		}
	}
	if host == "" {
		return "", "", "no host"
	}
	if !hasPort {
		port = defPort
	}
	return host, port, ""
}

func setBalance(l *loader, b *block, n *lex.Node) error {
	u := b.ups
	bal := config.Balance{Method: n.Name, Pos: l.pos(n)}
	switch n.Name {
	case "hash":
		t, terr := parseTemplate(n.Args[0])
		if terr != nil {
			return l.errf(n, "%s", terr.msg)
		}
		bal.Key = t
		if len(n.Args) == 2 {
			if n.Args[1] != "consistent" {
				return l.errf(n, "invalid parameter \"%s\"", n.Args[1])
			}
			bal.Consistent = true
		}
		l.useVars(t)
	case "random":
		if len(n.Args) > 0 {
			if n.Args[0] != "two" {
				return l.errf(n, "invalid parameter \"%s\"", n.Args[0])
			}
			bal.Two = true
			bal.TwoMethod = "least_conn"
			if len(n.Args) == 2 && n.Args[1] != "least_conn" {
				return l.errf(n, "invalid parameter \"%s\"", n.Args[1])
			}
		}
	}
	if methodsWithoutBackup[n.Name] {
		for _, s := range u.Servers {
			if s.Backup {
				return l.errf(n, `balancing method does not support the "backup" parameter`)
			}
		}
	}
	if u.Balance.Pos.File != "" {
		l.warn(n, "load balancing method redefined")
	}
	u.Balance = bal
	return nil
}

// upsValue builds the setter of an upstream-level value, in nginx's order:
// "is duplicate" first, then the value, whose parser gives nginx's message
// for a bad one as a format of the value and the directive's name.
func upsValue[T any](parse func(string) (T, string), store func(*config.Upstream, T)) func(*loader, *block, *lex.Node) error {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v, bad := parse(n.Args[0])
		if bad != "" {
			return l.errf(n, bad, n.Args[0], n.Name)
		}
		store(b.ups, v)
		return nil
	}
}

// Value parsers for upsValue: the value, or nginx's message for a bad one
// (%[1]s the value, %[2]s the directive).
func parsePositive(s string) (int, string) { // the keepalive module's words
	if v, ok := parseNum(s); ok && v > 0 {
		return v, ""
	}
	return 0, `invalid value "%[1]s" in "%[2]s" directive`
}

func parseCount(s string) (int, string) {
	if v, ok := parseNum(s); ok {
		return v, ""
	}
	return 0, `"%[2]s" directive invalid number`
}

func parseMsec(s string) (time.Duration, string) {
	if v, ok := parseTime(s, false); ok {
		return v, ""
	}
	return 0, `"%[2]s" directive invalid value`
}

// initUpstreams is nginx's upstream init at the end of http: every block
// must have servers; every other host named by grpc_pass must have a
// port and resolve.
func (l *loader) initUpstreams() error {
	hs := l.http
	httpRes := hs.lvl.effective(defaultSettings()).Resolver
	for _, r := range hs.ups {
		if r.explicit {
			for _, s := range r.u.Servers {
				if s.Resolve && r.u.Zone == "" {
					return l.errAt(s.Pos, "%s", zoneMsg("resolving names at run time", r.u))
				}
				if s.Resolve && r.u.Resolver == nil && httpRes == nil {
					host, _, _ := net.SplitHostPort(s.Address)
					return l.errAt(s.Pos, "no resolver defined to resolve %s", host)
				}
			}
			// The http level's resolver serves an upstream without one.
			if r.u.Resolver == nil {
				r.u.Resolver = httpRes
			}
			if r.u.ResolverTimeout == 0 {
				r.u.ResolverTimeout = hs.lvl.effective(defaultSettings()).ResolverTimeout
			}
		} else {
			unix := strings.HasPrefix(r.name, "unix:")
			if r.port == "" && !unix {
				return l.errAt(r.pos, "no port in upstream \"%s\"", r.name)
			}
			// An IPv6 host keeps its brackets in messages.
			host := strings.TrimSuffix(strings.TrimPrefix(r.name, "["), "]")
			name := r.name
			if !unix {
				name = net.JoinHostPort(host, r.port)
			}
			if unix {
			} else if ips, err := l.lookup(host); err != nil || len(ips) == 0 {
				return l.errAt(r.pos, "host not found in upstream \"%s\"", r.name)
			}
			u := newUpstream(name, r.pos)
			u.Implicit = true
			u.Servers = []config.UpstreamServer{{Address: name, Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second, Pos: r.pos}}
			r.u = u
		}
		for _, gp := range r.passes {
			gp.Upstream = r.u
		}
	}
	return l.checkHealthChecks()
}
