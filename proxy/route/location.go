package route

import (
	"fmt"

	"github.com/gproxy/gproxy/parser/config"
)

// level is the location search of one nesting level: the `=`, prefix and
// `^~` locations in a radix tree, and the regex locations in order of
// appearance. It mirrors nginx's static_locations / regex_locations pair.
type level struct {
	static  *radixNode
	regexes []*locEntry
}

// locEntry is one location and the level of the locations nested in it.
type locEntry struct {
	loc     *Location
	noRegex bool // `^~`: when this is the longest prefix, skip regexes
	nested  level
}

// radixNode is a node of a compressed trie keyed by location path. A path
// reaching a node has all edge labels from the root as its prefix.
type radixNode struct {
	label    string
	children []*radixNode // distinct first bytes
	prefix   *locEntry    // `location /p` or `location ^~ /p`
	exact    *locEntry    // `location = /p`
}

func buildLevel(locs []*config.Location) (level, error) {
	lv := level{static: &radixNode{}}
	for _, c := range locs {
		if c.Kind == config.LocNamed {
			continue // reached only by internal redirects, never by a URI
		}
		nested, err := buildLevel(c.Locations)
		if err != nil {
			return level{}, err
		}
		e := &locEntry{loc: newLocation(c), noRegex: c.Kind == config.LocPrefixNoRegex, nested: nested}
		switch c.Kind {
		case config.LocRegex, config.LocRegexCaseless:
			if c.Regex == nil {
				return level{}, fmt.Errorf("location %q has no compiled regex in %s", c.Path, posString(c.Pos))
			}
			lv.regexes = append(lv.regexes, e)
		case config.LocExact, config.LocPrefix, config.LocPrefixNoRegex:
			n := lv.static.insert(c.Path)
			slot := &n.prefix
			if c.Kind == config.LocExact {
				slot = &n.exact
			}
			if *slot != nil {
				return level{}, fmt.Errorf("duplicate location %q in %s", c.Path, posString(c.Pos))
			}
			*slot = e
		default:
			return level{}, fmt.Errorf("unknown location kind %d in %s", c.Kind, posString(c.Pos))
		}
	}
	return lv, nil
}

// insert returns the node for key, creating and splitting nodes as needed.
func (n *radixNode) insert(key string) *radixNode {
	for {
		if key == "" {
			return n
		}
		var child *radixNode
		for _, c := range n.children {
			if c.label[0] == key[0] {
				child = c
				break
			}
		}
		if child == nil {
			c := &radixNode{label: key}
			n.children = append(n.children, c)
			return c
		}
		common := commonPrefix(child.label, key)
		if common < len(child.label) {
			// Split child at the common prefix.
			lower := &radixNode{label: child.label[common:], children: child.children, prefix: child.prefix, exact: child.exact}
			*child = radixNode{label: child.label[:common], children: []*radixNode{lower}}
		}
		n, key = child, key[common:]
	}
}

func commonPrefix(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// static finds, for uri, the exact location (exact=true) or else the
// longest matching prefix location (nil when none).
func (n *radixNode) match(uri string) (e *locEntry, exact bool) {
	rest := uri
	for {
		if n.prefix != nil {
			e = n.prefix
		}
		if rest == "" {
			if n.exact != nil {
				return n.exact, true
			}
			return e, false
		}
		var next *radixNode
		for _, c := range n.children {
			if c.label[0] == rest[0] {
				next = c
				break
			}
		}
		if next == nil || len(rest) < len(next.label) || rest[:len(next.label)] != next.label {
			return e, false
		}
		rest = rest[len(next.label):]
		n = next
	}
}

// find is nginx's ngx_http_core_find_location for one level: an exact match
// wins at once; otherwise the longest prefix is remembered and its nested
// locations are searched; unless that prefix is `^~` (or a nested search
// already settled the request), the regexes of this level are tried in
// order and the first match wins (then its own nested locations are
// searched); otherwise the longest prefix stands. It returns nil when
// nothing at this level or below matches.
func (lv *level) find(uri string, t *Table, r *Request) *Location {
	loc, _ := lv.search(uri, t, r)
	return loc
}

// search returns the location found and whether the search is settled (an
// exact or regex match, which ends the outer levels' search too).
func (lv *level) search(uri string, t *Table, r *Request) (*Location, bool) {
	var found *Location
	noRegex := false
	if lv.static != nil {
		e, exact := lv.static.match(uri)
		if e != nil {
			if exact {
				return e.loc, true
			}
			found, noRegex = e.loc, e.noRegex
			if inner, settled := e.nested.search(uri, t, r); settled {
				return inner, true
			} else if inner != nil {
				found = inner
			}
		}
	}
	if !noRegex {
		for _, e := range lv.regexes {
			if t.matchString(e.loc.Config.Regex, uri, r) {
				if inner, _ := e.nested.search(uri, t, r); inner != nil {
					return inner, true
				}
				return e.loc, true
			}
		}
	}
	return found, false
}
