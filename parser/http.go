package parser

import (
	"net"
	"os"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// http {}, server {}, listen, server_name, location and the core settings
// that inherit from http to server to location (nginx's http core module).

var httpCommands = []command{
	{name: "http", ctx: cMain, args: noArgs, block: true, status: statusImplemented, set: setHTTP},
	{name: "server", ctx: cHTTP, args: noArgs, block: true, status: statusImplemented, set: setServer},
	{name: "listen", ctx: cServer, args: more1, status: statusImplemented, set: setListen},
	{name: "server_name", ctx: cServer, args: more1, status: statusImplemented, set: setServerName},
	{name: "location", ctx: cServer | cLoc, args: take12, block: true, status: statusImplemented, set: setLocation},
	{name: "http2", ctx: cHTTP | cServer, args: flag, status: statusImplemented, set: setHTTP2},
	{name: "client_max_body_size", ctx: cHSL, args: take1, status: statusImplemented, set: setClientMaxBodySize},
	{name: "keepalive_timeout", ctx: cHSL, args: take12, status: statusImplemented, set: setKeepaliveTimeout},
	{name: "keepalive_requests", ctx: cHSL, args: take1, status: statusImplemented, set: setKeepaliveRequests},
	{name: "keepalive_time", ctx: cHSL, args: take1, status: statusImplemented, set: setKeepaliveTime},
	{name: "large_client_header_buffers", ctx: cHTTP | cServer, args: take2, status: statusImplemented, set: setLargeClientHeaderBuffers},
	{name: "http2_max_concurrent_streams", ctx: cHTTP | cServer, args: take1, status: statusImplemented, set: setHTTP2MaxConcurrentStreams},
	{name: "http2_chunk_size", ctx: cHSL, args: take1, status: statusImplemented, set: setHTTP2ChunkSize},
	{name: "resolver", ctx: cHSL | cUps, args: more1, status: statusImplemented, set: setResolver},
	{name: "resolver_timeout", ctx: cHSL | cUps, args: take1, status: statusImplemented, set: setResolverTimeout},
	// Settings of nginx's HTTP/2 module that gproxy's engine sizes itself.
	{name: "http2_recv_buffer_size", ctx: cHTTP, args: take1, status: statusIgnored, set: checkSize},
	{name: "http2_body_preread_size", ctx: cHTTP | cServer, args: take1, status: statusIgnored, set: checkSize},
	{name: "http2_streams_index_size", ctx: cHTTP | cServer, args: take1, status: statusIgnored, set: checkNum},
	{name: "http2_idle_timeout", ctx: cHTTP | cServer, args: take1, status: statusIgnored, set: checkMsec},
	{name: "http2_recv_timeout", ctx: cHTTP | cServer, args: take1, status: statusIgnored, set: checkMsec},
	{name: "http2_max_requests", ctx: cHTTP | cServer, args: take1, status: statusIgnored, set: checkNum},
	{name: "http2_max_field_size", ctx: cHTTP | cServer, args: take1, status: statusIgnored, set: checkSize},
	{name: "http2_max_header_size", ctx: cHTTP | cServer, args: take1, status: statusIgnored, set: checkSize},
}

// defaultSettings are nginx's values for what no level sets.
func defaultSettings() config.Settings {
	return config.Settings{
		ClientMaxBodySize:         1 << 20,
		KeepaliveTimeout:          75 * time.Second,
		KeepaliveRequests:         1000,
		KeepaliveTime:             time.Hour,
		LargeClientHeaderBuffers:  config.Buffers{Number: 4, Size: 8 << 10},
		HTTP2MaxConcurrentStreams: 128,
		HTTP2ChunkSize:            8 << 10,
		ResolverTimeout:           30 * time.Second,
		GRPC: config.GRPCSettings{
			ConnectTimeout: 60 * time.Second,
			ReadTimeout:    60 * time.Second,
			SendTimeout:    60 * time.Second,
			NextUpstream:   []string{"error", "timeout"},
			BufferSize:     os.Getpagesize(),
			SSLVerifyDepth: 1,
			SSLProtocols:   []string{"TLSv1.2", "TLSv1.3"},
			SSLCiphers:     "DEFAULT",
		},
		SSL: config.SSLSettings{
			Protocols:      []string{"TLSv1.2", "TLSv1.3"},
			Ciphers:        "HIGH:!aNULL:!MD5",
			SessionCache:   "none",
			SessionTimeout: 5 * time.Minute,
			VerifyClient:   "off",
			VerifyDepth:    1,
			SessionTickets: true,
		},
	}
}

// level is what one http, server or location block sets, in order. Its
// effective settings are its parent's with these applied, which is how
// nginx's merge behaves: a scalar set here wins; an array set here
// (grpc_set_header, access_log) replaces the inherited one as a whole.
type level struct {
	ops  []op
	seen map[string]bool
}

type op struct {
	key string
	// apply sets the value; fresh is true for the first op of key in
	// this level, so arrays start anew instead of appending to the
	// parent's.
	apply func(s *config.Settings, fresh bool)
}

func newLevel() *level { return &level{seen: map[string]bool{}} }

// effective returns parent with lv's ops applied.
func (lv *level) effective(parent config.Settings) config.Settings {
	s := parent
	seen := make(map[string]bool, len(lv.ops))
	for _, o := range lv.ops {
		o.apply(&s, !seen[o.key])
		seen[o.key] = true
	}
	return s
}

// once reports nginx's "is duplicate" for a scalar set twice at one level.
func (l *loader) once(b *block, n *lex.Node) error {
	if b.lvl.seen[n.Name] {
		return l.dirErr(n, "is duplicate")
	}
	b.lvl.seen[n.Name] = true
	return nil
}

// set records a scalar setting after once.
func (b *block) set(key string, f func(s *config.Settings)) {
	b.lvl.ops = append(b.lvl.ops, op{key: key, apply: func(s *config.Settings, _ bool) { f(s) }})
}

// add records an array setting.
func (b *block) add(key string, f func(s *config.Settings, fresh bool)) {
	b.lvl.seen[key] = true
	b.lvl.ops = append(b.lvl.ops, op{key: key, apply: f})
}

// httpState is what the http block collects before it is finished.
type httpState struct {
	h        *config.HTTP
	lvl      *level
	http2    *bool
	servers  []*serverState
	ups      []*upsRef // every upstream named or defined, in nginx's order
	varSeen  map[string]bool
	varOrder []string
	mapVars  map[string]bool
	// listens maps an address to what the servers listening on it say.
	listens map[string]*listenAddr
	// logBuffers maps a buffered access log's path to its first
	// definition: nginx opens each file once, with one buffer.
	logBuffers map[string]config.Log
}

type listenAddr struct {
	defaultPos  *config.Pos
	optionsPos  *config.Pos
	names       map[string]bool
	addrDisplay string
}

type serverState struct {
	s       *config.Server
	lvl     *level
	http2   *bool
	locs    []*locState // every location, depth first, for duplicate checks
	ssl     bool        // some listen of this server has `ssl`
	listens []string
}

type locState struct {
	l   *config.Location
	lvl *level
}

func setHTTP(l *loader, _ *block, n *lex.Node) error {
	if l.http != nil {
		return l.dirErr(n, "is duplicate")
	}
	h := &config.HTTP{
		LogFormats:     map[string]*config.LogFormat{"combined": combinedFormat()},
		UpstreamByName: map[string]*config.Upstream{},
	}
	l.cfg.HTTP = h
	l.http = &httpState{
		h: h, lvl: newLevel(),
		varSeen: map[string]bool{}, mapVars: map[string]bool{},
		listens: map[string]*listenAddr{},
	}
	if err := l.walk(n.Children, &block{kind: cHTTP, lvl: l.http.lvl}); err != nil {
		return err
	}
	if n.Unclosed {
		return nil
	}
	return l.finishHTTP()
}

// finishHTTP runs the checks nginx makes when the http block closes, in
// nginx's order: upstreams are initialised, then servers and locations
// merged, then locations sorted, then variables resolved, then server
// names hashed per address.
func (l *loader) finishHTTP() error {
	hs := l.http
	if err := l.initUpstreams(); err != nil {
		return err
	}
	top := defaultSettings()
	// With no access_log anywhere, nginx logs to logs/access.log.
	top.AccessLogs = []config.Log{{Path: l.path("logs/access.log"), Format: "combined"}}
	httpEff := hs.lvl.effective(top)
	for _, ss := range hs.servers {
		ss.s.Settings = ss.lvl.effective(httpEff)
		ss.s.HTTP2 = false
		if hs.http2 != nil {
			ss.s.HTTP2 = *hs.http2
		}
		if ss.http2 != nil {
			ss.s.HTTP2 = *ss.http2
		}
		if ss.ssl && len(ss.s.Settings.SSL.Certificates) == 0 {
			// nginx names the server block, where its ssl conf was created.
			return l.errAt(ss.s.Pos, `no "ssl_certificate" is defined for the "listen ... ssl" directive`)
		}
		if err := l.checkCertificates(ss.s.Settings.SSL); err != nil {
			return err
		}
		if err := l.mergeLocations(ss.s.Locations, ss.s.Settings); err != nil {
			return err
		}
	}
	for _, ss := range hs.servers {
		if err := l.checkDuplicateLocations(ss); err != nil {
			return err
		}
	}
	for _, v := range hs.varOrder {
		if !knownVar(v) && !hs.mapVars[v] {
			return &Diagnostic{Level: "emerg", Msg: "unknown \"" + v + "\" variable"}
		}
	}
	l.checkServerNames()
	return nil
}

func (l *loader) mergeLocations(locs []*config.Location, parent config.Settings) error {
	for _, loc := range locs {
		ls := l.locStates[loc]
		loc.Settings = ls.lvl.effective(parent)
		if err := l.mergeLocations(loc.Locations, loc.Settings); err != nil {
			return err
		}
	}
	return nil
}

func setServer(l *loader, _ *block, n *lex.Node) error {
	ss := &serverState{s: &config.Server{Pos: l.pos(n)}, lvl: newLevel()}
	l.http.servers = append(l.http.servers, ss)
	l.http.h.Servers = append(l.http.h.Servers, ss.s)
	b := &block{kind: cServer, srv: ss, lvl: ss.lvl, steps: &ss.s.Rewrite}
	if err := l.walk(n.Children, b); err != nil {
		return err
	}
	if n.Unclosed {
		return nil
	}
	if len(ss.s.Listens) == 0 {
		// nginx listens on *:80 when run as root, *:8000 otherwise.
		port := "8000"
		if os.Geteuid() == 0 {
			port = "80"
		}
		ln := config.Listen{Network: "tcp", Address: "0.0.0.0:" + port, Pos: ss.s.Pos}
		ss.s.Listens = append(ss.s.Listens, ln)
		l.registerListen(ss, ln, false)
	}
	if len(ss.s.Names) == 0 {
		ss.s.Names = []config.ServerName{{Name: "", Kind: config.NameExact}}
	}
	return nil
}

// listenParam is one parameter of listen: set applies it to ln (p is the
// whole parameter, v what follows "=") and returns nginx's message for an
// invalid value, or "". socket marks a socket option: as in nginx, it
// binds the address separately and may be given on one listen per address.
type listenParam struct {
	socket bool
	set    func(ln *config.Listen, p, v string) string
}

// listenParams is the table of listen parameters, keyed by name (with the
// "=" of those that take a value).
var listenParams = map[string]listenParam{
	"default_server": {set: func(ln *config.Listen, _, _ string) string { ln.DefaultServer = true; return "" }},
	"default":        {set: func(ln *config.Listen, _, _ string) string { ln.DefaultServer = true; return "" }},
	"ssl":            {set: func(ln *config.Listen, _, _ string) string { ln.SSL = true; return "" }},
	"http2":          {set: func(ln *config.Listen, _, _ string) string { ln.HTTP2 = true; return "" }},

	"bind":      {socket: true, set: func(ln *config.Listen, _, _ string) string { ln.Bind = true; return "" }},
	"reuseport": {socket: true, set: func(ln *config.Listen, _, _ string) string { ln.ReusePort = true; return "" }},
	"deferred":  {socket: true, set: func(ln *config.Listen, _, _ string) string { ln.Deferred = true; return "" }},
	"backlog=": {socket: true, set: func(ln *config.Listen, p, v string) string {
		n, ok := parseNum(v)
		if !ok || n == 0 {
			return `invalid backlog "` + p + `"`
		}
		ln.Backlog = n
		return ""
	}},
	"rcvbuf=": {socket: true, set: func(ln *config.Listen, p, v string) string {
		return listenBuffer(&ln.RcvBuf, "rcvbuf", p, v)
	}},
	"sndbuf=": {socket: true, set: func(ln *config.Listen, p, v string) string {
		return listenBuffer(&ln.SndBuf, "sndbuf", p, v)
	}},
	"fastopen=": {socket: true, set: func(ln *config.Listen, p, v string) string {
		n, ok := parseNum(v)
		if !ok {
			return `invalid fastopen "` + p + `"`
		}
		ln.FastOpen = n
		return ""
	}},
	"ipv6only=": {socket: true, set: func(ln *config.Listen, p, v string) string {
		switch v {
		case "on":
			ln.IPv6Only, ln.DualStack = true, false
		case "off":
			ln.IPv6Only, ln.DualStack = false, true
		default:
			return `invalid parameter "` + p + `"`
		}
		return ""
	}},
	"so_keepalive=": {socket: true, set: func(ln *config.Listen, _, v string) string {
		ka, ok := parseSoKeepalive(v)
		if !ok {
			return `invalid so_keepalive value: "` + v + `"`
		}
		ln.SoKeepalive = ka
		return ""
	}},

	// Parameters that change the protocol in a way gproxy does not speak
	// (or that need another OS).
	"proxy_protocol": {set: unsupportedListenParam},
	"quic":           {set: unsupportedListenParam},
	"setfib=":        {set: unsupportedListenParam},
	"accept_filter=": {set: unsupportedListenParam},
}

func unsupportedListenParam(_ *config.Listen, p, _ string) string {
	name, _, _ := strings.Cut(p, "=")
	return `the "` + name + `" parameter of the "listen" directive is not supported by gproxy`
}

// listenBuffer parses rcvbuf= or sndbuf= (ngx_parse_size: k or m, no g)
// into *dst. A size beyond what SO_RCVBUF takes is kept: the kernel caps
// it at its maximum anyway (rmem_max, wmem_max).
func listenBuffer(dst *int, name, p, v string) string {
	n, ok := parseSize(v)
	if !ok {
		return "invalid " + name + ` "` + p + `"`
	}
	// 0 asks the kernel for its minimum buffer, and so does 1 (the kernel
	// rounds both up); 0 in the typed config means "not given".
	*dst = int(max(n, 1))
	return ""
}

// parseSoKeepalive reads so_keepalive's value: on, off, or
// [keepidle]:[keepintvl]:[keepcnt] with times in seconds-only nginx time
// syntax ("30m::10"), at least one of them nonzero.
func parseSoKeepalive(v string) (config.SoKeepalive, bool) {
	switch v {
	case "on":
		return config.SoKeepalive{Set: true, On: true}, true
	case "off":
		return config.SoKeepalive{Set: true}, true
	}
	parts := strings.SplitN(v, ":", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	ka := config.SoKeepalive{Set: true, On: true}
	for i, dst := range []*time.Duration{&ka.Idle, &ka.Interval} {
		if parts[i] == "" {
			continue
		}
		d, ok := parseTime(parts[i], true)
		if !ok {
			return ka, false
		}
		*dst = d
	}
	if parts[2] != "" {
		n, ok := parseNum(parts[2])
		if !ok {
			return ka, false
		}
		ka.Count = n
	}
	return ka, ka.Idle != 0 || ka.Interval != 0 || ka.Count != 0
}

func setListen(l *loader, b *block, n *lex.Node) error {
	addr := n.Args[0]
	base := config.Listen{Network: "tcp", Pos: l.pos(n)}
	var addrs []string
	if strings.HasPrefix(addr, "unix:") {
		if len(addr) == len("unix:") {
			return l.errf(n, `no path in the unix domain socket in "%s" of the "listen" directive`, addr)
		}
		base.Network = "unix"
		addrs = []string{addr[len("unix:"):]}
	} else {
		host, port, msg := splitListen(addr)
		if msg != "" {
			return l.errf(n, `%s in "%s" of the "listen" directive`, msg, addr)
		}
		if host == "" || host == "*" {
			addrs = []string{"0.0.0.0:" + port}
		} else {
			ips, err := l.lookup(host)
			if err != nil || len(ips) == 0 {
				return l.errf(n, `host not found in "%s" of the "listen" directive`, addr)
			}
			for _, ip := range ips {
				addrs = append(addrs, net.JoinHostPort(ip, port))
			}
		}
	}
	hasOptions := false
	for _, p := range n.Args[1:] {
		key := p
		if i := strings.IndexByte(p, '='); i >= 0 {
			key = p[:i+1]
		}
		param, ok := listenParams[key]
		if !ok {
			return l.errf(n, "invalid parameter \"%s\"", p)
		}
		if msg := param.set(&base, p, p[len(key):]); msg != "" {
			return l.errf(n, "%s", msg)
		}
		hasOptions = hasOptions || param.socket
	}
	ss := b.srv
	for _, a := range addrs {
		ln := base
		ln.Address = a
		ss.s.Listens = append(ss.s.Listens, ln)
		ss.ssl = ss.ssl || ln.SSL
		if err := l.registerListen(ss, ln, hasOptions); err != nil {
			return err
		}
	}
	return nil
}

// splitListen splits a listen address into host and port; a bare number
// is a port, a bare host gets port 80.
func splitListen(s string) (host, port, msg string) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", "invalid host"
		}
		host = s[1:end]
		if net.ParseIP(host) == nil {
			return "", "", "invalid IPv6 address"
		}
		rest := s[end+1:]
		if rest == "" {
			return host, "80", ""
		}
		if rest[0] != ':' {
			return "", "", "invalid host"
		}
		port = rest[1:]
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
	} else if _, ok := parseNum(s); ok {
		port = s
	} else {
		host, port = s, "80"
	}
	if v, ok := parseNum(port); !ok || v < 1 || v > 65535 {
		return "", "", "invalid port"
	}
	return host, port, ""
}

