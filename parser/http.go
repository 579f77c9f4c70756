package parser

import (
	"errors"
	"net"
	"os"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
	"github.com/gproxy/gproxy/parser/tlsconf"
)

// http {}, server {}, listen, server_name, location and the core settings
// that inherit from http to server to location (nginx's http core module).

var httpCommands = append([]command{
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
	{name: "http2_body_preread_size", ctx: cHTTP | cServer, args: take1, status: statusImplemented, set: setHTTP2BodyPrereadSize},
	{name: "client_header_timeout", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: setTime(func(s *config.Settings, v time.Duration) { s.ClientHeaderTimeout = v })},
	{name: "client_body_timeout", ctx: cHSL, args: take1, status: statusImplemented,
		set: setTime(func(s *config.Settings, v time.Duration) { s.ClientBodyTimeout = v })},
	{name: "send_timeout", ctx: cHSL, args: take1, status: statusImplemented,
		set: setTime(func(s *config.Settings, v time.Duration) { s.SendTimeout = v })},
	{name: "resolver", ctx: cHSL | cUps, args: more1, status: statusImplemented, set: setResolver},
	{name: "resolver_timeout", ctx: cHSL | cUps, args: take1, status: statusImplemented, set: setResolverTimeout},
}, http2Ignored...)

// connectionPoolSize is nginx's default connection_pool_size on 64-bit
// systems; large_client_header_buffers may not be smaller.
const connectionPoolSize = 512

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
		ClientHeaderTimeout:       60 * time.Second,
		ClientBodyTimeout:         60 * time.Second,
		SendTimeout:               60 * time.Second,
		HTTP2BodyPrereadSize:      64 << 10,
		ResolverTimeout:           30 * time.Second,
		Limits: config.LimitSettings{
			ReqStatus: 503, ReqLogLevel: "error", ConnStatus: 503, ConnLogLevel: "error",
		},
		DefaultType:       "text/plain",
		MirrorRequestBody: true,
		GRPC: config.GRPCSettings{
			ConnectTimeout:  60 * time.Second,
			ReadTimeout:     60 * time.Second,
			SendTimeout:     60 * time.Second,
			NextUpstream:    []string{"error", "timeout"},
			BufferSize:      os.Getpagesize(),
			SSLVerifyDepth:  1,
			SSLProtocols:    []string{"TLSv1.2", "TLSv1.3"},
			SSLCiphers:      "DEFAULT",
			SSLSessionReuse: true,
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
	// bits holds what bitmask and MIME type list directives have
	// collected at this level.
	bits map[string][]string
	// exts maps the extensions of types {} at this level (lower case) to
	// their MIME type, for nginx's duplicate extension warning.
	exts map[string]string
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
	if b.lvl == nil {
		// main and events have one level each.
		return l.mainOnce(n)
	}
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
	// zones are the shared memory zones named so far (limit.go).
	zones     map[string]*shmZone
	zoneOrder []string
}

type listenAddr struct {
	servers     int  // how many servers listen on the address
	bind        bool // some listen of the address has bind or a socket option
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
	lmt *level // the limit_except block's directives; nil without one
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
	return l.finishHTTP(config.Pos{File: l.file, Line: n.CloseLine})
}

