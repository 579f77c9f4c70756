package parser

import (
	"os"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// limit_req and limit_conn (ngx_http_limit_req_module,
// ngx_http_limit_conn_module) and their zones.

var limitLogLevels = []string{"info", "notice", "warn", "error"}

var limitCommands = []command{
	{name: "limit_req_zone", ctx: cHTTP, args: take3 | take4, status: statusImplemented, set: setLimitReqZone},
	{name: "limit_req", ctx: cHSL, args: take123, status: statusImplemented, set: setLimitReq},
	{name: "limit_req_status", ctx: cHSL, args: take1, status: statusImplemented,
		set: statusSetting(func(s *config.Settings, v int) { s.Limits.ReqStatus = v })},
	{name: "limit_req_log_level", ctx: cHSL, args: take1, status: statusImplemented,
		set: enumSetting(limitLogLevels, func(s *config.Settings, v string) { s.Limits.ReqLogLevel = v })},
	{name: "limit_req_dry_run", ctx: cHSL, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.Limits.ReqDryRun = v })},
	{name: "limit_conn_zone", ctx: cHTTP, args: take2, status: statusImplemented, set: setLimitConnZone},
	{name: "limit_conn", ctx: cHSL, args: take2, status: statusImplemented, set: setLimitConn},
	{name: "limit_conn_status", ctx: cHSL, args: take1, status: statusImplemented,
		set: statusSetting(func(s *config.Settings, v int) { s.Limits.ConnStatus = v })},
	{name: "limit_conn_log_level", ctx: cHSL, args: take1, status: statusImplemented,
		set: enumSetting(limitLogLevels, func(s *config.Settings, v string) { s.Limits.ConnLogLevel = v })},
	{name: "limit_conn_dry_run", ctx: cHSL, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.Limits.ConnDryRun = v })},
}

// shmZone is one shared memory zone name, as ngx_shared_memory_add keeps
// it: a limit_req or limit_conn may name a zone before the *_zone
// directive that sizes it.
type shmZone struct {
	module string // "limit_req" or "limit_conn": nginx's tag
	size   int64  // 0 until declared
	bound  bool   // the *_zone directive was read
	req    *config.LimitReqZone
	conn   *config.LimitConnZone
}

// zone finds or adds the zone name for module, with nginx's messages when
// it was declared for the other module or with another size.
func (l *loader) zone(n *lex.Node, name, module string, size int64) (*shmZone, error) {
	hs := l.http
	if hs.zones == nil {
		hs.zones = map[string]*shmZone{}
	}
	z := hs.zones[name]
	if z == nil {
		z = &shmZone{module: module}
		switch module {
		case "limit_req":
			z.req = &config.LimitReqZone{Name: name}
		default:
			z.conn = &config.LimitConnZone{Name: name}
		}
		hs.zones[name] = z
		hs.zoneOrder = append(hs.zoneOrder, name)
	}
	if z.module != module {
		return nil, l.errf(n, "the shared memory zone \"%s\" is already declared for a different use", name)
	}
	if size == 0 {
		return z, nil
	}
	if z.size == 0 {
		z.size = size
		return z, nil
	}
	if z.size != size {
		return nil, l.errf(n, "the size %d of shared memory zone \"%s\" conflicts with already declared size %d", size, name, z.size)
	}
	return z, nil
}

// checkZones is nginx's check when it creates the shared memory zones,
// after the whole configuration was read: every zone named must have
// been sized by its *_zone directive.
func (l *loader) checkZones() error {
	if l.http == nil {
		return nil
	}
	for _, name := range l.http.zoneOrder {
		if z := l.http.zones[name]; z.size == 0 {
			return &Diagnostic{Level: "emerg", Msg: "zero size shared memory zone \"" + name + "\""}
		}
	}
	return nil
}

// zoneParam reads "zone=name:size" of a *_zone directive.
func (l *loader) zoneParam(n *lex.Node, a string) (name string, size int64, err error) {
	spec := a[len("zone="):]
	name, sz, ok := strings.Cut(spec, ":")
	if !ok {
		return "", 0, l.errf(n, "invalid zone size \"%s\"", a)
	}
	size, ok = parseSize(sz)
	if !ok {
		return "", 0, l.errf(n, "invalid zone size \"%s\"", a)
	}
	if size < int64(8*os.Getpagesize()) {
		return "", 0, l.errf(n, "zone \"%s\" is too small", a)
	}
	return name, size, nil
}

// atoiPositive is ngx_atoi followed by nginx's "<= 0 is invalid".
func atoiPositive(v string) (int, bool) {
	n, ok := parseNum(v)
	return n, ok && n > 0
}

