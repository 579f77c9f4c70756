// Package access is gproxy's access phase: what nginx decides about a
// request after it has chosen the location and before it contacts the
// upstream. In nginx's order:
//
//  1. realip (set_real_ip_from, real_ip_header, real_ip_recursive): a
//     request from a trusted address takes its client address from a
//     header; $remote_addr and everything below see that address;
//  2. limit_req (preaccess): reject, delay or pass by request rate;
//  3. limit_conn (preaccess): reject or count the request until it ends;
//  4. allow/deny, then auth_basic (access), combined by satisfy all|any;
//     a limit_except block replaces the location's access settings for
//     the methods it does not list.
//
// Phase.Run returns a Result: go on (maybe after Delay, holding limit_conn
// counts to release at the end), or refuse with an HTTP status and extra
// headers (WWW-Authenticate). How a refusal reaches the client (an nginx
// error page for HTTP, a gRPC status for gRPC) is the engine's business.
package access

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/limit"
	"github.com/gproxy/gproxy/proxy/route"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/http2/hpack"
)

// Phase is the access phase of one location. It is immutable and safe for
// concurrent use.
type Phase struct {
	tbl *route.Table
	log *zap.Logger

	realip config.RealIP

	req       []limit.Req
	reqKeys   []key // each limit_req's zone key, resolved once
	reqDryRun bool
	reqStatus int
	reqLevel  zapcore.Level

	conn       []limit.Conn
	connKeys   []key
	connDryRun bool
	connStatus int
	connLevel  zapcore.Level

	checks *checks
	except *config.LimitExcept
	// exceptChecks are the checks of requests whose method the
	// limit_except block does not list.
	exceptChecks *checks
}

// checks are the access-phase handlers of one configuration level.
type checks struct {
	rules      []config.AccessRule
	satisfyAny bool
	realm      *config.Template
	users      *userFile  // a fixed file name
	usersVar   *userFiles // a file name with variables
}

// Zones are the running limit zones a configuration's locations bind to.
type Zones struct {
	Req  map[*config.LimitReqZone]*limit.ReqZone
	Conn map[*config.LimitConnZone]*limit.ConnZone
}

// New builds the phase of a location from its merged settings and
// limit_except block (nil if none). It returns nil when the location has
// nothing to check, so the engine skips the phase at no cost.
func New(st *config.Settings, le *config.LimitExcept, tbl *route.Table, zones Zones, log *zap.Logger) (*Phase, error) {
	if log == nil {
		log = zap.NewNop()
	}
	p := &Phase{
		tbl:        tbl,
		log:        log,
		realip:     st.Access.RealIP,
		reqDryRun:  st.Limits.ReqDryRun,
		reqStatus:  st.Limits.ReqStatus,
		reqLevel:   level(st.Limits.ReqLogLevel),
		connDryRun: st.Limits.ConnDryRun,
		connStatus: st.Limits.ConnStatus,
		connLevel:  level(st.Limits.ConnLogLevel),
		except:     le,
	}
	for _, r := range st.Limits.Req {
		p.req = append(p.req, limit.NewReq(zones.Req[r.Zone], r))
		p.reqKeys = append(p.reqKeys, compileKey(tbl, r.Zone.Key))
	}
	for _, c := range st.Limits.Conn {
		p.conn = append(p.conn, limit.Conn{Zone: zones.Conn[c.Zone], Max: c.Conn})
		p.connKeys = append(p.connKeys, compileKey(tbl, c.Zone.Key))
	}
	var err error
	if p.checks, err = newChecks(&st.Access); err != nil {
		return nil, err
	}
	if le != nil {
		if p.exceptChecks, err = newChecks(&le.Access); err != nil {
			return nil, err
		}
	}
	if len(p.realip.From) == 0 && !p.realip.FromUnix && len(p.req) == 0 && len(p.conn) == 0 &&
		p.checks == nil && p.exceptChecks == nil {
		return nil, nil
	}
	return p, nil
}

func newChecks(a *config.AccessSettings) (*checks, error) {
	c := &checks{rules: a.Rules, satisfyAny: a.SatisfyAny}
	if a.AuthBasic != nil && a.UserFile != nil {
		c.realm = a.AuthBasic
		if t := a.UserFile.Template; t != nil {
			c.usersVar = &userFiles{tmpl: *t, prefix: a.UserFile.ConfPrefix, files: map[string]*userFile{}}
		} else {
			uf, err := newUserFile(a.UserFile)
			if err != nil {
				return nil, err
			}
			c.users = uf
		}
	}
	if len(c.rules) == 0 && c.realm == nil {
		return nil, nil
	}
	return c, nil
}

