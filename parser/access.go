package parser

import (
	"github.com/gproxy/gproxy/parser/syserr"
	"net/netip"
	"os"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/htpasswd"
	"github.com/gproxy/gproxy/parser/lex"
)

// Access control: allow/deny (ngx_http_access_module), satisfy and
// limit_except (core), auth_basic (ngx_http_auth_basic_module) and the
// real client address (ngx_http_realip_module).

// cLmt is the body of limit_except {}: nginx's NGX_HTTP_LMT_CONF.
const cLmt ctxKind = 1 << 13

var accessCommands = []command{
	{name: "allow", ctx: cHSL | cLmt, args: take1, status: statusImplemented, set: setAccessRule},
	{name: "deny", ctx: cHSL | cLmt, args: take1, status: statusImplemented, set: setAccessRule},
	{name: "satisfy", ctx: cHSL, args: take1, status: statusImplemented,
		set: enumSetting([]string{"all", "any"}, func(s *config.Settings, v string) { s.Access.SatisfyAny = v == "any" })},
	{name: "limit_except", ctx: cLoc, args: more1, block: true, status: statusImplemented, set: setLimitExcept},
	{name: "auth_basic", ctx: cHSL | cLmt, args: take1, status: statusImplemented, set: setAuthBasic},
	{name: "auth_basic_user_file", ctx: cHSL | cLmt, args: take1, status: statusImplemented, set: setAuthBasicUserFile},
	{name: "set_real_ip_from", ctx: cHSL, args: take1, status: statusImplemented, set: setRealIPFrom},
	{name: "real_ip_header", ctx: cHSL, args: take1, status: statusImplemented, set: setRealIPHeader},
	{name: "real_ip_recursive", ctx: cHSL, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.Access.RealIP.Recursive = v })},
}

// parseCIDR is ngx_ptocidr: an IPv4 or IPv6 address with an optional
// /bits. meaningless is set when host bits are set (nginx warns and
// clears them).
func parseCIDR(s string) (p netip.Prefix, meaningless, ok bool) {
	addr, bits, hasBits := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" || (a.Is4() && strings.Count(addr, ".") != 3) {
		return p, false, false
	}
	n := a.BitLen()
	if hasBits {
		v, ok := parseNum(bits)
		if !ok || v > a.BitLen() {
			return p, false, false
		}
		n = v
	}
	p = netip.PrefixFrom(a, n)
	m := p.Masked()
	return m, m.Addr() != a, true
}

// accessKey is the key of allow and deny at a level: one list, so a
// level's rules replace the inherited ones together.
const accessKey = "allow/deny"

func setAccessRule(l *loader, b *block, n *lex.Node) error {
	r := config.AccessRule{Deny: n.Name == "deny", Pos: l.pos(n)}
	switch v := n.Args[0]; v {
	case "all":
		r.All = true
	case "unix:":
		r.Unix = true
	default:
		p, meaningless, ok := parseCIDR(v)
		if !ok {
			return l.errf(n, "invalid parameter \"%s\"", v)
		}
		if meaningless {
			l.warn(n, "low address bits of %s are meaningless", v)
		}
		r.Prefix = p
	}
	b.add(accessKey, func(s *config.Settings, fresh bool) {
		if fresh {
			s.Access.Rules = nil
		}
		s.Access.Rules = append(s.Access.Rules, r)
	})
	return nil
}

// methodNames are the methods limit_except knows (nginx's
// ngx_methods_names).
var methodNames = []string{
	"GET", "HEAD", "POST", "PUT", "DELETE", "MKCOL", "COPY", "MOVE", "OPTIONS",
	"PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "PATCH",
}

