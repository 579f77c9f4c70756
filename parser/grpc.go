package parser

import (
	"strings"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/lex"
)

// grpc_pass and the grpc_* settings (nginx's grpc module).

var nextUpstreamValues = []string{
	"error", "timeout", "invalid_header", "non_idempotent", "http_500", "http_502",
	"http_503", "http_504", "http_403", "http_404", "http_429", "off",
}

var ignoreHeadersValues = []string{
	"X-Accel-Redirect", "X-Accel-Expires", "X-Accel-Limit-Rate", "X-Accel-Buffering",
	"X-Accel-Charset", "Expires", "Cache-Control", "Set-Cookie", "Vary",
}

var sslProtocolValues = []string{"SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}

var grpcCommands = concat([]command{
	{name: "grpc_pass", ctx: cLoc | cLIF, args: take1, status: statusImplemented, set: setGRPCPass},
	{name: "grpc_set_header", ctx: cHSL, args: take2, status: statusImplemented, set: setGRPCSetHeader},
	{name: "grpc_hide_header", ctx: cHSL, args: take1, status: statusImplemented,
		set: arraySetting(func(s *config.Settings) *[]string { return &s.GRPC.HideHeaders }, true)},
	{name: "grpc_pass_header", ctx: cHSL, args: take1, status: statusImplemented,
		set: arraySetting(func(s *config.Settings) *[]string { return &s.GRPC.PassHeaders }, true)},
	{name: "grpc_ignore_headers", ctx: cHSL, args: more1, status: statusImplemented,
		set: bitmaskSetting(ignoreHeadersValues, func(s *config.Settings, v []string) { s.GRPC.IgnoreHeaders = v })},
	{name: "grpc_connect_timeout", ctx: cHSL, args: take1, status: statusImplemented,
		set: msecSetting(func(s *config.Settings, v time.Duration) { s.GRPC.ConnectTimeout = v })},
	{name: "grpc_read_timeout", ctx: cHSL, args: take1, status: statusImplemented,
		set: msecSetting(func(s *config.Settings, v time.Duration) { s.GRPC.ReadTimeout = v })},
	{name: "grpc_send_timeout", ctx: cHSL, args: take1, status: statusImplemented,
		set: msecSetting(func(s *config.Settings, v time.Duration) { s.GRPC.SendTimeout = v })},
	{name: "grpc_next_upstream", ctx: cHSL, args: more1, status: statusImplemented,
		set: bitmaskSetting(nextUpstreamValues, func(s *config.Settings, v []string) {
			if contains(v, "off") {
				// nginx: "off" wins over anything beside it.
				v = []string{"off"}
			}
			s.GRPC.NextUpstream = v
		})},
	{name: "grpc_next_upstream_tries", ctx: cHSL, args: take1, status: statusImplemented,
		set: numSetting(func(s *config.Settings, v int) { s.GRPC.NextUpstreamTries = v })},
	{name: "grpc_next_upstream_timeout", ctx: cHSL, args: take1, status: statusImplemented,
		set: msecSetting(func(s *config.Settings, v time.Duration) { s.GRPC.NextUpstreamTimeout = v })},
	{name: "grpc_buffer_size", ctx: cHSL, args: take1, status: statusImplemented,
		set: sizeSetting(func(s *config.Settings, v int) { s.GRPC.BufferSize = v })},
	{name: "grpc_socket_keepalive", ctx: cHSL, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.GRPC.SocketKeepalive = v })},
	{name: "grpc_intercept_errors", ctx: cHSL, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.GRPC.InterceptErrors = v })},
	{name: "grpc_ssl_name", ctx: cHSL, args: take1, status: statusImplemented, set: setGRPCSSLName},
	{name: "grpc_ssl_server_name", ctx: cHSL, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.GRPC.SSLServerName = v })},
	{name: "grpc_ssl_verify", ctx: cHSL, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.GRPC.SSLVerify = v })},
	{name: "grpc_ssl_verify_depth", ctx: cHSL, args: take1, status: statusImplemented,
		set: numSetting(func(s *config.Settings, v int) { s.GRPC.SSLVerifyDepth = v })},
	{name: "grpc_ssl_trusted_certificate", ctx: cHSL, args: take1, status: statusImplemented,
		set: withPos(pathSetting(func(s *config.Settings, v string) { s.GRPC.SSLTrustedCertificate = v }),
			func(s *config.Settings) *config.Pos { return &s.GRPC.SSLPos.TrustedCertificate })},
	{name: "grpc_ssl_certificate", ctx: cHSL, args: take1, status: statusImplemented,
		set: grpcSSLFile(func(s *config.Settings, v string) { s.GRPC.SSLCertificate = v },
			func(s *config.Settings) *[]config.Pos { return &s.GRPC.SSLPos.Certificates })},
	{name: "grpc_ssl_certificate_key", ctx: cHSL, args: take1, status: statusImplemented,
		set: grpcSSLFile(func(s *config.Settings, v string) { s.GRPC.SSLCertificateKey = v },
			func(s *config.Settings) *[]config.Pos { return &s.GRPC.SSLPos.CertificateKeys })},
	{name: "grpc_ssl_protocols", ctx: cHSL, args: more1, status: statusImplemented,
		set: withPos(bitmaskSetting(sslProtocolValues, func(s *config.Settings, v []string) { s.GRPC.SSLProtocols = v }),
			func(s *config.Settings) *config.Pos { return &s.GRPC.SSLPos.Protocols })},
	{name: "grpc_ssl_ciphers", ctx: cHSL, args: take1, status: statusImplemented,
		set: withPos(stringSetting(func(s *config.Settings, v string) { s.GRPC.SSLCiphers = v }),
			func(s *config.Settings) *config.Pos { return &s.GRPC.SSLPos.Ciphers })},
	{name: "grpc_ssl_password_file", ctx: cHSL, args: take1, status: statusImplemented,
		set: withPos(pathSetting(func(s *config.Settings, v string) { s.GRPC.SSLPasswordFile = v }),
			func(s *config.Settings) *config.Pos { return &s.GRPC.SSLPos.PasswordFile })},
	{name: "grpc_ssl_crl", ctx: cHSL, args: take1, status: statusImplemented,
		set: withPos(pathSetting(func(s *config.Settings, v string) { s.GRPC.SSLCRL = v }),
			func(s *config.Settings) *config.Pos { return &s.GRPC.SSLPos.CRL })},
	{name: "grpc_ssl_session_reuse", ctx: cHSL, args: flag, status: statusImplemented,
		set: flagSetting(func(s *config.Settings, v bool) { s.GRPC.SSLSessionReuse = v })},
	{name: "grpc_ssl_conf_command", ctx: cHSL, args: take2, status: statusImplemented,
		set: confCommand(func(s *config.Settings) (*[][2]string, *config.Pos) {
			return &s.GRPC.SSLConfCommands, &s.GRPC.SSLPos.ConfCommand
		})},
},
	unsupported("grpc_bind"),
)