// level maps limit_*_log_level to the error log's levels (zap has no
// notice: it shares info's, as in the error log).
func level(s string) zapcore.Level {
	switch s {
	case "info", "notice":
		return zapcore.InfoLevel
	case "warn":
		return zapcore.WarnLevel
	}
	return zapcore.ErrorLevel
}

// delayLevel is nginx's level for "delaying request": one below
// limit_req_log_level (info stays info).
func delayLevel(l zapcore.Level) zapcore.Level {
	if l <= zapcore.InfoLevel {
		return zapcore.InfoLevel
	}
	return l - 1
}

// Result is the phase's decision for one request.
type Result struct {
	// Status is 0 to go on, else the HTTP status nginx answers with:
	// 403 (allow/deny), 401 (auth_basic), 500 (auth_basic could not
	// decide), limit_req_status or limit_conn_status (503 by default).
	Status int
	// Limited is set when a limit refused (Status is its *_status).
	Limited bool
	// Header holds the headers that go with the refusal:
	// WWW-Authenticate for 401.
	Header []hpack.HeaderField
	// Message says why, for gRPC's grpc-message.
	Message string
	// Delay is how long limit_req makes the request wait before it goes
	// to the upstream.
	Delay time.Duration
	// Held are limit_conn counts the request holds until it ends: the
	// engine calls Held.Release then (also after a refusal).
	Held limit.Held
}

// Run decides for r, which Route has routed to this phase's location.
// It may change r: RemoteAddr (realip, with ConnAddr keeping the
// connection's), LimitReqStatus and LimitConnStatus.
func (p *Phase) Run(r *route.Request) Result {
	var res Result
	if len(p.realip.From) > 0 || p.realip.FromUnix {
		p.realIP(r)
	}
	if len(p.req) > 0 && p.limitReq(r, &res) {
		return res
	}
	if len(p.conn) > 0 && p.limitConn(r, &res) {
		return res
	}
	c := p.checks
	if p.except != nil && !p.except.Allows(r.Method) {
		c = p.exceptChecks
	}
	if c != nil {
		p.access(c, r, &res)
	}
	return res
}

// key is a zone key with its variables resolved once, so a request does
// no lookup by name.
type key []keyPart

type keyPart struct {
	lit string
	v   route.Var
	ok  bool // v is a variable route can expand
}

func compileKey(tbl *route.Table, t config.Template) key {
	k := make(key, 0, len(t.Parts))
	for _, part := range t.Parts {
		if part.Var == "" {
			k = append(k, keyPart{lit: part.Literal})
			continue
		}
		v, ok := tbl.Var(part.Var)
		k = append(k, keyPart{v: v, ok: ok})
	}
	return k
}

func (k key) append(dst []byte, tbl *route.Table, r *route.Request) []byte {
	for i := range k {
		switch p := &k[i]; {
		case p.ok:
			dst, _ = tbl.AppendVar(dst, p.v, r)
		default:
			dst = append(dst, p.lit...)
		}
	}
	return dst
}

// keyBufs hold the zone keys of one request while its limits decide
// (route's AppendExpand would move a stack buffer to the heap).
var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

func (p *Phase) limitReq(r *route.Request, res *Result) bool {
	var kb [4][]byte
	bp := keyBufs.Get().(*[]byte)
	defer keyBufs.Put(bp)
	keys, b := kb[:0], (*bp)[:0]
	for i := range p.reqKeys {
		start := len(b)
		b = p.reqKeys[i].append(b, p.tbl, r)
		keys = append(keys, b[start:len(b):len(b)])
	}
	*bp = b
	lr := limit.CheckReq(p.req, keys, p.reqDryRun, r.Start)
	r.LimitReqStatus = lr.Status.String()
	switch lr.Status {
	case limit.ReqRejected, limit.ReqRejectedDryRun:
		dry := ""
		if lr.Status == limit.ReqRejectedDryRun {
			dry = ", dry run"
		}
		if lr.NoMemory {
			p.logf(zapcore.ErrorLevel, r, "could not allocate node in limit_req zone \""+lr.Zone+"\"")
		} else {
			p.logf(p.reqLevel, r, "limiting requests"+dry+", excess: "+milli(lr.Excess)+" by zone \""+lr.Zone+"\"")
		}
		if lr.Status == limit.ReqRejected {
			res.Status, res.Limited = p.reqStatus, true
			res.Message = "limiting requests by zone \"" + lr.Zone + "\" (limit_req)"
			return true
		}
	case limit.ReqDelayed, limit.ReqDelayedDryRun:
		dry := ""
		if lr.Status == limit.ReqDelayedDryRun {
			dry = ", dry run"
		}
		p.logf(delayLevel(p.reqLevel), r, "delaying request"+dry+", excess: "+milli(lr.Excess)+", by zone \""+lr.Zone+"\"")
		res.Delay = lr.Delay
	}
	return false
}

