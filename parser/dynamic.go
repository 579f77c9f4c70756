package parser

import (
	"fmt"
	"strings"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// What keeps an upstream's peers moving while gproxy runs: NGINX Plus's
// zone, health_check (ngx_http_upstream_hc_module, type=grpc) and
// least_time, and gproxy's own gproxy_outlier_detection (after Envoy's
// outlier_detection).

var dynamicCommands = []command{
	{name: "zone", ctx: cUps, args: take12, status: statusImplemented, set: setZone},
	{name: "health_check", ctx: cLoc, args: anyArg, status: statusImplemented, set: setHealthCheck},
	{name: "least_time", ctx: cUps, args: take12, status: statusImplemented, set: setLeastTime},
	{name: "gproxy_outlier_detection", ctx: cUps, args: anyArg, status: statusImplemented, set: setOutlierDetection},
}

func setZone(l *loader, b *block, n *lex.Node) error {
	if err := l.checkValue(n, isZone); err != nil {
		return err
	}
	b.ups.Zone = n.Args[0]
	return nil
}

// setHealthCheck reads `health_check [interval=time] [jitter=time]
// [fails=number] [passes=number] [port=number] [mandatory [persistent]]
// type=grpc [grpc_service=name] [grpc_status=code]` with Plus's order
// rules: type=grpc after every other parameter, grpc_service= and
// grpc_status= after it, persistent only with mandatory.
func setHealthCheck(l *loader, b *block, n *lex.Node) error {
	hc := config.HealthCheck{Interval: 5 * time.Second, Fails: 1, Passes: 1, GRPCStatus: -1, Pos: l.pos(n)}
	grpc := false
	for _, a := range n.Args {
		key, val, hasVal := strings.Cut(a, "=")
		if hasVal {
			key += "="
		}
		if grpc && key != "grpc_service=" && key != "grpc_status=" {
			return l.errf(n, `"type=grpc" must be the last parameter of "health_check" except "grpc_service=" and "grpc_status=", found "%s"`, a)
		}
		bad := false
		switch key {
		case "interval=", "jitter=":
			d, ok := parseTime(val, false)
			bad = !ok || (key == "interval=" && d <= 0)
			if key == "interval=" {
				hc.Interval = d
			} else {
				hc.Jitter = d
			}
		case "fails=", "passes=":
			v, ok := parseNum(val)
			bad = !ok || v == 0
			if key == "fails=" {
				hc.Fails = v
			} else {
				hc.Passes = v
			}
		case "port=":
			v, ok := parseNum(val)
			bad = !ok || v < 1 || v > 65535
			hc.Port = v
		case "mandatory":
			hc.Mandatory = true
		case "persistent":
			hc.Persistent = true
		case "type=":
			bad = val != "grpc"
			grpc = true
		case "grpc_service=":
			bad = !grpc
			hc.GRPCService = val
		case "grpc_status=":
			v, ok := parseNum(val)
			bad = !grpc || !ok || v < 1 || v > 16
			hc.GRPCStatus = v
		case "uri=", "match=":
			// Plus's HTTP checks; with type=grpc Plus forbids them.
			return l.errf(n, `the "%s" parameter of "health_check" is not supported by gproxy: only "type=grpc" checks are`, key)
		case "keepalive_time=":
			return l.errf(n, `the "keepalive_time=" parameter of "health_check" is not supported by gproxy`)
		default:
			bad = true
		}
		if bad {
			return l.errf(n, `invalid parameter "%s"`, a)
		}
	}
	if hc.Persistent && !hc.Mandatory {
		return l.errf(n, `"persistent" requires "mandatory" in "health_check"`)
	}
	if !grpc {
		// An HTTP check (GET /) means nothing to a gRPC backend.
		return l.errf(n, `"health_check" without "type=grpc" is not supported by gproxy`)
	}
	loc := b.loc.l
	loc.HealthChecks = append(loc.HealthChecks, hc)
	return nil
}

// setLeastTime reads NGINX Plus's `least_time header|last_byte [inflight]`.
func setLeastTime(l *loader, b *block, n *lex.Node) error {
	bal := config.Balance{Method: n.Name, Pos: l.pos(n)}
	switch n.Args[0] {
	case "header", "last_byte":
		bal.LeastTime = n.Args[0]
	default:
		return l.errf(n, "invalid parameter \"%s\"", n.Args[0])
	}
	if len(n.Args) == 2 {
		if n.Args[1] != "inflight" {
			return l.errf(n, "invalid parameter \"%s\"", n.Args[1])
		}
		bal.Inflight = true
	}
	u := b.ups
	if u.Balance.Pos.File != "" {
		l.warn(n, "load balancing method redefined")
	}
	u.Balance = bal
	return nil
}

// setOutlierDetection reads gproxy's `gproxy_outlier_detection
// [consecutive=N] [interval=time] [base_ejection_time=time]
// [max_ejection_time=time] [max_ejection_percent=N]`, named after Envoy's
// outlier_detection fields (consecutive_5xx, interval, base_ejection_time,
// max_ejection_time, max_ejection_percent) with Envoy's defaults.
func setOutlierDetection(l *loader, b *block, n *lex.Node) error {
	u := b.ups
	if u.Outlier != nil {
		return l.dirErr(n, "is duplicate")
	}
	od := &config.OutlierDetection{
		Consecutive: 5, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second,
		MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10, Pos: l.pos(n),
	}
	for _, a := range n.Args {
		key, val, _ := strings.Cut(a, "=")
		bad := false
		switch key + "=" {
		case "consecutive=":
			od.Consecutive, bad = notPositive(val)
		case "max_ejection_percent=":
			v, ok := parseNum(val)
			od.MaxEjectionPercent, bad = v, !ok || v > 100
		case "interval=", "base_ejection_time=", "max_ejection_time=":
			d, ok := parseTime(val, false)
			bad = !ok || d <= 0
			switch key {
			case "interval":
				od.Interval = d
			case "base_ejection_time":
				od.BaseEjectionTime = d
			default:
				od.MaxEjectionTime = d
			}
		default:
			bad = true
		}
		if bad || !strings.Contains(a, "=") {
			return l.errf(n, `invalid parameter "%s"`, a)
		}
	}
	if od.MaxEjectionTime < od.BaseEjectionTime {
		return l.errf(n, `"max_ejection_time" must not be less than "base_ejection_time" in "%s" directive`, n.Name)
	}
	u.Outlier = od
	return nil
}

func notPositive(v string) (int, bool) {
	n, ok := parseNum(v)
	return n, !ok || n == 0
}

// checkHealthChecks runs, once grpc_pass targets are known, Plus's rule
// that a checked group lives in shared memory (has a zone), and that a
// health_check stands beside a grpc_pass.
// maxHealthChecks bounds the health checks of one group (the running
// group keeps a bit per check).
const maxHealthChecks = 64

func (l *loader) checkHealthChecks() error {
	perGroup := map[*config.Upstream]int{}
	var walk func([]*config.Location) error
	walk = func(locs []*config.Location) error {
		for _, loc := range locs {
			if len(loc.HealthChecks) > 0 {
				hc := loc.HealthChecks[0]
				if loc.GRPCPass != nil {
					perGroup[loc.GRPCPass.Upstream] += len(loc.HealthChecks)
				}
				switch {
				case loc.GRPCPass != nil && perGroup[loc.GRPCPass.Upstream] > maxHealthChecks:
					return l.errAt(hc.Pos, `more than %d "health_check" directives for upstream "%s"`, maxHealthChecks, loc.GRPCPass.Upstream.Name)
				case loc.GRPCPass == nil:
					return l.errAt(hc.Pos, `"health_check" requires "grpc_pass" to an upstream in the same location`)
				case loc.GRPCPass.Upstream.Zone == "":
					u := loc.GRPCPass.Upstream
					return l.errAt(hc.Pos, "%s", zoneMsg("health check", u))
				}
			}
			if err := walk(loc.Locations); err != nil {
				return err
			}
		}
		return nil
	}
	for _, ss := range l.http.servers {
		if err := walk(ss.s.Locations); err != nil {
			return err
		}
	}
	return nil
}

// zoneMsg is nginx's message for a feature that needs the group in shared
// memory ("resolving names at run time requires upstream ... to be in
// shared memory"), for what and the group u.
func zoneMsg(what string, u *config.Upstream) string {
	if u.Implicit {
		return fmt.Sprintf(`%s requires upstream "%s" to be in shared memory: use an upstream block with "zone"`, what, u.Name)
	}
	return fmt.Sprintf(`%s requires upstream "%s" in %s:%d to be in shared memory`, what, u.Name, u.Pos.File, u.Pos.Line)
}