func setLimitReqZone(l *loader, b *block, n *lex.Node) error {
	if len(n.Args) == 4 {
		// NGINX Plus's `sync` (zone synchronisation across a cluster);
		// nginx itself takes three arguments.
		for _, a := range n.Args[1:] {
			if a == "sync" {
				return l.errf(n, `the "sync" parameter of "limit_req_zone" is not supported by gproxy`)
			}
		}
		return l.errf(n, "invalid number of arguments in \"%s\" directive", n.Name)
	}
	key, terr := parseTemplate(n.Args[0])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(key)
	var name string
	var size int64
	rate, scale := int64(1), int64(1)
	for _, a := range n.Args[1:] {
		switch {
		case strings.HasPrefix(a, "zone="):
			var err error
			if name, size, err = l.zoneParam(n, a); err != nil {
				return err
			}
		case strings.HasPrefix(a, "rate="):
			v := a[len("rate="):]
			switch {
			case strings.HasSuffix(v, "r/s"):
				v, scale = v[:len(v)-3], 1
			case strings.HasSuffix(v, "r/m"):
				v, scale = v[:len(v)-3], 60
			}
			r, ok := atoiPositive(v)
			if !ok {
				return l.errf(n, "invalid rate \"%s\"", a)
			}
			rate = int64(r)
		default:
			return l.errf(n, "invalid parameter \"%s\"", a)
		}
	}
	if name == "" {
		return l.errf(n, "\"%s\" must have \"zone\" parameter", n.Name)
	}
	z, err := l.zone(n, name, "limit_req", size)
	if err != nil {
		return err
	}
	if z.bound {
		return l.errf(n, "%s \"%s\" is already bound to key \"%s\"", n.Name, name, z.req.Key.Raw)
	}
	z.bound = true
	*z.req = config.LimitReqZone{Name: name, Key: key, Size: size, Rate: rate * 1000 / scale, Pos: l.pos(n)}
	l.http.h.LimitReqZones = append(l.http.h.LimitReqZones, z.req)
	return nil
}

func setLimitConnZone(l *loader, b *block, n *lex.Node) error {
	key, terr := parseTemplate(n.Args[0])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(key)
	a := n.Args[1]
	if !strings.HasPrefix(a, "zone=") {
		return l.errf(n, "invalid parameter \"%s\"", a)
	}
	name, size, err := l.zoneParam(n, a)
	if err != nil {
		return err
	}
	if name == "" {
		return l.errf(n, "\"%s\" must have \"zone\" parameter", n.Name)
	}
	z, err := l.zone(n, name, "limit_conn", size)
	if err != nil {
		return err
	}
	if z.bound {
		return l.errf(n, "%s \"%s\" is already bound to key \"%s\"", n.Name, name, z.conn.Key.Raw)
	}
	z.bound = true
	*z.conn = config.LimitConnZone{Name: name, Key: key, Size: size, Pos: l.pos(n)}
	l.http.h.LimitConnZones = append(l.http.h.LimitConnZones, z.conn)
	return nil
}

// levelZones records the zones a level's limit_req or limit_conn
// directives named, for nginx's "is duplicate" (checked per level, before
// inheritance).
func levelZones(b *block, key, zone string) bool {
	if b.lvl.bits == nil {
		b.lvl.bits = map[string][]string{}
	}
	k := key + " zones"
	if contains(b.lvl.bits[k], zone) {
		return false
	}
	b.lvl.bits[k] = append(b.lvl.bits[k], zone)
	return true
}

func setLimitReq(l *loader, b *block, n *lex.Node) error {
	var z *shmZone
	lr := config.LimitReq{}
	for _, a := range n.Args {
		switch {
		case strings.HasPrefix(a, "zone="):
			var err error
			if z, err = l.zone(n, a[len("zone="):], "limit_req", 0); err != nil {
				return err
			}
		case strings.HasPrefix(a, "burst="):
			v, ok := atoiPositive(a[len("burst="):])
			if !ok {
				return l.errf(n, "invalid burst value \"%s\"", a)
			}
			lr.Burst = v
		case strings.HasPrefix(a, "delay="):
			v, ok := atoiPositive(a[len("delay="):])
			if !ok {
				return l.errf(n, "invalid delay value \"%s\"", a)
			}
			lr.Delay, lr.NoDelay = v, false
		case a == "nodelay":
			lr.NoDelay = true
		default:
			return l.errf(n, "invalid parameter \"%s\"", a)
		}
	}
	if z == nil {
		return l.errf(n, "\"%s\" must have \"zone\" parameter", n.Name)
	}
	if !levelZones(b, n.Name, z.req.Name) {
		return l.dirErr(n, "is duplicate")
	}
	lr.Zone = z.req
	b.add(n.Name, func(s *config.Settings, fresh bool) {
		if fresh {
			s.Limits.Req = nil
		}
		s.Limits.Req = append(s.Limits.Req, lr)
	})
	return nil
}

func setLimitConn(l *loader, b *block, n *lex.Node) error {
	z, err := l.zone(n, n.Args[0], "limit_conn", 0)
	if err != nil {
		return err
	}
	if !levelZones(b, n.Name, z.conn.Name) {
		return l.dirErr(n, "is duplicate")
	}
	v, ok := atoiPositive(n.Args[1])
	if !ok {
		return l.errf(n, "invalid number of connections \"%s\"", n.Args[1])
	}
	if v > 65535 {
		return l.errf(n, "connection limit must be less 65536")
	}
	lc := config.LimitConn{Zone: z.conn, Conn: v}
	b.add(n.Name, func(s *config.Settings, fresh bool) {
		if fresh {
			s.Limits.Conn = nil
		}
		s.Limits.Conn = append(s.Limits.Conn, lc)
	})
	return nil
}

// statusSetting is ngx_conf_set_num_slot with nginx's 400..599 bounds of
// limit_req_status and limit_conn_status.
func statusSetting(f func(s *config.Settings, v int)) setter {
	return numSettingIn(400, 599, f)
}