// finishHTTP runs the checks nginx makes when the http block closes, in
// nginx's order: upstreams are initialised, then servers and locations
// merged, then locations sorted, then variables resolved, then server
// names hashed per address.
// closing is where the http block ends: nginx's merge-time messages name
// that place.
func (l *loader) finishHTTP(closing config.Pos) error {
	hs := l.http
	if err := l.initUpstreams(); err != nil {
		return err
	}
	top := defaultSettings()
	// With no access_log anywhere, nginx logs to logs/access.log.
	top.AccessLogs = []config.Log{{Path: l.path("logs/access.log"), Format: "combined"}}
	httpEff := hs.lvl.effective(top)
	// The core module merges every server before the ssl module does.
	for _, ss := range hs.servers {
		ss.s.Settings = ss.lvl.effective(httpEff)
		if ss.s.Settings.LargeClientHeaderBuffers.Size < connectionPoolSize {
			return l.errAt(closing, `the "large_client_header_buffers" size must be equal to or greater than "connection_pool_size"`)
		}
	}
	for _, ss := range hs.servers {
		ss.s.HTTP2 = false
		if hs.http2 != nil {
			ss.s.HTTP2 = *hs.http2
		}
		if ss.http2 != nil {
			ss.s.HTTP2 = *ss.http2
		}
		if ss.ssl && len(ss.s.Settings.SSL.Certificates) == 0 && !ss.s.Settings.SSL.RejectHandshake {
			// nginx names the server block, where its ssl conf was created.
			return l.errAt(ss.s.Pos, `no "ssl_certificate" is defined for the "listen ... ssl" directive`)
		}
		if err := l.checkCertificates(ss.s.Settings.SSL); err != nil {
			return err
		}
		if err := l.mergeLocations(ss.s.Locations, ss.s.Settings); err != nil {
			return err
		}
		if err := l.checkUpstreamTLS(ss.s.Locations); err != nil {
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
		finishLimitExcept(ls)
		for _, il := range l.ifLevels[loc] {
			if len(il.lvl.ops) > 0 {
				st := il.lvl.effective(loc.Settings)
				il.ifb.Settings = &st
			}
		}
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

// checkServerNames warns, like nginx, about a name claimed by two servers
// on one address; the later server's claim is ignored by nginx.
func (l *loader) checkServerNames() {
	for _, ss := range l.http.servers {
		for _, key := range ss.listens {
			la := l.http.listens[key]
			if la.servers < 2 {
				// nginx hashes the names of an address only when
				// several servers share it.
				continue
			}
			for _, sn := range ss.s.Names {
				if sn.Kind == config.NameRegex {
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

// setHTTP2BodyPrereadSize reads http2_body_preread_size: a size up to
// the largest HTTP/2 window, as nginx checks it.
func setHTTP2BodyPrereadSize(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	v, ok := parseSize(n.Args[0])
	if !ok {
		return l.dirErr(n, "invalid value")
	}
	if v > 1<<31-1 {
		return l.errf(n, "the maximum body preread buffer size is 2147483647")
	}
	b.set(n.Name, func(s *config.Settings) { s.HTTP2BodyPrereadSize = int(v) })
	return nil
}

// setTime builds the setter of a directive taking one time (nginx's
// ngx_conf_set_msec_slot).
func setTime(apply func(s *config.Settings, v time.Duration)) func(l *loader, b *block, n *lex.Node) error {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v, ok := parseTime(n.Args[0], false)
		if !ok {
			return l.dirErr(n, "invalid value")
		}
		b.set(n.Name, func(s *config.Settings) { apply(s, v) })
		return nil
	}
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
			host, port, msg := splitHostPort(a, "53")
			if msg != "" {
				return l.errf(n, `%s in resolver "%s"`, msg, a)
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

// checkCertificates loads the server's TLS material as nginx does at
// start and at -t (tlsconf.NewServer: certificates and keys, password
// file, CA lists, CRL, ticket keys, ciphers, curves), so that -t fails
// on what start would refuse. An expired certificate is a warning.
func (l *loader) checkCertificates(s config.SSLSettings) error {
	if len(s.CertificateKeys) < len(s.Certificates) {
		c := l.asWritten[s.Certificates[len(s.CertificateKeys)]]
		return &Diagnostic{Level: "emerg", Msg: "no \"ssl_certificate_key\" is defined for certificate \"" + c + "\""}
	}
	srv, err := tlsconf.NewServer(&s)
	if err != nil {
		return tlsDiagnostic(err, config.Pos{})
	}
	for _, w := range srv.Warnings {
		l.warnAt(w.Pos, "%s", w.Msg)
	}
	return nil
}

// checkUpstreamTLS loads the grpc_ssl_* material of every location that
// passes to grpcs:// (tlsconf.NewUpstream).
func (l *loader) checkUpstreamTLS(locs []*config.Location) error {
	for _, loc := range locs {
		if gp := loc.GRPCPass; gp != nil && gp.Scheme == "grpcs" {
			host := "" // named per call by variables
			if gp.Upstream != nil {
				host = gp.Upstream.Name
			}
			if _, err := tlsconf.NewUpstream(&loc.Settings.GRPC, host); err != nil {
				return tlsDiagnostic(err, gp.Pos)
			}
		}
		if err := l.checkUpstreamTLS(loc.Locations); err != nil {
			return err
		}
	}
	return nil
}

// tlsDiagnostic turns a tlsconf error into an emerg at its position, or
// at def when it names none.
func tlsDiagnostic(err error, def config.Pos) error {
	var te *tlsconf.Error
	if !errors.As(err, &te) {
		return &Diagnostic{Level: "emerg", Msg: err.Error(), Pos: def}
	}
	p := te.Pos
	if p.File == "" {
		p = def
	}
	return &Diagnostic{Level: "emerg", Msg: te.Msg, Pos: p}
}
