package proxy

import (
	"strconv"
	"time"

	"golang.org/x/net/http2/hpack"
)

// gRPC status codes the proxy itself produces.
const (
	codeOK                = 0
	codeDeadlineExceeded  = 4
	codeResourceExhausted = 8
	codeInternal          = 13
	codeUnavailable       = 14
)

var grpcStatusText = [...]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"}

// trailersOnly is a complete gRPC error response in one HEADERS frame:
// HTTP 200, application/grpc, grpc-status and grpc-message.
func trailersOnly(code int, msg string) []hpack.HeaderField {
	return []hpack.HeaderField{
		{Name: ":status", Value: "200"},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "grpc-status", Value: grpcStatusText[code]},
		{Name: "grpc-message", Value: encodeGRPCMessage(msg)},
	}
}

// statusTrailers ends a response whose headers were already sent.
func statusTrailers(code int, msg string) []hpack.HeaderField {
	return []hpack.HeaderField{
		{Name: "grpc-status", Value: grpcStatusText[code]},
		{Name: "grpc-message", Value: encodeGRPCMessage(msg)},
	}
}

// encodeGRPCMessage percent-encodes as the gRPC HTTP/2 protocol asks:
// bytes outside printable ASCII, and '%'.
func encodeGRPCMessage(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// parseGRPCTimeout parses a grpc-timeout value ("100m", "5S"): at most 8
// digits and a unit of H M S m u n.
func parseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// grpcStatusString formats a gRPC status code for $grpc_status, without
// allocating for the defined codes.
func grpcStatusString(code int) string {
	if code >= 0 && code < len(grpcStatusText) {
		return grpcStatusText[code]
	}
	return strconv.Itoa(code)
}

// parseHTTPStatus reads a three-digit :status value; 0 when invalid.
func parseHTTPStatus(v string) int {
	if len(v) != 3 {
		return 0
	}
	n := 0
	for i := 0; i < 3; i++ {
		d := v[i] - '0'
		if d > 9 {
			return 0
		}
		n = n*10 + int(d)
	}
	return n
}

// parseStatus reads a grpc-status value; -1 when absent or invalid.
func parseStatus(v string) int {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return n
	}
	return -1
}

// msgTracker follows gRPC length-prefixed message framing in a byte stream,
// to know whether a response cut short stopped between messages (it can
// then end with a status) or inside one (it must be reset).
type msgTracker struct {
	hdr    [5]byte
	hn     int
	remain uint64
}

func (t *msgTracker) feed(p []byte) {
	for len(p) > 0 {
		if t.remain > 0 {
			n := min(uint64(len(p)), t.remain)
			t.remain -= n
			p = p[n:]
			continue
		}
		k := copy(t.hdr[t.hn:], p)
		t.hn += k
		p = p[k:]
		if t.hn == 5 {
			t.hn = 0
			t.remain = uint64(t.hdr[1])<<24 | uint64(t.hdr[2])<<16 | uint64(t.hdr[3])<<8 | uint64(t.hdr[4])
		}
	}
}

func (t *msgTracker) atBoundary() bool { return t.hn == 0 && t.remain == 0 }
