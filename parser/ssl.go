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
		set: sslPathArray(func(s *config.Settings) (*[]string, *[]config.Pos) {
			return &s.SSL.Certificates, &s.SSL.Pos.Certificates
		})},
	{name: "ssl_certificate_key", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: sslPathArray(func(s *config.Settings) (*[]string, *[]config.Pos) {
			return &s.SSL.CertificateKeys, &s.SSL.Pos.CertificateKeys
		})},
	{name: "ssl_protocols", ctx: cHTTP | cServer, args: more1, status: statusImplemented,
		set: withPos(bitmaskSetting(sslProtocolValues, func(s *config.Settings, v []string) { s.SSL.Protocols = v }),
			func(s *config.Settings) *config.Pos { return &s.SSL.Pos.Protocols })},
	{name: "ssl_ciphers", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: withPos(stringSetting(func(s *config.Settings, v string) { s.SSL.Ciphers = v }),
			func(s *config.Settings) *config.Pos { return &s.SSL.Pos.Ciphers })},
	{name: "ssl_prefer_server_ciphers", ctx: cHTTP | cServer, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.SSL.PreferServerCiphers = v })},
	{name: "ssl_session_cache", ctx: cHTTP | cServer, args: take12, status: statusImplemented, set: setSSLSessionCache},
	{name: "ssl_session_timeout", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: secSetting(func(s *config.Settings, v time.Duration) { s.SSL.SessionTimeout = v })},
	{name: "ssl_verify_client", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: withPos(enumSetting([]string{"off", "on", "optional", "optional_no_ca"}, func(s *config.Settings, v string) { s.SSL.VerifyClient = v }),
			func(s *config.Settings) *config.Pos { return &s.SSL.Pos.VerifyClient })},
	{name: "ssl_verify_depth", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: numSetting(func(s *config.Settings, v int) { s.SSL.VerifyDepth = v })},
	{name: "ssl_client_certificate", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: withPos(pathSetting(func(s *config.Settings, v string) { s.SSL.ClientCertificate = v }),
			func(s *config.Settings) *config.Pos { return &s.SSL.Pos.ClientCertificate })},
	{name: "ssl_trusted_certificate", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: withPos(pathSetting(func(s *config.Settings, v string) { s.SSL.TrustedCertificate = v }),
			func(s *config.Settings) *config.Pos { return &s.SSL.Pos.TrustedCertificate })},
	{name: "ssl_crl", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: withPos(pathSetting(func(s *config.Settings, v string) { s.SSL.CRL = v }),
			func(s *config.Settings) *config.Pos { return &s.SSL.Pos.CRL })},
	{name: "ssl_password_file", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: withPos(pathSetting(func(s *config.Settings, v string) { s.SSL.PasswordFile = v }),
			func(s *config.Settings) *config.Pos { return &s.SSL.Pos.PasswordFile })},
	{name: "ssl_session_tickets", ctx: cHTTP | cServer, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.SSL.SessionTickets = v })},
	{name: "ssl_session_ticket_key", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: sslPathArray(func(s *config.Settings) (*[]string, *[]config.Pos) {
			return &s.SSL.SessionTicketKeys, &s.SSL.Pos.SessionTicketKeys
		})},
	{name: "ssl_reject_handshake", ctx: cHTTP | cServer, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.SSL.RejectHandshake = v })},
	{name: "ssl_conf_command", ctx: cHTTP | cServer, args: take2, status: statusImplemented,
		set: confCommand(func(s *config.Settings) (*[][2]string, *config.Pos) {
			return &s.SSL.ConfCommands, &s.SSL.Pos.ConfCommand
		})},
	{name: "ssl_dhparam", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: withPos(pathSetting(func(s *config.Settings, v string) { s.SSL.DHParam = v }),
			func(s *config.Settings) *config.Pos { return &s.SSL.Pos.DHParam })},
	{name: "ssl_ecdh_curve", ctx: cHTTP | cServer, args: take1, status: statusImplemented,
		set: withPos(stringSetting(func(s *config.Settings, v string) { s.SSL.ECDHCurve = v }),
			func(s *config.Settings) *config.Pos { return &s.SSL.Pos.ECDHCurve })},
	{name: "ssl_stapling", ctx: cHTTP | cServer, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.SSL.StaplingEnabled = v })},
},
	ignored(cHTTP|cServer, take1, slot(isSize), "ssl_buffer_size"),
	ignored(cHTTP|cServer, flag, slot(isFlag), "ssl_stapling_verify"),
	unsupported("ssl", "ssl_early_data",
		"ssl_ocsp", "ssl_ocsp_cache", "ssl_ocsp_responder",
		"ssl_stapling_file", "ssl_stapling_responder", "ssl_engine"),
)

// withPos records where a scalar directive stands (see config.SSLPos)
// after inner has set its value.
func withPos(inner setter, get func(s *config.Settings) *config.Pos) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := inner(l, b, n); err != nil {
			return err
		}
		p := l.pos(n)
		b.set(n.Name+" pos", func(s *config.Settings) { *get(s) = p })
		return nil
	}
}

// confCommand appends an ssl_conf_command or grpc_ssl_conf_command
// name/value pair; a level that names any replaces the inherited list,
// as nginx's arrays do.
func confCommand(get func(s *config.Settings) (*[][2]string, *config.Pos)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		kv := [2]string{n.Args[0], n.Args[1]}
		p := l.pos(n)
		b.add(n.Name, func(s *config.Settings, fresh bool) {
			list, pos := get(s)
			if fresh {
				*list = nil
			}
			*list = append(*list, kv)
			*pos = p
		})
		return nil
	}
}

// sslPathArray appends certificate, key or ticket key file names and
// their positions; a server that names any replaces the http level's list.
func sslPathArray(get func(s *config.Settings) (*[]string, *[]config.Pos)) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		v := l.confPath(n.Args[0])
		// nginx names a certificate without a key as written.
		l.asWritten[v] = n.Args[0]
		at := l.pos(n)
		b.add(n.Name, func(s *config.Settings, fresh bool) {
			p, ps := get(s)
			if fresh {
				*p, *ps = nil, nil
			}
			*p = append(*p, v)
			*ps = append(*ps, at)
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