// registerListen records a listen per address for nginx's per-address
// checks: one default server, listen options given once.
func (l *loader) registerListen(ss *serverState, ln config.Listen, options bool) error {
	key := ln.Network + " " + ln.Address
	if contains(ss.listens, key) {
		return l.errAt(ln.Pos, "a duplicate listen %s", displayListen(ln))
	}
	la := l.http.listens[key]
	if la == nil {
		la = &listenAddr{names: map[string]bool{}, addrDisplay: displayListen(ln)}
		l.http.listens[key] = la
	}
	if options {
		if la.optionsPos != nil {
			return l.errAt(ln.Pos, "duplicate listen options for %s", la.addrDisplay)
		}
		p := ln.Pos
		la.optionsPos = &p
	}
	if ln.DefaultServer {
		if la.defaultPos != nil {
			return l.errAt(ln.Pos, "a duplicate default server for %s", la.addrDisplay)
		}
		p := ln.Pos
		la.defaultPos = &p
	}
	ss.listens = append(ss.listens, key)
	return nil
}

func displayListen(ln config.Listen) string {
	if ln.Network == "unix" {
		return "unix:" + ln.Address
	}
	return ln.Address
}

// checkServerNames warns, like nginx, about a name claimed by two servers
// on one address; the later server's claim is ignored by nginx.
func (l *loader) checkServerNames() {
	for _, ss := range l.http.servers {
		for _, key := range ss.listens {
			la := l.http.listens[key]
			for _, sn := range ss.s.Names {
				if sn.Name == "" {
					continue
				}
				if la.names[sn.Name] {
					l.warns = append(l.warns, Diagnostic{Level: "warn",
						Msg: "conflicting server name \"" + sn.Name + "\" on " + la.addrDisplay + ", ignored"})
					continue
				}
				la.names[sn.Name] = true
			}
		}
	}
}