func (p *Phase) limitConn(r *route.Request, res *Result) bool {
	var kb [4][]byte
	bp := keyBufs.Get().(*[]byte)
	defer keyBufs.Put(bp)
	keys, b := kb[:0], (*bp)[:0]
	for i := range p.connKeys {
		start := len(b)
		b = p.connKeys[i].append(b, p.tbl, r)
		keys = append(keys, b[start:len(b):len(b)])
	}
	*bp = b
	lc := limit.CheckConn(p.conn, keys, p.connDryRun, &res.Held)
	r.LimitConnStatus = lc.Status.String()
	switch lc.Status {
	case limit.ConnRejected, limit.ConnRejectedDryRun:
		dry := ""
		if lc.Status == limit.ConnRejectedDryRun {
			dry = ", dry run,"
		}
		if lc.NoMemory {
			p.logf(zapcore.ErrorLevel, r, "could not allocate node in limit_conn zone \""+lc.Zone+"\"")
		} else {
			p.logf(p.connLevel, r, "limiting connections"+dry+" by zone \""+lc.Zone+"\"")
		}
		if lc.Status == limit.ConnRejected {
			res.Status, res.Limited = p.connStatus, true
			res.Message = "limiting connections by zone \"" + lc.Zone + "\" (limit_conn)"
			return true
		}
	}
	return false
}

// verdict is what one access handler says: declined (it has nothing to
// say about the request), ok, or an HTTP status.
const (
	declined = -1
	ok       = 0
)

// access runs allow/deny, then auth_basic, combined as satisfy says
// (ngx_http_core_access_phase and ngx_http_core_post_access_phase).
func (p *Phase) access(c *checks, r *route.Request, res *Result) {
	type handler func() (int, []hpack.HeaderField, string)
	handlers := [2]handler{
		func() (int, []hpack.HeaderField, string) { return p.rules(c, r) },
		func() (int, []hpack.HeaderField, string) { return p.auth(c, r) },
	}
	var code int
	var hdr []hpack.HeaderField
	var msg string
	for _, h := range handlers {
		v, hd, m := h()
		switch {
		case v == declined:
			continue
		case !c.satisfyAny && v == ok:
			continue
		case !c.satisfyAny:
			res.Status, res.Header, res.Message = v, hd, m
			return
		case v == ok:
			return // satisfy any: one is enough
		case v == 403 || v == 401:
			if code != 401 {
				code, hdr, msg = v, hd, m
			}
		default:
			res.Status, res.Header, res.Message = v, hd, m
			return
		}
	}
	if code != 0 {
		res.Status, res.Header, res.Message = code, hdr, msg
	}
}

// rules is ngx_http_access_module: the first rule that applies to the
// client decides; none applying declines.
func (p *Phase) rules(c *checks, r *route.Request) (int, []hpack.HeaderField, string) {
	if len(c.rules) == 0 {
		return declined, nil, ""
	}
	deny, matched := matchRules(c.rules, r.RemoteAddr)
	switch {
	case !matched:
		return declined, nil, ""
	case deny:
		if !c.satisfyAny {
			p.logf(zapcore.ErrorLevel, r, "access forbidden by rule")
		}
		return 403, nil, "access forbidden by rule"
	}
	return ok, nil, ""
}

// matchRules finds the first rule that applies to addr: IPv4 rules (and
// all) for IPv4 clients, IPv6 rules for IPv6 ones, unix: rules for
// Unix-domain clients.
func matchRules(rules []config.AccessRule, addr net.Addr) (deny, matched bool) {
	var ip netip.Addr
	unix := false
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
	case *net.UnixAddr:
		unix = true
	default:
		return false, false
	}
	for i := range rules {
		ru := &rules[i]
		switch {
		case ru.All:
		case ru.Unix:
			if !unix {
				continue
			}
		default:
			if unix || !ru.Prefix.Contains(ip) {
				continue
			}
		}
		return ru.Deny, true
	}
	return false, false
}

