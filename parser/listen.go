package parser

import (
	"net"
	"strings"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// listen and its parameters (nginx's ngx_http_core_listen).

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
	} else if i := strings.IndexByte(s, ':'); i >= 0 {
		// nginx takes the first colon: "a:80:1" has the port "80:1".
		host, port = s[:i], s[i+1:]
		// ngx_parse_url's words and order: the port, then the host.
		if _, _, msg := splitHostPort(s, ""); msg != "" {
			return "", "", msg
		}
	} else if _, ok := parseNum(s); ok {
		port = s
	} else if s == "" {
		return "", "", "no host"
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
	la.bind = la.bind || ln.Bind || options
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
	la.servers++
	ss.listens = append(ss.listens, key)
	return nil
}

func displayListen(ln config.Listen) string {
	if ln.Network == "unix" {
		return "unix:" + ln.Address
	}
	return ln.Address
}

// listeningSockets counts the sockets nginx opens for the listens: one per
// address, except that an address without bind on a port where the
// wildcard address of its family listens shares the wildcard's socket.
func (l *loader) listeningSockets() int {
	if l.http == nil {
		return 0
	}
	type famPort struct {
		v4   bool
		port string
	}
	wild := map[famPort]bool{}
	for key := range l.http.listens {
		if host, port, v4, ok := tcpKey(key); ok && net.ParseIP(host).IsUnspecified() {
			wild[famPort{v4, port}] = true
		}
	}
	n := 0
	for key, la := range l.http.listens {
		host, port, v4, ok := tcpKey(key)
		if ok && !la.bind && !net.ParseIP(host).IsUnspecified() && wild[famPort{v4, port}] {
			continue
		}
		n++
	}
	return n
}

// tcpKey splits a listens key of a TCP address.
func tcpKey(key string) (host, port string, v4, ok bool) {
	addr, found := strings.CutPrefix(key, "tcp ")
	if !found {
		return "", "", false, false
	}
	host, port, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if err != nil || ip == nil {
		return "", "", false, false
	}
	return host, port, ip.To4() != nil, true
}
