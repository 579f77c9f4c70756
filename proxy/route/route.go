// Package route decides, for one request, what nginx would decide before any
// content is produced: which virtual server answers (server_name), which
// location applies (the location algorithm), and whether a `return` (plain
// or inside `if`) ends the request first. It also expands nginx variables in
// templates (grpc_set_header values, log formats, map sources, return text).
//
// A Table is built once per running configuration by New and is immutable
// afterwards, so many connections may use it at once without locks. The
// per-stream entry points (Listener.Server, Table.Location, Table.Route,
// Table.Expand, Table.AppendExpand) avoid allocating in the common cases:
// exact or wildcard server names, prefix and exact locations, and templates
// of literals and connection or header variables.
package route

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
)

// Table is the routing state of one running configuration.
type Table struct {
	listeners []*Listener
	servers   map[*config.Server]*serverRoutes

	maps     map[string]*mapVar // by target variable name
	setSlots map[string]int     // variables of set, by name: slot in Request.setVals
	named    map[string]int     // named regex captures: variable name -> slot
	needCaps bool               // some template reads $1..$9 or a named capture
	hostname string
	pid      string
}

// serverRoutes is the precomputed location search of one server.
type serverRoutes struct {
	root  level
	name  string               // $server_name
	named map[string]*Location // location @name, by "@name"
}

// Listener is one listening socket gproxy must open: all listen directives
// with the same network and address share it, and the servers that listen
// there compete for each request by server_name.
type Listener struct {
	Network string // "tcp" or "unix"
	Address string // "0.0.0.0:30051", "[::1]:8080" or a socket path

	// HTTP2 is set when any listen of this address has the http2 parameter
	// or any server on it has `http2 on`.
	HTTP2     bool
	SSL       bool
	ReusePort bool
	IPv6Only  bool
	Backlog   int // 0 = system default

	// Socket options, as in config.Listen (from the one listen of this
	// address that may carry them).
	DualStack   bool
	Bind        bool
	Deferred    bool
	RcvBuf      int
	SndBuf      int
	FastOpen    int
	SoKeepalive config.SoKeepalive

	// Servers are the servers listening here, in configuration order.
	Servers []*config.Server

	names         hostTable[*config.Server]
	defaultServer *config.Server

	// local lists specific addresses on this wildcard's port that share
	// its socket; ip is set on such a folded listener.
	local []*Listener
	ip    netip.Addr
}

// Location is a location block with what the engine needs per stream
// precomputed.
type Location struct {
	Config *config.Location

	// HideResponse holds the lower-case response header names not passed
	// to the client: nginx's grpc defaults (date, server, x-accel-*) plus
	// grpc_hide_header, minus grpc_pass_header. nginx replaces date and
	// server with its own; whether gproxy adds its own is the engine's
	// choice.
	HideResponse map[string]bool

	// SetHeaders is the effective grpc_set_header list (inheritance was
	// done by the parser), names lower-case. An empty value means "do not
	// send this header". nginx's built-in defaults (Host, Connection,
	// TE, ...) are not included: the engine applies them.
	SetHeaders []config.Header
}

// grpcHiddenByDefault is ngx_http_grpc_module's list of upstream response
// headers that never reach the client unless grpc_pass_header names them.
var grpcHiddenByDefault = []string{
	"date",
	"server",
	"x-accel-expires",
	"x-accel-redirect",
	"x-accel-limit-rate",
	"x-accel-buffering",
	"x-accel-charset",
}

// New builds the routing table of an http block. Errors name what is wrong
// and where (FILE:LINE). A nil block gives an empty table.
func New(h *config.HTTP) (*Table, error) {
	t := &Table{
		servers:  map[*config.Server]*serverRoutes{},
		maps:     map[string]*mapVar{},
		named:    map[string]int{},
		setSlots: map[string]int{},
		pid:      strconv.Itoa(os.Getpid()),
	}
	t.hostname, _ = os.Hostname()
	if h == nil {
		return t, nil
	}
	t.collectNamedCaptures(h)
	t.collectSetVars(h)
	if err := t.buildMaps(h.Maps); err != nil {
		return nil, err
	}
	if err := t.buildListeners(h.Servers); err != nil {
		return nil, err
	}
	for _, s := range h.Servers {
		lv, err := buildLevel(s.Locations)
		if err != nil {
			return nil, err
		}
		sr := &serverRoutes{root: lv, name: t.primaryName(s), named: map[string]*Location{}}
		for _, c := range s.Locations {
			if c.Kind == config.LocNamed {
				sr.named[c.Path] = newLocation(c)
			}
		}
		t.servers[s] = sr
	}
	if err := t.checkAllErrorPages(h); err != nil {
		return nil, err
	}
	if err := t.checkTemplates(h); err != nil {
		return nil, err
	}
	return t, nil
}

