package parser

import (
	"sort"
	"strings"

	gonginx "github.com/tufanbarisyildirim/gonginx/parser"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// ctxKind is a set of contexts a directive may appear in, like the
// NGX_*_CONF bits of nginx's ngx_command_t.
type ctxKind uint16

// Contexts.
const (
	cMain   ctxKind = 1 << iota
	cEvents         // events {}
	cHTTP           // http {}
	cServer         // server {}
	cLoc            // location {}, nested or not
	cLIF            // if {} inside a location
	cSIF            // if {} inside a server
	cUps            // upstream {}
)

// cHSL is http, server and location: the levels whose settings inherit.
const cHSL = cHTTP | cServer | cLoc

var ctxNames = []struct {
	k    ctxKind
	name string
}{
	{cMain, "main"}, {cEvents, "events"}, {cHTTP, "http"}, {cServer, "server"},
	{cLoc, "location"}, {cLIF, "if in location"}, {cSIF, "if in server"}, {cUps, "upstream"},
	{cLmt, "limit_except"},
}

// argSpec is the set of argument counts a directive accepts: bit n set
// means n arguments are fine.
type argSpec uint32

// Argument counts, named after nginx's NGX_CONF_* flags.
const (
	noArgs  argSpec = 1 << 0
	take1   argSpec = 1 << 1
	take2   argSpec = 1 << 2
	take3   argSpec = 1 << 3
	take4   argSpec = 1 << 4
	take12          = take1 | take2
	take13          = take1 | take3
	take23          = take2 | take3
	take123         = take1 | take2 | take3
	more1   argSpec = ^argSpec(0) &^ noArgs
	more2   argSpec = more1 &^ take1
	anyArg  argSpec = ^argSpec(0)
	flag            = take1
)

func (a argSpec) ok(n int) bool {
	if n > 31 {
		n = 31
	}
	return a&(1<<uint(n)) != 0
}

// Directive statuses, as Directives reports them.
const (
	statusImplemented = "implemented"
	statusIgnored     = "ignored"
	statusUnsupported = "unsupported"
)

// command is one entry of the directive table.
type command struct {
	name   string
	ctx    ctxKind
	args   argSpec
	block  bool
	status string
	// set applies the directive; for ignored directives it may validate
	// the value as nginx would, or be nil.
	set func(l *loader, b *block, n *lex.Node) error
}

// block is the context a directive is read in, with the objects it
// configures.
type block struct {
	kind  ctxKind
	srv   *serverState
	loc   *locState
	ups   *config.Upstream
	lvl   *level                // settings of this http/server/location level
	steps *[]config.RewriteStep // where return and if go
	ifb   *config.If            // the if block being read, inside if
	m     *mapState
}

// table maps a directive name to its commands; a name may have several
// (keepalive_timeout in http and in upstream), tried in order like nginx's
// modules.
var table map[string][]command

// commandLists are the per-module tables, in nginx's module order.
var commandLists = [][]command{
	coreCommands, eventsCommands, httpCommands, logCommands, upstreamCommands,
	grpcCommands, sslCommands, rewriteCommands, responseCommands, mirrorCommands, mapCommands, accessCommands,
	limitCommands, ignoredCommands, unsupportedCommands, dynamicCommands, processCommands, monitorCommands,
}

func init() {
	table = map[string][]command{}
	for _, list := range commandLists {
		for _, c := range list {
			table[c.name] = append(table[c.name], c)
		}
	}
}

// isUnsupported says whether name is a directive nginx (or a well-known
// module such as Lua) has and gproxy does not. The list of nginx's
// directive names is gonginx's, taken from nginx.org's directive index.
func isUnsupported(name string) bool {
	if _, ok := gonginx.ValidDirectives[name]; ok {
		return true
	}
	return strings.Contains(name, "_by_lua")
}

// DirectiveInfo describes one directive for `gproxy -V` and the README.
type DirectiveInfo struct {
	Name     string
	Contexts []string
	Status   string // "implemented", "ignored" or "unsupported"
}

// Directives lists the directive table, sorted by name: everything gproxy
// implements or ignores, with its contexts, then every other directive
// nginx documents, as unsupported.
func Directives() []DirectiveInfo {
	seen := map[string]int{}
	var out []DirectiveInfo
	for _, list := range commandLists {
		for _, c := range list {
			var ctxs []string
			for _, cn := range ctxNames {
				if c.ctx&cn.k != 0 {
					ctxs = append(ctxs, cn.name)
				}
			}
			if i, ok := seen[c.name]; ok {
				for _, x := range ctxs {
					if !contains(out[i].Contexts, x) {
						out[i].Contexts = append(out[i].Contexts, x)
					}
				}
				continue
			}
			seen[c.name] = len(out)
			out = append(out, DirectiveInfo{Name: c.name, Contexts: ctxs, Status: c.status})
		}
	}
	for name := range gonginx.ValidDirectives {
		if _, ok := seen[name]; ok || name == "" {
			continue
		}
		seen[name] = len(out)
		out = append(out, DirectiveInfo{Name: name, Status: statusUnsupported})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ignored builds table entries for directives accepted with a warning.
func ignored(ctx ctxKind, args argSpec, check func(l *loader, b *block, n *lex.Node) error, names ...string) []command {
	out := make([]command, 0, len(names))
	for _, name := range names {
		out = append(out, command{name: name, ctx: ctx, args: args, status: statusIgnored, set: check})
	}
	return out
}

// unsupported builds entries for directives rejected whatever their
// context; listing them documents them even where gonginx's list has them.
func unsupported(names ...string) []command {
	out := make([]command, 0, len(names))
	for _, name := range names {
		out = append(out, command{name: name, ctx: ^ctxKind(0), args: anyArg, status: statusUnsupported})
	}
	return out
}

func concat(lists ...[]command) []command {
	var out []command
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