func setServerName(l *loader, b *block, n *lex.Node) error {
	for _, name := range n.Args {
		sn := config.ServerName{Name: lower(name), Kind: config.NameExact}
		switch {
		case strings.HasPrefix(name, "~"):
			re, err := l.compileRegex(n, name[1:], false)
			if err != nil {
				return err
			}
			sn.Name = name
			sn.Kind = config.NameRegex
			sn.Regex = re
		case name == "$hostname":
			h, _ := os.Hostname()
			sn.Name = lower(h)
		case strings.HasPrefix(name, "*.") && !strings.Contains(name[2:], "*"),
			strings.HasPrefix(name, ".") && len(name) > 1 && !strings.Contains(name, "*"):
			sn.Kind = config.NameWildcardStart
		case strings.HasSuffix(name, ".*") && len(name) > 2 && !strings.Contains(name[:len(name)-2], "*"):
			sn.Kind = config.NameWildcardEnd
		case strings.Contains(name, "*"):
			return l.errf(n, "server name \"%s\" is invalid", name)
		}
		b.srv.s.Names = append(b.srv.s.Names, sn)
	}
	return nil
}

// locationKinds maps a location modifier to its kind.
var locationKinds = map[string]config.LocationKind{
	"=": config.LocExact, "~": config.LocRegex, "~*": config.LocRegexCaseless, "^~": config.LocPrefixNoRegex,
}