// Listeners returns one Listener per socket to open: one per distinct
// (network, address), in the order the addresses first appear in the
// configuration, except that, as in nginx, a specific address on the port
// of a wildcard address (127.0.0.1:80 beside 0.0.0.0:80) is served by the
// wildcard's socket unless it has socket options of its own; Route and
// ServerAt then choose among that address's servers by the connection's
// local address.
func (t *Table) Listeners() []*Listener { return t.listeners }

func (t *Table) buildListeners(servers []*config.Server) error {
	byKey := map[string]*Listener{}
	for _, s := range servers {
		for _, ls := range s.Listens {
			addr := canonicalAddress(ls.Network, ls.Address)
			key := ls.Network + " " + addr
			l := byKey[key]
			if l == nil {
				l = &Listener{Network: ls.Network, Address: addr}
				byKey[key] = l
				t.listeners = append(t.listeners, l)
			}
			l.HTTP2 = l.HTTP2 || ls.HTTP2 || s.HTTP2
			l.SSL = l.SSL || ls.SSL
			l.ReusePort = l.ReusePort || ls.ReusePort
			l.IPv6Only = l.IPv6Only || ls.IPv6Only
			if ls.Backlog != 0 {
				l.Backlog = ls.Backlog
			}
			l.DualStack = l.DualStack || ls.DualStack
			l.Bind = l.Bind || ls.Bind
			l.Deferred = l.Deferred || ls.Deferred
			l.RcvBuf = cmp.Or(ls.RcvBuf, l.RcvBuf)
			l.SndBuf = cmp.Or(ls.SndBuf, l.SndBuf)
			l.FastOpen = cmp.Or(ls.FastOpen, l.FastOpen)
			if ls.SoKeepalive.Set {
				l.SoKeepalive = ls.SoKeepalive
			}
			if ls.DefaultServer {
				if l.defaultServer != nil {
					return fmt.Errorf("a duplicate default server for %s in %s", l.Address, posString(ls.Pos))
				}
				l.defaultServer = s
			}
			if !containsServer(l.Servers, s) {
				l.Servers = append(l.Servers, s)
			}
		}
	}
	for _, l := range t.listeners {
		if l.defaultServer == nil {
			l.defaultServer = l.Servers[0]
		}
		if err := l.buildNames(t.hostname); err != nil {
			return err
		}
	}
	return t.foldIntoWildcards()
}

// foldIntoWildcards does what nginx does with `listen 80` beside `listen
// 127.0.0.1:80`: it opens only the wildcard socket and picks the servers of
// the specific address by each connection's local address. An address
// with `bind` or socket options of its own (nginx's implied bind) keeps its
// own socket.
func (t *Table) foldIntoWildcards() error {
	kept := t.listeners[:0:0]
	folded := map[*Listener]bool{}
	for _, w := range t.listeners {
		wap, ok := tcpAddrPort(w)
		if !ok || !wap.Addr().IsUnspecified() {
			continue
		}
		for _, m := range t.listeners {
			ap, ok := tcpAddrPort(m)
			if !ok || ap.Addr().IsUnspecified() || ap.Port() != wap.Port() ||
				ap.Addr().Unmap().Is4() != wap.Addr().Is4() || m.ownSocket() {
				continue
			}
			if m.SSL != w.SSL {
				return fmt.Errorf("gproxy does not support \"ssl\" on %s but not on %s (or the reverse) yet", m.Address, w.Address)
			}
			m.ip = ap.Addr().Unmap()
			w.local = append(w.local, m)
			w.HTTP2 = w.HTTP2 || m.HTTP2
			for _, s := range m.Servers {
				if !containsServer(w.Servers, s) {
					w.Servers = append(w.Servers, s)
				}
			}
			folded[m] = true
		}
	}
	for _, l := range t.listeners {
		if !folded[l] {
			kept = append(kept, l)
		}
	}
	t.listeners = kept
	return nil
}

