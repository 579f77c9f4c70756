package parser

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gproxy/gproxy/parser/lex"
)

// Value parsers with nginx's rules (ngx_parse_size, ngx_parse_offset,
// ngx_parse_time). Each returns ok=false where nginx says "invalid value".

// parseFlag reads on/off; the error is nginx's flag message.
func (l *loader) parseFlag(n *lex.Node, v string) (bool, error) {
	switch lower(v) {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, l.errf(n, `invalid value "%s" in "%s" directive, it must be "on" or "off"`, v, n.Name)
}

// parseNum reads a non-negative decimal integer as ngx_atoi does: any
// number of digits, up to the largest int64.
func parseNum(v string) (int, bool) {
	if v == "" {
		return 0, false
	}
	n := int64(0)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return int(n), true
}

// parseSize reads a size with an optional k or m suffix (ngx_parse_size).
func parseSize(v string) (int64, bool) {
	return parseScaled(v, false)
}

// parseOffset reads a size with an optional k, m or g suffix
// (ngx_parse_offset).
func parseOffset(v string) (int64, bool) {
	return parseScaled(v, true)
}

// parseScaled is ngx_parse_size/ngx_parse_offset: the number times its
// unit must fit in an int64.
func parseScaled(v string, g bool) (int64, bool) {
	if v == "" {
		return 0, false
	}
	scale := int64(1)
	switch v[len(v)-1] {
	case 'k', 'K':
		scale = 1 << 10
	case 'm', 'M':
		scale = 1 << 20
	case 'g', 'G':
		if !g {
			return 0, false
		}
		scale = 1 << 30
	}
	if scale != 1 {
		v = v[:len(v)-1]
	}
	n, ok := parseNum(v)
	if !ok || int64(n) > math.MaxInt64/scale {
		return 0, false
	}
	return int64(n) * scale, true
}

// timeUnits are ngx_parse_time's units, largest first; each may be used
// once, in this order. y and M are for second-valued directives only.
var timeUnits = []struct {
	s      string
	sec    int64 // length in seconds, 0 for ms
	secOnl bool
}{
	{"y", 365 * 24 * 3600, true}, {"M", 30 * 24 * 3600, true}, {"w", 7 * 24 * 3600, false},
	{"d", 24 * 3600, false}, {"h", 3600, false}, {"m", 60, false}, {"s", 1, false}, {"ms", 0, false},
}

// parseTime reads an nginx time such as "1h30s", "500ms" or "60" as
// ngx_parse_time does. With secOnly (is_sec) the value is in seconds and
// "ms" is invalid; otherwise it is in milliseconds and "y" and "M" are
// invalid. Units come in decreasing order, each at most once; a trailing
// number without a unit is seconds; spaces are skipped; the total must fit
// in an int64 (in the directive's unit).
func parseTime(v string, secOnly bool) (time.Duration, bool) {
	var total, value int64
	next, digits := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9':
			d := int64(c - '0')
			if value > (math.MaxInt64-d)/10 {
				return 0, false
			}
			value = value*10 + d
			digits = true
			continue
		case c == ' ':
			continue
		}
		u := -1
		for k := next; k < len(timeUnits); k++ {
			s := timeUnits[k].s
			if strings.HasPrefix(v[i:], s) && (s != "m" || !strings.HasPrefix(v[i:], "ms")) {
				u = k
				break
			}
		}
		if u < 0 {
			return 0, false
		}
		tu := timeUnits[u]
		if (tu.secOnl && !secOnly) || (tu.sec == 0 && secOnly) {
			return 0, false
		}
		i += len(tu.s) - 1
		next = u + 1
		scale := tu.sec
		if !secOnly {
			scale *= 1000
			if tu.sec == 0 {
				scale = 1
			}
		}
		if value > math.MaxInt64/scale {
			return 0, false
		}
		value *= scale
		if total > math.MaxInt64-value {
			return 0, false
		}
		total += value
		value = 0
	}
	if !digits {
		return 0, false
	}
	if value != 0 {
		if !secOnly {
			if value > math.MaxInt64/1000 {
				return 0, false
			}
			value *= 1000
		}
		if total > math.MaxInt64-value {
			return 0, false
		}
		total += value
	}
	unit := time.Millisecond
	if secOnly {
		unit = time.Second
	}
	if total > int64(math.MaxInt64/unit) {
		// Beyond what a Duration holds (292 years): as good as forever.
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(total) * unit, true
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }
