package route

import (
	"net"
	"strconv"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
)

// Action is how a request ends without being proxied.
type Action struct {
	// Code is the HTTP status (444 with Close).
	Code int
	// Body is the response body for `return code text`. It is empty for
	// `return code;`, where nginx sends its built-in page for errors.
	Body string
	// Location is the redirect target for 301, 302, 303, 307 and 308.
	// A target starting with '/' is made absolute (scheme://host[:port])
	// as nginx does with absolute_redirect on, its default.
	Location string
	// Close asks the engine to answer nothing and close: for HTTP/2, reset
	// the stream; for HTTP/1.1, close the connection (`return 444`).
	Close bool
}

// Rewrite runs rewrite-module steps (return, if, set, rewrite, break) in
// order and returns the action of the first `return` or redirect
// reached, or nil when the request falls through.
func (t *Table) Rewrite(steps []config.RewriteStep, r *Request) *Action {
	a, _ := t.run(steps, r)
	return a
}

// flow is how a run of rewrite steps ended without an action.
type flow uint8

const (
	flowNext  flow = iota // every step ran
	flowBreak             // break, or rewrite ... break: stop, stay
	flowLast              // rewrite ... last: stop, search the location again
)

func (t *Table) run(steps []config.RewriteStep, r *Request) (*Action, flow) {
	for i := range steps {
		st := &steps[i]
		switch {
		case st.Return != nil:
			return t.returnAction(st.Return, r), flowNext
		case st.Set != nil:
			t.setVar(st.Set, r)
		case st.Rewrite != nil:
			if a, f, done := t.rewrite(st.Rewrite, r); done {
				return a, f
			}
		case st.Break:
			return nil, flowBreak
		case st.If != nil:
			if !t.cond(&st.If.Cond, r) {
				continue
			}
			if st.If.Settings != nil {
				r.IfSettings = st.If.Settings
			}
			if st.If.GRPCPass != nil {
				r.IfPass = st.If.GRPCPass
			}
			if a, f := t.run(st.If.Body, r); a != nil || f != flowNext {
				return a, f
			}
		}
	}
	return nil, flowNext
}

// setVar runs `set`: $args changes the request's query string; any other
// name is a variable of the configuration's own.
func (t *Table) setVar(sv *config.SetVar, r *Request) {
	v := t.Expand(sv.Value, r)
	if sv.Name == "args" {
		r.argsVal, r.argsSet, r.rewritten = v, true, true
		return
	}
	slot, ok := t.setSlots[sv.Name]
	if !ok {
		return
	}
	if len(r.setVals) < len(t.setSlots) {
		vals := make([]string, len(t.setSlots))
		copy(vals, r.setVals)
		r.setVals = vals
	}
	r.setVals[slot] = v
}

// rewrite runs one `rewrite`: when the regex matches the URI, the URI
// becomes the replacement (its query string replacing or preceding the
// request's, as nginx does), or the request is redirected. done reports
// that the steps stop here.
func (t *Table) rewrite(rw *config.Rewrite, r *Request) (a *Action, f flow, done bool) {
	uri, _ := r.uri()
	if !t.matchString(rw.Regex, uri, r) {
		return nil, flowNext, false
	}
	repl := t.Expand(rw.Replacement, r)
	oldArgs := r.args()
	external := strings.HasPrefix(repl, "http://") || strings.HasPrefix(repl, "https://")
	if external || rw.Flag == "redirect" || rw.Flag == "permanent" {
		code := 302
		if rw.Flag == "permanent" {
			code = 301
		}
		loc, dropArgs := strings.CutSuffix(repl, "?")
		if !dropArgs && oldArgs != "" {
			sep := "?"
			if strings.Contains(loc, "?") {
				sep = "&"
			}
			loc += sep + oldArgs
		}
		if strings.HasPrefix(loc, "/") {
			loc = t.absolute(loc, r)
		}
		return &Action{Code: code, Location: loc}, flowNext, true
	}
	path, args, hasArgs := strings.Cut(repl, "?")
	switch {
	case !hasArgs:
		// The request's query string stays.
	case args == "":
		r.argsVal, r.argsSet = "", true
	case oldArgs != "":
		r.argsVal, r.argsSet = args+"&"+oldArgs, true
	default:
		r.argsVal, r.argsSet = args, true
	}
	r.uriVal, r.uriState = path, 1
	r.rewritten, r.uriChanged = true, true
	switch rw.Flag {
	case "last":
		return nil, flowLast, true
	case "break":
		return nil, flowBreak, true
	}
	return nil, flowNext, false
}

func isRedirect(code int) bool {
	switch code {
	case 301, 302, 303, 307, 308:
		return true
	}
	return false
}

func (t *Table) returnAction(ret *config.Return, r *Request) *Action {
	a := &Action{Code: ret.Code}
	switch {
	case ret.Code == 444:
		a.Close = true
	case isRedirect(ret.Code):
		a.Location = t.Expand(ret.Text, r)
		if strings.HasPrefix(a.Location, "/") {
			a.Location = t.absolute(a.Location, r)
		}
	default:
		a.Body = t.Expand(ret.Text, r)
	}
	return a
}

// absolute makes a relative redirect absolute like nginx's header filter:
// the request's host (else the local address), the local port unless it is
// the scheme's default.
func (t *Table) absolute(path string, r *Request) string {
	scheme, _ := t.stringValue(varRef{v: schemeVar}, r)
	host := r.Authority
	if host == "" {
		host = r.header("host")
	}
	host, ok := normalizeHost(host)
	if !ok {
		host = string(appendIP(nil, r.LocalAddr))
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	b := make([]byte, 0, len(scheme)+3+len(host)+6+len(path))
	b = append(b, scheme...)
	b = append(b, "://"...)
	b = append(b, host...)
	if a, ok := r.LocalAddr.(*net.TCPAddr); ok {
		def := 80
		if scheme == "https" {
			def = 443
		}
		if a.Port != def {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(a.Port), 10)
		}
	}
	b = append(b, path...)
	return string(b)
}

// cond evaluates an `if` condition: a bare variable is true unless empty or
// "0"; = and != compare strings; ~ ~* !~ !~* match the regex (captures of
// a positive match are kept for $1..$9 and named captures).
func (t *Table) cond(c *config.IfCond, r *Request) bool {
	// Expand costs nothing for a condition on one variable or literal,
	// the usual case.
	left := t.Expand(c.Left, r)
	switch c.Op {
	case "":
		return left != "" && left != "0"
	case "=", "!=":
		return (left == t.Expand(c.Right, r)) == (c.Op == "=")
	case "~", "~*":
		if c.Regex == nil {
			return false
		}
		if t.needCaps && c.Regex.NumSubexp() > 0 {
			return t.matchString(c.Regex, left, r)
		}
		return c.Regex.MatchString(left)
	case "!~", "!~*":
		return c.Regex != nil && !c.Regex.MatchString(left)
	}
	return false
}
