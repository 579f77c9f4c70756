package route

import (
	"regexp"
	"strings"
)

// normalizeHost turns a Host header or :authority into the name nginx
// matches server names against: port removed, lower-case, one trailing dot
// removed. ok is false for an empty or invalid host (nginx's
// ngx_http_validate_host: "..", '/', NUL, an unterminated IPv6 literal, or
// nothing left). It allocates only when the host has upper-case letters.
func normalizeHost(host string) (h string, ok bool) {
	end := len(host)
	lastDot := -2
	upper := false
	literal := false
	i := 0
	if len(host) > 0 && host[0] == '[' {
		literal = true
	}
	for ; i < len(host); i++ {
		c := host[i]
		switch {
		case c == '.':
			if lastDot == i-1 {
				return "", false
			}
			lastDot = i
		case c == ':':
			if !literal {
				end = i
				i = len(host) // stop scanning: the rest is the port
				continue
			}
		case c == ']':
			if literal {
				literal = false
				if i+1 < len(host) && host[i+1] != ':' {
					return "", false
				}
			}
		case c == '/' || c == 0 || c == '\\':
			return "", false
		case 'A' <= c && c <= 'Z':
			upper = true
		}
	}
	if literal {
		return "", false
	}
	h = host[:end]
	if lastDot == end-1 && end > 0 {
		h = h[:end-1]
	}
	if h == "" {
		return "", false
	}
	if upper {
		h = strings.ToLower(h)
	}
	return h, true
}

// hostTable matches host names the way nginx matches server_name and the
// keys of a `map ... { hostnames; }`: exact, then the longest leading
// wildcard, then the longest trailing wildcard, then regexes in order.
// Keys are lower-case; lookups take normalised (lower-case) hosts.
type hostTable[V any] struct {
	exact    map[string]V
	headSelf map[string]V // ".example.com" also matches example.com itself
	headSub  map[string]V // "*.example.com" and ".example.com": subdomains
	tail     map[string]V // "mail.*" stored as "mail"
	regexes  []hostRegex[V]
}

type hostRegex[V any] struct {
	re *regexp.Regexp
	v  V
}

func newHostTable[V any]() hostTable[V] {
	return hostTable[V]{
		exact:    map[string]V{},
		headSelf: map[string]V{},
		headSub:  map[string]V{},
		tail:     map[string]V{},
	}
}

// add registers a name; the first registration of a key wins, as in nginx.
func (h *hostTable[V]) add(name string, v V) {
	put := func(m map[string]V, k string) {
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	switch {
	case strings.HasPrefix(name, "*."):
		put(h.headSub, name[2:])
	case strings.HasPrefix(name, ".") && len(name) > 1:
		put(h.headSelf, name[1:])
		put(h.headSub, name[1:])
	case strings.HasSuffix(name, ".*"):
		put(h.tail, name[:len(name)-2])
	default:
		put(h.exact, name)
	}
}

func (h *hostTable[V]) addRegex(re *regexp.Regexp, v V) {
	h.regexes = append(h.regexes, hostRegex[V]{re, v})
}

// lookup finds the value for a normalised host. With t and r non-nil, a
// matching regex stores its captures in r.
func (h *hostTable[V]) lookup(host string, t *Table, r *Request) (v V, ok bool) {
	if v, ok = h.exact[host]; ok {
		return v, true
	}
	if len(h.headSub) > 0 {
		if v, ok = h.headSelf[host]; ok {
			return v, true
		}
		// Suffixes after each dot, leftmost dot first = longest first.
		for i := 0; i < len(host); i++ {
			if host[i] == '.' {
				if v, ok = h.headSub[host[i+1:]]; ok {
					return v, true
				}
			}
		}
	}
	if len(h.tail) > 0 {
		// Prefixes before each dot, rightmost dot first = longest first.
		for i := len(host) - 2; i > 0; i-- {
			if host[i] == '.' {
				if v, ok = h.tail[host[:i]]; ok {
					return v, true
				}
			}
		}
	}
	for _, x := range h.regexes {
		if t.matchString(x.re, host, r) {
			return x.v, true
		}
	}
	return v, false
}