// auth is ngx_http_auth_basic_module: declined where auth_basic is not
// configured or its realm is "off" for this request.
func (p *Phase) auth(c *checks, r *route.Request) (int, []hpack.HeaderField, string) {
	if c.realm == nil {
		return declined, nil, ""
	}
	realm := p.tbl.Expand(*c.realm, r)
	if realm == "off" {
		return declined, nil, ""
	}
	challenge := []hpack.HeaderField{{Name: "www-authenticate", Value: "Basic realm=\"" + realm + "\""}}
	user, pass, found := basicCredentials(headerValue(r.Headers, "authorization"))
	if !found {
		p.logf(zapcore.InfoLevel, r, "no user/password was provided for basic authentication")
		return 401, challenge, "no user/password was provided for basic authentication"
	}
	uf := c.users
	var t *userTable
	if c.usersVar != nil {
		uf, t = c.usersVar.table(p.tbl.Expand(c.usersVar.tmpl, r))
	} else {
		t = uf.table()
	}
	if t.err != nil {
		// nginx: 403 when the file does not exist, 500 for any other
		// failure (gproxy adds a password format it cannot check).
		if errors.Is(t.err, fs.ErrNotExist) {
			p.logf(zapcore.ErrorLevel, r, "open() \""+uf.path+"\" failed (2: No such file or directory)")
			return 403, nil, "auth_basic_user_file not found"
		}
		p.logf(zapcore.ErrorLevel, r, "auth_basic_user_file \""+uf.path+"\": "+t.err.Error())
		return 500, nil, "auth_basic_user_file cannot be read"
	}
	m := t.users[user]
	if m == nil {
		p.logf(zapcore.ErrorLevel, r, "user \""+user+"\" was not found in \""+uf.path+"\"")
		return 401, challenge, "user \"" + user + "\" was not found"
	}
	if !m.Match(pass) {
		p.logf(zapcore.ErrorLevel, r, "user \""+user+"\": password mismatch")
		return 401, challenge, "user \"" + user + "\": password mismatch"
	}
	return ok, nil, ""
}

// basicCredentials decodes "Basic base64(user:password)" as
// ngx_http_auth_basic_user does: the scheme without regard to case,
// spaces before the credentials skipped, a non-empty user.
func basicCredentials(h string) (user, pass string, ok bool) {
	if len(h) < 6 || !strings.EqualFold(h[:6], "Basic ") {
		return "", "", false
	}
	enc := strings.TrimLeft(h[6:], " ")
	if enc == "" {
		return "", "", false
	}
	dec, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		if dec, err = base64.RawStdEncoding.DecodeString(enc); err != nil {
			return "", "", false
		}
	}
	u, pw, found := strings.Cut(string(dec), ":")
	if !found || u == "" {
		return "", "", false
	}
	return u, pw, true
}

func headerValue(hs []hpack.HeaderField, name string) string {
	for i := range hs {
		if hs[i].Name == name {
			return hs[i].Value
		}
	}
	return ""
}

// milli formats thousandths as nginx prints an excess: "1.500".
func milli(v int64) string {
	frac := strconv.FormatInt(v%1000, 10)
	return strconv.FormatInt(v/1000, 10) + "." + strings.Repeat("0", 3-len(frac)) + frac
}

// logf writes an error log line in nginx's shape: "MSG, client: IP,
// server: NAME, request: "METHOD PATH PROTO", host: "HOST"", with the
// client connection's number as the "connection" field (the error log
// prints it as nginx's "*CONN").
func (p *Phase) logf(lvl zapcore.Level, r *route.Request, msg string) {
	ce := p.log.Check(lvl, "")
	if ce == nil {
		return
	}
	var b strings.Builder
	b.WriteString(msg)
	b.WriteString(", client: ")
	b.WriteString(addrString(r.RemoteAddr))
	b.WriteString(", server: ")
	if r.Server != nil && len(r.Server.Names) > 0 {
		b.WriteString(r.Server.Names[0].Name)
	}
	b.WriteString(`, request: "`)
	b.WriteString(r.Method + " " + r.Path + " " + r.Proto)
	b.WriteByte('"')
	if r.Authority != "" {
		b.WriteString(`, host: "` + r.Authority + `"`)
	}
	ce.Message = b.String()
	ce.Write(zap.Uint64("connection", r.ConnID))
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	if t, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return ip.Unmap().String()
		}
	}
	return a.String()
}
