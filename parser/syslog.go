package parser

import (
	"net"
	"strconv"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// The "syslog:" destination of error_log and access_log (nginx's
// ngx_syslog.c): parsed here once, with nginx's messages, so that `-t`
// rejects what a run would.

// syslogFacilities and syslogSeverities are nginx's names, in the order of
// their numbers.
var (
	syslogFacilities = []string{
		"kern", "user", "mail", "daemon", "auth", "intern", "lpr", "news", "uucp",
		"clock", "authpriv", "ftp", "ntp", "audit", "alert", "cron",
		"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
	}
	syslogSeverities = []string{"emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"}
)

// Defaults nginx applies when a parameter is absent.
const (
	syslogDefaultFacility = 23 // local7
	syslogDefaultSeverity = 6  // info
	syslogDefaultTag      = "nginx"
	syslogDefaultPort     = 514
)

// sunPathLen is the size of sockaddr_un's sun_path on Linux; a path needs
// room for its terminating NUL there.
const sunPathLen = 108

// syslogParams are the parameters of a destination: each applies one
// value (what follows the key) to the destination being built and returns
// nginx's message for a bad one. nohostname is the only key without "=".
var syslogParams = []struct {
	key string
	set func(l *loader, d *syslogDest, v string) string
}{
	{"server=", (*loader).syslogServer},
	{"facility=", func(_ *loader, d *syslogDest, v string) string {
		return d.enum(&d.facilitySet, &d.cfg.Facility, syslogFacilities, "facility", v)
	}},
	{"severity=", func(_ *loader, d *syslogDest, v string) string {
		return d.enum(&d.severitySet, &d.cfg.Severity, syslogSeverities, "severity", v)
	}},
	{"tag=", func(_ *loader, d *syslogDest, v string) string {
		if d.tagSet {
			return `duplicate syslog "tag"`
		}
		d.tagSet = true
		if len(v) > 32 {
			return "syslog tag length exceeds 32"
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; !(c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return `syslog "tag" only allows alphanumeric characters and underscore`
			}
		}
		d.cfg.Tag = v
		return ""
	}},
}

// syslogDest is a destination while its parameters are read.
type syslogDest struct {
	cfg                                         config.Syslog
	serverSet, facilitySet, severitySet, tagSet bool
}

// enum sets *field to the index of v in names.
func (d *syslogDest) enum(set *bool, field *int, names []string, what, v string) string {
	if *set {
		return `duplicate syslog "` + what + `"`
	}
	*set = true
	for i, name := range names {
		if name == v {
			*field = i
			return ""
		}
	}
	return "unknown syslog " + what + ` "` + v + `"`
}

// parseSyslog reads dest ("syslog:" and comma-separated parameters) for
// directive n.
func (l *loader) parseSyslog(n *lex.Node, dest string) (*config.Syslog, error) {
	d := syslogDest{cfg: config.Syslog{
		Facility: syslogDefaultFacility,
		Severity: syslogDefaultSeverity,
		Tag:      syslogDefaultTag,
	}}
	for _, p := range strings.Split(strings.TrimPrefix(dest, "syslog:"), ",") {
		msg := `unknown syslog parameter "` + p + `"`
		if p == "nohostname" {
			d.cfg.NoHostname, msg = true, ""
		}
		for _, sp := range syslogParams {
			if v, ok := strings.CutPrefix(p, sp.key); ok {
				msg = sp.set(l, &d, v)
				break
			}
		}
		if msg != "" {
			return nil, l.errf(n, "%s", msg)
		}
	}
	if !d.serverSet {
		return nil, l.errf(n, "no syslog server specified")
	}
	return &d.cfg, nil
}

// syslogServer reads server=ADDRESS as nginx's URL parser does for it:
// unix:PATH, [IPv6][:port] or host[:port], the host resolved now.
func (l *loader) syslogServer(d *syslogDest, v string) string {
	if d.serverSet {
		return `duplicate syslog "server"`
	}
	d.serverSet = true
	d.cfg.Server = v
	network, host, port, msg := splitSyslogServer(v)
	if msg != "" {
		return msg + ` in syslog server "` + v + `"`
	}
	d.cfg.Network = network
	if network == "unixgram" {
		d.cfg.Addr = host
		return ""
	}
	ips, err := l.lookup(host)
	if err != nil || len(ips) == 0 {
		return `host not found in syslog server "` + v + `"`
	}
	// nginx sends to the first address only.
	d.cfg.Addr = net.JoinHostPort(ips[0], strconv.Itoa(port))
	return ""
}

// splitSyslogServer splits a server= value into its parts, or returns
// nginx's reason for refusing it. For unix sockets host is the path.
func splitSyslogServer(v string) (network, host string, port int, msg string) {
	if len(v) >= 5 && strings.EqualFold(v[:5], "unix:") {
		path := v[5:]
		switch {
		case path == "":
			return "", "", 0, "no path in the unix domain socket"
		case len(path)+1 > sunPathLen:
			return "", "", 0, "too long path in the unix domain socket"
		}
		return "unixgram", path, 0, ""
	}
	port = syslogDefaultPort
	if rest, ok := strings.CutPrefix(v, "["); ok {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", 0, "invalid host"
		}
		host, rest = rest[:end], rest[end+1:]
		if strings.IndexByte(rest, '/') >= 0 {
			return "", "", 0, "invalid host"
		}
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return "", "", 0, "invalid host"
			}
			if port, ok = syslogPort(p); !ok {
				return "", "", 0, "invalid port"
			}
		}
		if host == "" {
			return "", "", 0, "no host"
		}
		if ip := net.ParseIP(host); ip == nil || !strings.Contains(host, ":") {
			return "", "", 0, "invalid IPv6 address"
		}
		return "udp", host, port, ""
	}
	if strings.ContainsAny(v, "?/") {
		return "", "", 0, "invalid host"
	}
	// The first colon ends the host: "a:1:2" has the port "1:2".
	host = v
	if i := strings.IndexByte(v, ':'); i >= 0 {
		var ok bool
		if port, ok = syslogPort(v[i+1:]); !ok {
			return "", "", 0, "invalid port"
		}
		host = v[:i]
	}
	if host == "" {
		return "", "", 0, "no host"
	}
	return "udp", host, port, ""
}

// syslogPort reads a port as ngx_atoi does, 1 to 65535.
func syslogPort(s string) (int, bool) {
	n, ok := parseNum(s)
	return n, ok && n >= 1 && n <= 65535
}