func setLimitExcept(l *loader, b *block, n *lex.Node) error {
	loc := b.loc.l
	if loc.LimitExcept != nil {
		return l.dirErr(n, "is duplicate")
	}
	le := &config.LimitExcept{Pos: l.pos(n)}
	for _, a := range n.Args {
		m, ok := oneOf(methodNames, a)
		if !ok {
			return l.errf(n, "invalid method \"%s\"", a)
		}
		if !contains(le.Methods, m) {
			le.Methods = append(le.Methods, m)
		}
	}
	if contains(le.Methods, "GET") && !contains(le.Methods, "HEAD") {
		le.Methods = append(le.Methods, "HEAD")
	}
	loc.LimitExcept = le
	b.loc.lmt = newLevel()
	return l.walk(n.Children, &block{kind: cLmt, srv: b.srv, loc: b.loc, lvl: b.loc.lmt})
}

// finishLimitExcept applies the limit_except block's directives over its
// location's merged settings, as nginx merges the block's configuration
// from its location's.
func finishLimitExcept(ls *locState) {
	if le := ls.l.LimitExcept; le != nil && ls.lmt != nil {
		le.Access = ls.lmt.effective(ls.l.Settings).Access
	}
}

func setAuthBasic(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	t, terr := parseTemplate(n.Args[0])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(t)
	b.set(n.Name, func(s *config.Settings) { s.Access.AuthBasic = &t })
	return nil
}

// setAuthBasicUserFile reads the password file now, where nginx reads it
// on every request: a file that cannot be read or holds a password
// format gproxy cannot check fails -t and start instead of failing
// requests later (proxy/access reads it again when it changes). A name
// with variables can only be read per request.
func setAuthBasicUserFile(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	if strings.IndexByte(n.Args[0], '$') >= 0 {
		// A name with variables is read per request, as nginx reads
		// every password file.
		t, terr := parseTemplate(n.Args[0])
		if terr != nil {
			return l.errf(n, "%s", terr.msg)
		}
		l.useVars(t)
		uf := &config.UserFile{Template: &t, ConfPrefix: l.confPrefix, Pos: l.pos(n)}
		b.set(n.Name, func(s *config.Settings) { s.Access.UserFile = uf })
		return nil
	}
	path := l.confPath(n.Args[0])
	data, err := os.ReadFile(path)
	if err != nil {
		return l.errf(n, "%s", syserr.Open(path, err))
	}
	entries, err := htpasswd.Parse(data)
	if err != nil {
		return l.errf(n, "auth_basic_user_file \"%s\": %v", path, err)
	}
	uf := &config.UserFile{Path: path, Pos: l.pos(n)}
	for _, e := range entries {
		uf.Users = append(uf.Users, config.UserEntry{User: e.User, Hash: e.Hash, Line: e.Line})
	}
	b.set(n.Name, func(s *config.Settings) { s.Access.UserFile = uf })
	return nil
}

func setRealIPFrom(l *loader, b *block, n *lex.Node) error {
	v := n.Args[0]
	var from []netip.Prefix
	unix := false
	switch p, meaningless, ok := parseCIDR(v); {
	case v == "unix:":
		unix = true
	case ok:
		if meaningless {
			l.warn(n, "low address bits of %s are meaningless", v)
		}
		from = append(from, p)
	default:
		ips, err := l.lookup(v)
		if err != nil || len(ips) == 0 {
			return l.errf(n, "host not found in set_real_ip_from \"%s\"", v)
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil {
				a = a.Unmap()
				from = append(from, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	b.add(n.Name, func(s *config.Settings, fresh bool) {
		r := &s.Access.RealIP
		if fresh {
			r.From, r.FromUnix = nil, false
		}
		r.From = append(r.From, from...)
		r.FromUnix = r.FromUnix || unix
	})
	return nil
}

func setRealIPHeader(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	h := n.Args[0]
	switch h {
	case "X-Real-IP", "X-Forwarded-For":
	case "proxy_protocol":
		return l.errf(n, `"real_ip_header proxy_protocol" is not supported by gproxy (listen ... proxy_protocol is not implemented)`)
	default:
		h = lower(h)
	}
	b.set(n.Name, func(s *config.Settings) { s.Access.RealIP.Header = h })
	return nil
}