func setLocation(l *loader, b *block, n *lex.Node) error {
	loc := &config.Location{Pos: l.pos(n)}
	if len(n.Args) == 2 {
		k, ok := locationKinds[n.Args[0]]
		if !ok {
			return l.errf(n, "invalid location modifier \"%s\"", n.Args[0])
		}
		loc.Kind, loc.Path = k, n.Args[1]
	} else {
		p := n.Args[0]
		switch {
		case strings.HasPrefix(p, "=") && len(p) > 1:
			loc.Kind, loc.Path = config.LocExact, p[1:]
		case strings.HasPrefix(p, "^~") && len(p) > 2:
			loc.Kind, loc.Path = config.LocPrefixNoRegex, p[2:]
		case strings.HasPrefix(p, "~*") && len(p) > 2:
			loc.Kind, loc.Path = config.LocRegexCaseless, p[2:]
		case strings.HasPrefix(p, "~") && len(p) > 1:
			loc.Kind, loc.Path = config.LocRegex, p[1:]
		case strings.HasPrefix(p, "@"):
			loc.Kind, loc.Path = config.LocNamed, p
		default:
			loc.Kind, loc.Path = config.LocPrefix, p
		}
	}
	if loc.Kind == config.LocRegex || loc.Kind == config.LocRegexCaseless {
		re, err := l.compileRegex(n, loc.Path, loc.Kind == config.LocRegexCaseless)
		if err != nil {
			return err
		}
		loc.Regex = re
	}
	if b.loc != nil {
		parent := b.loc.l
		switch {
		case parent.Kind == config.LocExact:
			return l.errf(n, "location \"%s\" cannot be inside the exact location \"%s\"", loc.Path, parent.Path)
		case parent.Kind == config.LocNamed:
			return l.errf(n, "location \"%s\" cannot be inside the named location \"%s\"", loc.Path, parent.Path)
		case loc.Kind == config.LocNamed:
			return l.errf(n, "named location \"%s\" can be on the server level only", loc.Path)
		case loc.Kind != config.LocRegex && loc.Kind != config.LocRegexCaseless && !strings.HasPrefix(loc.Path, parent.Path):
			return l.errf(n, "location \"%s\" is outside location \"%s\"", loc.Path, parent.Path)
		}
		parent.Locations = append(parent.Locations, loc)
	} else {
		b.srv.s.Locations = append(b.srv.s.Locations, loc)
	}
	ls := &locState{l: loc, lvl: newLevel()}
	if l.locStates == nil {
		l.locStates = map[*config.Location]*locState{}
	}
	l.locStates[loc] = ls
	b.srv.locs = append(b.srv.locs, ls)
	return l.walk(n.Children, &block{kind: cLoc, srv: b.srv, loc: ls, lvl: ls.lvl, steps: &loc.Rewrite})
}

