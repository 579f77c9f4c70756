package route

import (
	"fmt"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
)

// Page is what an error_page made of an error: the answer to send, the
// location that produced it (nil for a redirect to a URL) and the settings
// whose add_header, add_trailer and default_type apply to it.
type Page struct {
	Action   *Action
	Location *Location
	Settings *config.Settings
}

// maxErrorPages bounds chains of error pages with recursive_error_pages
// on, like nginx's limit of internal redirects per request.
const maxErrorPages = 10

// ErrorPage runs the error_page that st has for code, as nginx's
// ngx_http_send_error_page does. ok is false when st has none, or when the
// page would be a file (its location neither returns nor redirects):
// gproxy serves no files, so the caller then answers as if no error_page
// were configured. The request keeps its method (nginx makes it GET for a
// URI, which matters only to a file it would serve). The status sent is
// the error's code, the page's own status for "=", or the "=CODE".
func (t *Table) ErrorPage(st *config.Settings, code int, r *Request) (p Page, ok bool) {
	for range maxErrorPages {
		ep := findErrorPage(st, code)
		if ep == nil {
			return p, ok
		}
		np, more, found := t.runErrorPage(ep, code, r)
		if !found {
			return p, ok
		}
		p, ok = np, true
		if !more || !st.RecursiveErrorPages || p.Settings == nil || !p.Settings.RecursiveErrorPages {
			return p, ok
		}
		// recursive_error_pages: the page's own error goes through the
		// page location's error pages.
		st, code = p.Settings, p.Action.Code
	}
	return p, ok
}

func findErrorPage(st *config.Settings, code int) *config.ErrorPage {
	if st == nil {
		return nil
	}
	for i := range st.ErrorPages {
		for _, c := range st.ErrorPages[i].Codes {
			if c == code {
				return &st.ErrorPages[i]
			}
		}
	}
	return nil
}

// runErrorPage produces the answer of one error page; more reports that
// the answer is itself an error (a status of 300 or more from the page
// location, before any "=" applies) that recursive_error_pages may catch.
func (t *Table) runErrorPage(ep *config.ErrorPage, code int, r *Request) (p Page, more, ok bool) {
	uri := t.Expand(ep.URI, r)
	status := func(own int) int {
		switch ep.Overwrite {
		case -1:
			return code
		case 0:
			return own
		}
		return ep.Overwrite
	}
	if strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://") {
		c := 302
		switch ep.Overwrite {
		case 301, 302, 303, 307, 308:
			c = ep.Overwrite
		}
		return Page{Action: &Action{Code: c, Location: uri}}, false, true
	}
	var loc *Location
	if strings.HasPrefix(uri, "@") {
		if sr := t.servers[r.Server]; sr != nil {
			loc = sr.named[uri]
		}
	} else {
		path, _, _ := strings.Cut(uri, "?")
		r.uriVal, r.uriState = path, 1
		if sr := t.servers[r.Server]; sr != nil {
			loc = sr.root.find(path, t, r)
		}
	}
	if loc == nil {
		return p, false, false
	}
	r.IfSettings = nil
	a := t.Rewrite(loc.Config.Rewrite, r)
	if a == nil {
		// A file, or a location that proxies: see ErrorPage and
		// checkErrorPages.
		return p, false, false
	}
	st := &loc.Config.Settings
	if r.IfSettings != nil {
		st = r.IfSettings
	}
	own := a.Code
	more = own >= 300
	if !a.Close && !isRedirect(own) {
		a.Code = status(own)
	}
	return Page{Action: a, Location: loc, Settings: st}, more, true
}

// checkErrorPages rejects, at build time, error pages whose target
// location proxies: gproxy answers error pages from return, and does not
// yet pass a failed call to another upstream through error_page.
func (t *Table) checkErrorPages(s *config.Server, st *config.Settings) error {
	sr := t.servers[s]
	for _, ep := range st.ErrorPages {
		if len(ep.URI.Parts) != 1 || ep.URI.Parts[0].Var != "" {
			continue
		}
		uri := ep.URI.Parts[0].Literal
		var loc *Location
		switch {
		case strings.HasPrefix(uri, "@"):
			loc = sr.named[uri]
			if loc == nil {
				return fmt.Errorf("error_page names the location %q, which this server does not have, in %s", uri, posString(ep.Pos))
			}
		case strings.HasPrefix(uri, "/"):
			path, _, _ := strings.Cut(uri, "?")
			loc = sr.root.find(path, nil, nil)
		}
		if loc != nil && loc.Config.GRPCPass != nil {
			return fmt.Errorf("error_page to a location with grpc_pass (%s) is not supported by gproxy in %s", uri, posString(ep.Pos))
		}
	}
	return nil
}
