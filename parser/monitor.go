package parser

import (
	"strconv"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// Locations that report on gproxy itself: nginx's stub_status, and two
// gproxy extensions, gproxy_metrics (Prometheus) and gproxy_status (a
// live HTML page).

var monitorCommands = []command{
	{name: "stub_status", ctx: cServer | cLoc, args: noArgs | take1, status: statusImplemented, set: setMonitor("stub_status")},
	{name: "gproxy_metrics", ctx: cLoc, args: noArgs | take1 | take2, status: statusImplemented, set: setMonitor("metrics")},
	{name: "gproxy_status", ctx: cLoc, args: noArgs, status: statusImplemented, set: setMonitor("status")},
}

// defaultMaxMethods bounds per-method metrics when max= is not given.
const defaultMaxMethods = 100

// setMonitor makes the location answer with kind. A location has one
// content handler: combining one with grpc_pass or another monitor is an
// error (nginx would silently keep the last one).
func setMonitor(kind string) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if b.kind != cLoc {
			return l.errf(n, `"%s" in server context is not supported by gproxy; put it in a location`, n.Name)
		}
		loc := b.loc.l
		if loc.Monitor != nil || loc.GRPCPass != nil {
			return l.dirErr(n, "is duplicate")
		}
		m := &config.Monitor{Kind: kind, Pos: l.pos(n)}
		if kind == "metrics" {
			m.MaxMethods = defaultMaxMethods
			for _, a := range n.Args {
				switch {
				case a == "methods=on":
					m.Methods = true
				case a == "methods=off":
					m.Methods = false
				case strings.HasPrefix(a, "max="):
					v, err := strconv.Atoi(a[len("max="):])
					if err != nil || v <= 0 {
						return l.errf(n, `invalid value "%s" in "%s" directive`, a, n.Name)
					}
					m.MaxMethods = v
				default:
					return l.errf(n, `invalid parameter "%s"`, a)
				}
			}
		}
		loc.Monitor = m
		return nil
	}
}