// checkDuplicateLocations reports two exact, two prefix (with or without
// ^~) or two named locations with the same path, as nginx does when it
// builds its location tree.
func (l *loader) checkDuplicateLocations(ss *serverState) error {
	type key struct {
		exact bool
		named bool
		path  string
	}
	seen := map[key]bool{}
	for _, ls := range ss.locs {
		loc := ls.l
		if loc.Kind == config.LocRegex || loc.Kind == config.LocRegexCaseless {
			continue
		}
		k := key{exact: loc.Kind == config.LocExact, named: loc.Kind == config.LocNamed, path: loc.Path}
		if seen[k] {
			return l.errAt(loc.Pos, "duplicate location \"%s\"", loc.Path)
		}
		seen[k] = true
	}
	return nil
}

// compileRegex compiles an nginx (PCRE) regex with Go's RE2. RE2 lacks
// lookaround and backreferences; such a regex is rejected rather than
// matched differently.
func (l *loader) compileRegex(n *lex.Node, src string, caseless bool) (*regexp.Regexp, error) {
	expr := src
	if caseless {
		expr = "(?i)" + src
	}
	re, err := regexp.Compile(expr)
	if err == nil {
		return re, nil
	}
	if se, ok := err.(*syntax.Error); ok {
		switch se.Code {
		case syntax.ErrMissingParen:
			return nil, l.errf(n, `pcre2_compile() failed: missing closing parenthesis in "%s"`, src)
		case syntax.ErrMissingBracket:
			return nil, l.errf(n, `pcre2_compile() failed: missing terminating ] for character class in "%s"`, src)
		case syntax.ErrInvalidPerlOp, syntax.ErrInvalidEscape:
			return nil, l.errf(n, `regex "%s" uses PCRE syntax that gproxy's RE2 engine does not support (%s)`, src, se.Expr)
		}
		return nil, l.errf(n, `regex "%s" cannot be compiled by gproxy's RE2 engine: %s`, src, se.Code)
	}
	return nil, l.errf(n, `regex "%s" cannot be compiled by gproxy's RE2 engine: %v`, src, err)
}