// ownSocket reports whether l must be bound separately: nginx's bind
// flag, which the bind parameter and every socket option set.
func (l *Listener) ownSocket() bool {
	return l.Bind || l.ReusePort || l.Backlog != 0 || l.IPv6Only || l.DualStack || l.Deferred ||
		l.RcvBuf != 0 || l.SndBuf != 0 || l.FastOpen != 0 || l.SoKeepalive.Set
}

func tcpAddrPort(l *Listener) (netip.AddrPort, bool) {
	if l.Network != "tcp" {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(l.Address)
	return ap, err == nil
}

// forLocal returns the listener whose servers answer a connection accepted
// on local: a specific address folded into this wildcard one, or l.
func (l *Listener) forLocal(local net.Addr) *Listener {
	if len(l.local) == 0 {
		return l
	}
	a, ok := local.(*net.TCPAddr)
	if !ok {
		return l
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return l
	}
	ip = ip.Unmap()
	for _, m := range l.local {
		if m.ip == ip {
			return m
		}
	}
	return l
}

// ServerAt is Server for a connection accepted on the local address local:
// when this wildcard listener also stands for specific addresses on its
// port (see Listeners), the servers of the specific address compete.
func (l *Listener) ServerAt(local net.Addr, host string) *config.Server {
	return l.forLocal(local).Server(host)
}

func (l *Listener) buildNames(hostname string) error {
	l.names = newHostTable[*config.Server]()
	for _, s := range l.Servers {
		for _, n := range s.Names {
			if n.Kind == config.NameRegex {
				if n.Regex == nil {
					return fmt.Errorf("server name %q has no compiled regex in %s", n.Name, posString(s.Pos))
				}
				l.names.addRegex(n.Regex, s)
				continue
			}
			name := strings.ToLower(n.Name)
			if name == "$hostname" {
				name = strings.ToLower(hostname)
			}
			// nginx warns about a name defined twice on one address and
			// keeps the first server; so do we.
			l.names.add(name, s)
		}
	}
	return nil
}

func containsServer(list []*config.Server, s *config.Server) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// canonicalAddress spells equal TCP addresses the same way so "[::1]:80" and
// "[0::1]:80" share one socket; anything unparsable is kept as written.
func canonicalAddress(network, addr string) string {
	if network != "tcp" {
		return addr
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.String()
	}
	return addr
}

// Server returns the virtual server that nginx would choose on this
// listener for a Host header or :authority value (which may carry a port):
// an exact name, then the longest wildcard starting with `*` or `.`, then
// the longest wildcard ending with `*`, then the first matching regex in
// order of appearance, and otherwise the default server (default_server on
// this address, else the first server listening here). An empty or invalid
// host gets the default server. Named captures of a regex name are not
// recorded here; Table.Route records them.
func (l *Listener) Server(host string) *config.Server {
	s, _ := l.server(host, nil, nil)
	return s
}

// DefaultServer is the server that answers requests whose host matches no
// name on this listener.
func (l *Listener) DefaultServer() *config.Server { return l.defaultServer }

// server selects a server; with r and t non-nil, named captures of a
// matching regex name are stored in r. valid is false when host is
// non-empty but not a valid host name (nginx answers 400 then).
func (l *Listener) server(host string, t *Table, r *Request) (s *config.Server, valid bool) {
	h, ok := normalizeHost(host)
	if !ok {
		return l.defaultServer, host == ""
	}
	if s, ok := l.names.lookup(h, t, r); ok {
		return s, true
	}
	return l.defaultServer, true
}

// Location runs nginx's location algorithm for a request path of server s.
// path is the :path of the request; its query string is ignored and it is
// decoded and normalised first (see NormalizePath). It returns nil when no
// location matches or the path is invalid.
func (t *Table) Location(s *config.Server, path string) *Location {
	sr := t.servers[s]
	if sr == nil {
		return nil
	}
	uri, ok := NormalizePath(path)
	if !ok {
		return nil
	}
	return sr.root.find(uri, nil, nil)
}

// Route runs, for one request on listener l, the phases nginx runs before
// producing content: it selects the virtual server by r.Authority (or the
// Host header) and stores it in r.Server, runs the server's `return`/`if`
// steps, finds the location, then runs the location's steps.
//
// When it returns a non-nil Action the engine answers with it and proxies
// nothing. Besides actions from `return`, Route answers:
//   - 400 when the host or the path is invalid, as nginx does;
//   - 404 when no location matches, or the location has neither grpc_pass
//     nor a `return` that fired. nginx would serve static files from root
//     there; gproxy serves no files.
//
// With a nil Action, loc is a location with grpc_pass or a monitor
// (stub_status, gproxy_metrics, gproxy_status).
func (t *Table) Route(l *Listener, r *Request) (srv *config.Server, loc *Location, a *Action) {
	host := r.Authority
	if host == "" {
		host = r.header("host")
	}
	srv, valid := l.forLocal(r.LocalAddr).server(host, t, r)
	r.Server = srv
	if !valid {
		return srv, nil, &Action{Code: 400}
	}
	uri, ok := r.uri()
	if !ok {
		return srv, nil, &Action{Code: 400}
	}
	if a, _ := t.run(srv.Rewrite, r); a != nil {
		return srv, nil, a
	}
	sr := t.servers[srv]
	// rewrite ... last (or a rewrite without flag) searches the location
	// again, at most maxRewrites times, as nginx's internal redirect
	// limit.
	for range maxRewrites {
		uri, _ = r.uri()
		loc = nil
		if sr != nil {
			loc = sr.root.find(uri, t, r)
		}
		if loc == nil || loc.Config.Internal {
			return srv, nil, &Action{Code: 404}
		}
		r.IfSettings, r.IfPass, r.uriChanged = nil, nil, false
		a, f := t.run(loc.Config.Rewrite, r)
		if a != nil {
			return srv, loc, a
		}
		if f == flowLast || (f == flowNext && r.uriChanged) {
			continue
		}
		if loc.Config.GRPCPass == nil && r.IfPass == nil && loc.Config.Monitor == nil {
			return srv, loc, &Action{Code: 404}
		}
		return srv, loc, nil
	}
	// nginx: "rewrite or internal redirection cycle".
	return srv, loc, &Action{Code: 500}
}

// maxRewrites bounds location searches per request (nginx allows 10 URI
// changes).
const maxRewrites = 10

// collectSetVars gives every variable of a set directive its slot.
func (t *Table) collectSetVars(h *config.HTTP) {
	var steps func([]config.RewriteStep)
	steps = func(ss []config.RewriteStep) {
		for _, s := range ss {
			if s.Set != nil && s.Set.Name != "args" {
				if _, ok := t.setSlots[s.Set.Name]; !ok {
					t.setSlots[s.Set.Name] = len(t.setSlots)
				}
			}
			if s.If != nil {
				steps(s.If.Body)
			}
		}
	}
	var locs func([]*config.Location)
	locs = func(ls []*config.Location) {
		for _, l := range ls {
			steps(l.Rewrite)
			locs(l.Locations)
		}
	}
	for _, s := range h.Servers {
		steps(s.Rewrite)
		locs(s.Locations)
	}
}

func newLocation(c *config.Location) *Location {
	g := c.Settings.GRPC
	hide := make(map[string]bool, len(grpcHiddenByDefault)+len(g.HideHeaders))
	for _, n := range grpcHiddenByDefault {
		hide[n] = true
	}
	for _, n := range g.HideHeaders {
		hide[strings.ToLower(n)] = true
	}
	for _, n := range g.PassHeaders {
		delete(hide, strings.ToLower(n))
	}
	set := make([]config.Header, len(g.SetHeaders))
	for i, h := range g.SetHeaders {
		set[i] = config.Header{Name: strings.ToLower(h.Name), Value: h.Value}
	}
	return &Location{Config: c, HideResponse: hide, SetHeaders: set}
}

func posString(p config.Pos) string {
	return p.File + ":" + strconv.Itoa(p.Line)
}

// checkAllErrorPages runs checkErrorPages on every level of every server.
func (t *Table) checkAllErrorPages(h *config.HTTP) error {
	var walk func(s *config.Server, locs []*config.Location) error
	walk = func(s *config.Server, locs []*config.Location) error {
		for _, l := range locs {
			if err := t.checkErrorPages(s, &l.Settings); err != nil {
				return err
			}
			if err := walk(s, l.Locations); err != nil {
				return err
			}
		}
		return nil
	}
	for _, s := range h.Servers {
		if err := t.checkErrorPages(s, &s.Settings); err != nil {
			return err
		}
		if err := walk(s, s.Locations); err != nil {
			return err
		}
	}
	return nil
}
