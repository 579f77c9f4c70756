package route

import "strings"

// NormalizePath turns a request target (":path", query string allowed) into
// the URI nginx matches locations against and exposes as $uri. It does what
// ngx_http_parse_complex_uri does on Unix with merge_slashes on:
//
//   - the query string (from the first '?') is dropped;
//   - %XX escapes are decoded; a decoded '/' or '.' then counts as one
//     (so "/a%2F..%2Fb" is "/b"), a decoded '?' or '%' is literal;
//   - runs of '/' are merged into one;
//   - "." segments are removed and ".." segments remove the segment before
//     them; a trailing "/." or "/.." leaves a trailing '/'.
//
// ok is false, and nginx would answer 400, when the target does not start
// with '/', has a bad or NUL escape, or ".." climbs above the root. Paths
// needing none of this (every ordinary gRPC path, "/pkg.Service/Method")
// are returned as a substring without allocating.
func NormalizePath(target string) (uri string, ok bool) {
	path := target
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" || path[0] != '/' {
		return "", false
	}
	if isClean(path) {
		return path, true
	}
	return normalizeSlow(path)
}

// isClean reports whether path needs no decoding or segment processing.
func isClean(path string) bool {
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '%', 0:
			return false
		case '/':
			if i+1 < len(path) && (path[i+1] == '/' || path[i+1] == '.') {
				return false
			}
		}
	}
	return true
}

func normalizeSlow(path string) (string, bool) {
	out := make([]byte, 0, len(path))
	// seg is where the current segment starts in out (just after its '/').
	for i := 0; i < len(path); {
		c := path[i]
		decoded := false
		if c == '%' {
			if i+2 >= len(path) {
				return "", false
			}
			hi, ok1 := unhex(path[i+1])
			lo, ok2 := unhex(path[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			c = hi<<4 | lo
			i += 3
			decoded = true
		} else {
			i++
		}
		if c == 0 {
			return "", false
		}
		if decoded && (c == '?' || c == '%') {
			out = append(out, c)
			continue
		}
		if c != '/' {
			out = append(out, c)
			continue
		}
		// A '/' ends a segment: fold "//", "/./" and "/../" now.
		var ok bool
		out, ok = endSegment(out)
		if !ok {
			return "", false
		}
		if len(out) == 0 || out[len(out)-1] != '/' {
			out = append(out, '/')
		}
	}
	out, ok := endSegment(out)
	if !ok {
		return "", false
	}
	return string(out), true
}

// endSegment folds the segment at the end of out (after its last '/') when
// it is "." or "..", leaving out ending in '/'.
func endSegment(out []byte) ([]byte, bool) {
	slash := lastSlash(out)
	seg := string(out[slash+1:])
	switch seg {
	case ".":
		return out[:slash+1], true
	case "..":
		if slash <= 0 {
			return nil, false // above the root
		}
		prev := lastSlash(out[:slash])
		return out[:prev+1], true
	}
	return out, true
}

func lastSlash(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '/' {
			return i
		}
	}
	return -1
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