func setHTTP2(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	v, err := l.parseFlag(n, n.Args[0])
	if err != nil {
		return err
	}
	if b.srv != nil {
		b.srv.http2 = &v
	} else {
		l.http.http2 = &v
	}
	return nil
}

func setClientMaxBodySize(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	v, ok := parseOffset(n.Args[0])
	if !ok {
		return l.dirErr(n, "invalid value")
	}
	b.set(n.Name, func(s *config.Settings) { s.ClientMaxBodySize, s.ClientMaxBodySizeSet = v, true })
	return nil
}

func setKeepaliveTimeout(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	v, ok := parseTime(n.Args[0], false)
	if !ok {
		return l.dirErr(n, "invalid value")
	}
	if len(n.Args) == 2 {
		// The second value only sets the "Keep-Alive: timeout=" header
		// of HTTP/1.1 responses; it is checked and not used.
		if _, ok := parseTime(n.Args[1], true); !ok {
			return l.dirErr(n, "invalid value")
		}
	}
	b.set(n.Name, func(s *config.Settings) { s.KeepaliveTimeout = v })
	return nil
}

func setKeepaliveRequests(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	v, ok := parseNum(n.Args[0])
	if !ok {
		return l.dirErr(n, "invalid number")
	}
	b.set(n.Name, func(s *config.Settings) { s.KeepaliveRequests = v })
	return nil
}

