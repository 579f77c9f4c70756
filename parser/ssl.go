package parser

import (
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// ssl_* of http and server (nginx's http ssl module). Certificates and keys
// are arrays (a server may have an RSA and an ECDSA pair).

var sslCommands = concat([]command{
	{name: "ssl_certificate", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: sslPathArray(func(s *config.Settings) *[]string { return &s.SSL.Certificates })},
	{name: "ssl_certificate_key", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: sslPathArray(func(s *config.Settings) *[]string { return &s.SSL.CertificateKeys })},
	{name: "ssl_protocols", ctx: cHTTP | cServer, args: more1, status: statusImplemented,
		set: bitmaskSetting(sslProtocolValues, func(s *config.Settings, v []string) { s.SSL.Protocols = v })},
	{name: "ssl_ciphers", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: stringSetting(func(s *config.Settings, v string) { s.SSL.Ciphers = v })},
	{name: "ssl_prefer_server_ciphers", ctx: cHTTP | cServer, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.SSL.PreferServerCiphers = v })},
	{name: "ssl_session_cache", ctx: cHTTP | cServer, args: take12, status: statusImplemented, set: setSSLSessionCache},
	{name: "ssl_session_timeout", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: secSetting(func(s *config.Settings, v time.Duration) { s.SSL.SessionTimeout = v })},
	{name: "ssl_verify_client", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: enumSetting([]string{"off", "on", "optional", "optional_no_ca"}, func(s *config.Settings, v string) { s.SSL.VerifyClient = v })},
	{name: "ssl_verify_depth", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: numSetting(func(s *config.Settings, v int) { s.SSL.VerifyDepth = v })},
	{name: "ssl_client_certificate", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: pathSetting(func(s *config.Settings, v string) { s.SSL.ClientCertificate = v })},
	{name: "ssl_trusted_certificate", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: pathSetting(func(s *config.Settings, v string) { s.SSL.TrustedCertificate = v })},
	{name: "ssl_session_tickets", ctx: cHTTP | cServer, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.SSL.SessionTickets = v })},
	{name: "ssl_dhparam", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: pathSetting(func(s *config.Settings, v string) { s.SSL.DHParam = v })},
	{name: "ssl_ecdh_curve", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: stringSetting(func(s *config.Settings, v string) { s.SSL.ECDHCurve = v })},
	{name: "ssl_stapling", ctx: cHTTP | cServer, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.SSL.StaplingEnabled = v })},
},
	ignored(cHTTP|cServer, take1, slot(isSize), "ssl_buffer_size"),
	ignored(cHTTP|cServer, flag, slot(isFlag), "ssl_stapling_verify"),
	unsupported("ssl", "ssl_password_file", "ssl_session_ticket_key", "ssl_crl", "ssl_early_data",
		"ssl_conf_command", "ssl_reject_handshake", "ssl_ocsp", "ssl_ocsp_cache", "ssl_ocsp_responder",
		"ssl_stapling_file", "ssl_stapling_responder", "ssl_engine"),
)

// sslPathArray appends certificate or key file names; a server that names
// any replaces the http level's list.
func sslPathArray(get func(s *config.Settings) *[]string) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		v := l.confPath(n.Args[0])
		// nginx names a certificate without a key as written.
		l.asWritten[v] = n.Args[0]
		b.add(n.Name, func(s *config.Settings, fresh bool) {
			p := get(s)
			if fresh {
				*p = nil
			}
			*p = append(*p, v)
		})
		return nil
	}
}

// setSSLSessionCache reads `off | none | [builtin[:size]] [shared:name:size]`.
// As in nginx, a second ssl_session_cache at one level replaces the first.
func setSSLSessionCache(l *loader, b *block, n *lex.Node) error {
	for _, a := range n.Args {
		switch {
		case a == "off" || a == "none":
			if len(n.Args) != 1 {
				return l.errf(n, "invalid session cache \"%s\"", a)
			}
		case a == "builtin" || len(a) > 8 && a[:8] == "builtin:":
			if len(a) > 8 {
				if _, ok := parseNum(a[8:]); !ok {
					return l.errf(n, "invalid session cache \"%s\"", a)
				}
			}
		case len(a) > 7 && a[:7] == "shared:":
			rest := a[7:]
			i := len(rest) - 1
			for i >= 0 && rest[i] != ':' {
				i--
			}
			if i <= 0 {
				return l.errf(n, "invalid session cache \"%s\"", a)
			}
			if _, ok := parseSize(rest[i+1:]); !ok {
				return l.errf(n, "invalid session cache \"%s\"", a)
			}
		default:
			return l.errf(n, "invalid session cache \"%s\"", a)
		}
	}
	v := n.Args[0]
	if len(n.Args) == 2 {
		v += " " + n.Args[1]
	}
	b.set(n.Name, func(s *config.Settings) { s.SSL.SessionCache = v })
	return nil
}
