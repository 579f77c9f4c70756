package parser

import (
	"strconv"
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

// parseNum reads a non-negative decimal integer as ngx_atoi does.
func parseNum(v string) (int, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
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
	if !ok || int64(n) > (1<<62)/scale {
		return 0, false
	}
	return int64(n) * scale, true
}

// parseTime reads an nginx time such as "1h30s", "500ms" or "60" (seconds
// when no unit is given). With secOnly (ngx_parse_time's is_sec), "ms" is
// invalid. Units must come in decreasing order, each at most once.
func parseTime(v string, secOnly bool) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	units := []struct {
		s string
		d time.Duration
	}{
		{"y", 365 * 24 * time.Hour}, {"M", 30 * 24 * time.Hour}, {"w", 7 * 24 * time.Hour},
		{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second},
		{"ms", time.Millisecond},
	}
	var total time.Duration
	next := 0 // index of the smallest unit already used + 1
	i := 0
	for i < len(v) {
		j := i
		for j < len(v) && v[j] >= '0' && v[j] <= '9' {
			j++
		}
		if j == i {
			return 0, false
		}
		n, ok := parseNum(v[i:j])
		if !ok {
			return 0, false
		}
		k := j
		for k < len(v) && (v[k] < '0' || v[k] > '9') && v[k] != ' ' {
			k++
		}
		unit := v[j:k]
		if unit == "" {
			if k != len(v) {
				return 0, false
			}
			unit = "s"
		}
		found := -1
		for u := next; u < len(units); u++ {
			if units[u].s == unit {
				found = u
				break
			}
		}
		if found < 0 || (secOnly && unit == "ms") {
			return 0, false
		}
		total += time.Duration(n) * units[found].d
		next = found + 1
		i = k
		for i < len(v) && v[i] == ' ' {
			i++
		}
	}
	return total, true
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