func setKeepaliveTime(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	v, ok := parseTime(n.Args[0], false)
	if !ok {
		return l.dirErr(n, "invalid value")
	}
	b.set(n.Name, func(s *config.Settings) { s.KeepaliveTime = v })
	return nil
}

func setLargeClientHeaderBuffers(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	num, ok := parseNum(n.Args[0])
	if !ok || num == 0 {
		return l.dirErr(n, "invalid value")
	}
	size, ok := parseSize(n.Args[1])
	if !ok || size == 0 {
		return l.dirErr(n, "invalid value")
	}
	b.set(n.Name, func(s *config.Settings) { s.LargeClientHeaderBuffers = config.Buffers{Number: num, Size: int(size)} })
	return nil
}

func setHTTP2MaxConcurrentStreams(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	v, ok := parseNum(n.Args[0])
	if !ok {
		return l.dirErr(n, "invalid number")
	}
	b.set(n.Name, func(s *config.Settings) { s.HTTP2MaxConcurrentStreams = v })
	return nil
}

func setHTTP2ChunkSize(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	v, ok := parseSize(n.Args[0])
	if !ok {
		return l.dirErr(n, "invalid value")
	}
	if v == 0 {
		return l.errf(n, "the http2 chunk size cannot be zero")
	}
	if v > 1<<24-1 {
		v = 1<<24 - 1
	}
	b.set(n.Name, func(s *config.Settings) { s.HTTP2ChunkSize = int(v) })
	return nil
}

