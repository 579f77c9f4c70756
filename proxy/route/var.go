package route

import (
	"golang.org/x/net/http2/hpack"
)

// Var is one variable resolved against a Table once, for callers that
// expand variables one at a time: the access log escapes each value on its
// own and prints "-" for a variable nginx calls "not found".
type Var struct {
	ref varRef
}

// Var resolves a variable name (without '$'); ok is false for a name the
// table cannot expand.
func (t *Table) Var(name string) (v Var, ok bool) {
	ref, ok := t.resolve(name)
	return Var{ref: ref}, ok
}

// AppendVar appends the value of v for r, as AppendExpand appends it inside
// a template, allocating nothing beyond growing dst in the same cases.
// found is false where nginx marks the variable "not found" rather than
// empty: an absent request header, response header, argument or cookie,
// $args and $query_string without a query, $remote_user without Basic
// credentials or with an empty user name, $upstream_* before any upstream
// attempt, and gproxy's $grpc_status and $grpc_message when none was sent.
// dst is returned unchanged then.
func (t *Table) AppendVar(dst []byte, v Var, r *Request) (out []byte, found bool) {
	if v.ref.v == remoteUserVar { // decoded once, not for found and again for the value
		u := remoteUser(r.header("authorization"))
		return append(dst, u...), u != ""
	}
	if !t.found(v.ref, r) {
		return dst, false
	}
	return t.appendValue(dst, v.ref, r, 0), true
}

// found reports whether a variable has a value for r, by nginx's rules
// (the row's found; always, without one).
func (t *Table) found(ref varRef, r *Request) bool {
	if ref.v == nil || ref.v.found == nil {
		return true
	}
	return ref.v.found(t, ref, r)
}

func hasHeader(hs []hpack.HeaderField, name string) bool {
	for i := range hs {
		if varNameMatches(hs[i].Name, name) {
			return true
		}
	}
	return false
}
