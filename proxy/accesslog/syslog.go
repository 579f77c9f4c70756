package accesslog

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// syslogFacilities and syslogSeverities are nginx's names for syslog
// facilities and severities, with their numbers.
var (
	syslogFacilities = map[string]int{
		"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "intern": 5,
		"lpr": 6, "news": 7, "uucp": 8, "clock": 9, "authpriv": 10, "ftp": 11,
		"ntp": 12, "audit": 13, "alert": 14, "cron": 15,
		"local0": 16, "local1": 17, "local2": 18, "local3": 19,
		"local4": 20, "local5": 21, "local6": 22, "local7": 23,
	}
	syslogSeverities = map[string]int{
		"emerg": 0, "alert": 1, "crit": 2, "error": 3, "warn": 4, "notice": 5, "info": 6, "debug": 7,
	}
)

// syslogSink sends each line as one datagram in the BSD syslog format
// nginx uses: "<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: LINE", without the
// newline. Syslog lines cannot be buffered (nginx refuses buffer= too).
type syslogSink struct {
	path   string // as configured: the registry's key
	conn   net.Conn
	pri    string // "<190>"
	host   string // "" with nohostname
	tag    string
	errlog *zap.Logger
	closed atomic.Bool // lines after the last Set let go are dropped quietly

	mu      sync.Mutex // guards lastErr
	lastErr time.Time
}

// newSyslog parses nginx's "syslog:server=ADDR[:PORT],facility=F,
// severity=S,tag=T,nohostname" and dials the server.
func newSyslog(path string, errlog *zap.Logger) (*syslogSink, error) {
	network, addr := "udp", ""
	facility, severity := syslogFacilities["local7"], syslogSeverities["info"]
	s := &syslogSink{path: path, tag: "gproxy", errlog: errlog}
	nohost := false
	for _, p := range strings.Split(strings.TrimPrefix(path, "syslog:"), ",") {
		key, value, _ := strings.Cut(p, "=")
		switch key {
		case "server":
			if sock, ok := strings.CutPrefix(value, "unix:"); ok {
				network, addr = "unixgram", sock
				continue
			}
			if _, _, err := net.SplitHostPort(value); err != nil {
				value = net.JoinHostPort(strings.Trim(value, "[]"), "514")
			}
			addr = value
		case "facility":
			f, ok := syslogFacilities[value]
			if !ok {
				return nil, fmt.Errorf("unknown syslog facility \"%s\"", value)
			}
			facility = f
		case "severity":
			v, ok := syslogSeverities[value]
			if !ok {
				return nil, fmt.Errorf("unknown syslog severity \"%s\"", value)
			}
			severity = v
		case "tag":
			if value == "" || len(value) > 32 || strings.IndexFunc(value, notTagRune) >= 0 {
				return nil, fmt.Errorf("syslog \"tag\" only allows alphanumeric characters and underscore, up to 32")
			}
			s.tag = value
		case "nohostname":
			nohost = true
		default:
			return nil, fmt.Errorf("unknown syslog parameter \"%s\"", p)
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("no syslog server specified")
	}
	if !nohost {
		s.host, _ = os.Hostname()
	}
	s.pri = "<" + strconv.Itoa(facility*8+severity) + ">"
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	s.conn = c
	return s, nil
}

func notTagRune(r rune) bool {
	return !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
}

var msgBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// write sends one line (ending in '\n') as one message. Send errors
// (nobody listening) are reported at most once a second; the line is lost,
// as with nginx.
func (s *syslogSink) write(line []byte) {
	if s.closed.Load() {
		return
	}
	bp := msgBufs.Get().(*[]byte)
	b := append((*bp)[:0], s.pri...)
	b = time.Now().AppendFormat(b, time.Stamp)
	b = append(b, ' ')
	if s.host != "" {
		b = append(b, s.host...)
		b = append(b, ' ')
	}
	b = append(b, s.tag...)
	b = append(b, ": "...)
	b = append(b, line[:len(line)-1]...)
	if _, err := s.conn.Write(b); err != nil {
		s.mu.Lock()
		if now := time.Now(); now.Sub(s.lastErr) >= time.Second {
			s.lastErr = now
			s.errlog.Error("access log send to syslog failed", zap.String("server", s.conn.RemoteAddr().String()), zap.Error(err))
		}
		s.mu.Unlock()
	}
	if cap(b) <= 64<<10 {
		*bp = b
		msgBufs.Put(bp)
	}
}

func (s *syslogSink) close() error {
	s.closed.Store(true)
	return s.conn.Close()
}