// setResolver reads `resolver address ... [valid=time] [ipv6=on|off]
// [status_zone=name]`.
func setResolver(l *loader, b *block, n *lex.Node) error {
	r := &config.Resolver{IPv6: true, Pos: l.pos(n)}
	for _, a := range n.Args {
		switch {
		case strings.HasPrefix(a, "valid="):
			d, ok := parseTime(a[len("valid="):], true)
			if !ok {
				return l.errf(n, "invalid parameter: %s", a)
			}
			r.Valid = d
		case strings.HasPrefix(a, "ipv6="):
			switch a[len("ipv6="):] {
			case "on":
				r.IPv6 = true
			case "off":
				r.IPv6 = false
			default:
				return l.errf(n, "invalid parameter: %s", a)
			}
		case strings.HasPrefix(a, "ipv4="):
			return l.errf(n, `the "ipv4=" parameter of the "resolver" directive is not supported by gproxy`)
		case strings.HasPrefix(a, "status_zone="):
		default:
			host, port := a, "53"
			if h, p, err := net.SplitHostPort(a); err == nil {
				host, port = h, p
			} else if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") {
				host = a[1 : len(a)-1]
			}
			if v, ok := parseNum(port); !ok || v < 1 || v > 65535 {
				return l.errf(n, `invalid port in "%s"`, a)
			}
			ips, err := l.lookup(host)
			if err != nil || len(ips) == 0 {
				return l.errf(n, `host not found in resolver "%s"`, a)
			}
			for _, ip := range ips {
				r.Addresses = append(r.Addresses, net.JoinHostPort(ip, port))
			}
		}
	}
	if len(r.Addresses) == 0 {
		return l.errf(n, "invalid number of arguments in \"%s\" directive", n.Name)
	}
	if b.kind == cUps {
		if b.ups.Resolver != nil {
			return l.dirErr(n, "is duplicate")
		}
		b.ups.Resolver = r
		return nil
	}
	if err := l.once(b, n); err != nil {
		return err
	}
	b.set(n.Name, func(s *config.Settings) { s.Resolver = r })
	return nil
}

func setResolverTimeout(l *loader, b *block, n *lex.Node) error {
	v, ok := parseTime(n.Args[0], false)
	if b.kind == cUps {
		if !ok {
			return l.dirErr(n, "invalid value")
		}
		b.ups.ResolverTimeout = v
		return nil
	}
	if err := l.once(b, n); err != nil {
		return err
	}
	if !ok {
		return l.dirErr(n, "invalid value")
	}
	b.set(n.Name, func(s *config.Settings) { s.ResolverTimeout = v })
	return nil
}

// checkCertificates makes sure the server's certificates and keys can be
// read, as nginx does by loading them at start and at -t.
func (l *loader) checkCertificates(s config.SSLSettings) error {
	for i, c := range s.Certificates {
		if f, err := os.Open(c); err != nil {
			return &Diagnostic{Level: "emerg", Msg: "cannot load certificate \"" + c + "\": " + openError(c, err)}
		} else {
			f.Close()
		}
		if i >= len(s.CertificateKeys) {
			return &Diagnostic{Level: "emerg", Msg: "no \"ssl_certificate_key\" is defined for certificate \"" + c + "\""}
		}
		k := s.CertificateKeys[i]
		if f, err := os.Open(k); err != nil {
			return &Diagnostic{Level: "emerg", Msg: "cannot load certificate key \"" + k + "\": " + openError(k, err)}
		} else {
			f.Close()
		}
	}
	return nil
}