// grpcSSLFile sets grpc_ssl_certificate or grpc_ssl_certificate_key and
// records its position as the only entry of its SSLPos list.
func grpcSSLFile(f func(s *config.Settings, v string), get func(s *config.Settings) *[]config.Pos) setter {
	return func(l *loader, b *block, n *lex.Node) error {
		if err := l.once(b, n); err != nil {
			return err
		}
		v, p := l.confPath(n.Args[0]), l.pos(n)
		b.set(n.Name, func(s *config.Settings) { f(s, v); *get(s) = []config.Pos{p} })
		return nil
	}
}

func setGRPCPass(l *loader, b *block, n *lex.Node) error {
	// Inside if, the pass is the if block's own (nginx gives it a location
	// configuration of its own).
	slot := &b.loc.l.GRPCPass
	if b.kind == cLIF {
		slot = &b.ifb.GRPCPass
	}
	if *slot != nil || b.loc.l.Monitor != nil {
		return l.dirErr(n, "is duplicate")
	}
	v := n.Args[0]
	gp := &config.GRPCPass{Scheme: "grpc", Pos: l.pos(n)}
	if strings.IndexByte(v, '$') >= 0 {
		// Resolved per request (see config.GRPCPass.Target).
		switch {
		case strings.HasPrefix(v, "grpcs://"):
			gp.Scheme = "grpcs"
			v = v[len("grpcs://"):]
		case strings.HasPrefix(v, "grpc://"):
			v = v[len("grpc://"):]
		}
		t, terr := parseTemplate(v)
		if terr != nil {
			return l.errf(n, "%s", terr.msg)
		}
		l.useVars(t)
		gp.Target = t
		*slot = gp
		return nil
	}
	switch {
	case strings.HasPrefix(v, "grpc://"):
		v = v[len("grpc://"):]
	case strings.HasPrefix(v, "grpcs://"):
		gp.Scheme = "grpcs"
		v = v[len("grpcs://"):]
	case strings.Contains(v, "://"):
		return l.errf(n, "invalid host in upstream \"%s\"", v)
	}
	var host, port string
	if strings.HasPrefix(v, "unix:") {
		if len(v) == len("unix:") {
			return l.errf(n, `no path in the unix domain socket in upstream "%s"`, v)
		}
		host = v
	} else {
		var msg string
		host, port, msg = splitHostPort(v, "")
		if msg != "" {
			return l.errf(n, "%s in upstream \"%s\"", msg, v)
		}
		if strings.HasPrefix(v, "[") {
			// nginx names an IPv6 upstream as written, brackets and all.
			host = "[" + host + "]"
		}
	}
	r, err := l.addUpstream(n, host, port, false)
	if err != nil {
		return err
	}
	r.passes = append(r.passes, gp)
	*slot = gp
	return nil
}

func setGRPCSetHeader(l *loader, b *block, n *lex.Node) error {
	t, terr := parseTemplate(n.Args[1])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(t)
	h := config.Header{Name: lower(n.Args[0]), Value: t}
	b.add(n.Name, func(s *config.Settings, fresh bool) {
		if fresh {
			s.GRPC.SetHeaders = nil
		}
		s.GRPC.SetHeaders = append(s.GRPC.SetHeaders, h)
	})
	return nil
}

func setGRPCSSLName(l *loader, b *block, n *lex.Node) error {
	if err := l.once(b, n); err != nil {
		return err
	}
	t, terr := parseTemplate(n.Args[0])
	if terr != nil {
		return l.errf(n, "%s", terr.msg)
	}
	l.useVars(t)
	p := l.pos(n)
	b.set(n.Name, func(s *config.Settings) { s.GRPC.SSLName = t; s.GRPC.SSLPos.Name = p })
	return nil
}
