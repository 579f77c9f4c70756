package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/tlsconf"
	"github.com/gproxy/gproxy/parser/tlsconf/opensslrsa"
	"github.com/gproxy/gproxy/proxy/access"
	"github.com/gproxy/gproxy/proxy/route"
	"go.uber.org/zap"
)

// TLS on client connections. A listener with `ssl` hands every accepted
// connection to a crypto/tls server whose configuration is chosen per
// handshake by SNI (nginx's server selection on the listener's server
// names, from the running configuration, so a reload's certificates take
// effect for new handshakes). ALPN decides the protocol: "h2" is HTTP/2,
// "http/1.1" is HTTP/1.1, and a client that offers no ALPN is sniffed as
// on cleartext.

// tlsKey names the crypto/tls configuration of a server on listeners with
// or without http2 (their ALPN lists differ).
type tlsKey struct {
	srv   *config.Server
	http2 bool
}

// alpn is what a listener offers in ALPN, in the server's preference.
func alpn(http2 bool) []string {
	if http2 {
		return []string{"h2", "http/1.1"}
	}
	return []string{"http/1.1"}
}

// buildTLS loads the TLS side of every server of cfg, and a crypto/tls
// configuration per server and ALPN list that an ssl listener needs.
func (rc *running) buildTLS() error {
	rc.tlsServers = make(map[*config.Server]*tlsconf.Server)
	rc.tlsConfigs = make(map[tlsKey]*tls.Config)
	if rc.cfg.HTTP == nil {
		return nil
	}
	for _, srv := range rc.cfg.HTTP.Servers {
		ts, err := tlsconf.NewServer(&srv.Settings.SSL)
		if err != nil {
			return err
		}
		rc.tlsServers[srv] = ts
	}
	for _, l := range rc.table.Listeners() {
		if !l.SSL {
			continue
		}
		for _, srv := range l.Servers {
			k := tlsKey{srv, l.HTTP2}
			if ts := rc.tlsServers[srv]; ts != nil && rc.tlsConfigs[k] == nil && !ts.Reject {
				rc.tlsConfigs[k] = ts.Config(alpn(l.HTTP2))
			}
		}
	}
	return nil
}

// noteRSAFallback says once per process, at notice level, why RSA keys
// sign with Go's crypto/rsa rather than OpenSSL (see package opensslrsa):
// handshakes work either way, but each costs about ten times the CPU.
func (s *Server) noteRSAFallback() {
	if err := opensslrsa.Fallback(); err != nil {
		rsaFallbackOnce.Do(func() { s.log.Info(err.Error()) })
	}
}

var rsaFallbackOnce sync.Once

// rejectConfig ends a handshake that selects a server with
// ssl_reject_handshake on, or one without a certificate: having no
// certificate, crypto/tls ends it with the alert unrecognized_name (112),
// as nginx's SNI callback does. It allows every version and offers no ALPN
// and no resumption, so that nothing ends the handshake earlier with
// another alert.
var rejectConfig = &tls.Config{MinVersion: tls.VersionTLS10, SessionTicketsDisabled: true}

// tlsConfig is the listener's crypto/tls configuration: every handshake
// picks its server's from the running configuration.
func (s *Server) tlsConfig(ln *listener) *tls.Config {
	return &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			if c := s.serverTLS(ln, h.Conn.LocalAddr(), h.ServerName); c != nil {
				return c, nil
			}
			return rejectConfig, nil
		},
	}
}

// serverTLS is the crypto/tls configuration of the server that SNI name
// selects on ln, nil when that server rejects handshakes.
func (s *Server) serverTLS(ln *listener, local net.Addr, name string) *tls.Config {
	rc := s.cur.Load()
	l := rc.listeners[ln.key]
	if l == nil {
		return nil
	}
	return rc.tlsConfigs[tlsKey{l.ServerAt(local, name), ln.http2.Load()}]
}

// handshakeTimeout bounds a TLS handshake, as client_header_timeout's
// default bounds nginx's.
const handshakeTimeout = 60 * time.Second

// handshake runs the TLS handshake of nc and verifies the client's
// certificate for the server SNI chose. It returns nil, having closed
// nc, when the handshake fails.
//
//go:noinline
func (s *Server) handshake(ln *listener, nc net.Conn) *tlsConn {
	tc := tls.Server(nc, ln.tlsConf)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		// A rejected handshake is what the configuration asks for; the
		// name crypto/tls records comes before it picks a certificate.
		if s.serverTLS(ln, nc.LocalAddr(), tc.ConnectionState().ServerName) != nil {
			s.log.Info("SSL handshake failed", zap.Stringer("client", nc.RemoteAddr()), zap.Error(err))
		}
		tc.Close()
		return nil
	}
	info := &route.TLS{State: tc.ConnectionState()}
	info.Verify = tlsconf.VerifyNone
	rc := s.cur.Load()
	if l := rc.listeners[ln.key]; l != nil {
		srv := l.ServerAt(nc.LocalAddr(), info.State.ServerName)
		info.Verify = rc.tlsServers[srv].Verify(info.State.PeerCertificates, time.Now())
	}
	return &tlsConn{Conn: tc, info: info}
}

// tlsConn is a client connection after its handshake, with what the
// ssl_* variables and ssl_verify_client need.
type tlsConn struct {
	net.Conn // *tls.Conn, or a prefixConn over one after sniffing
	info     *route.TLS
}

// tlsInfo returns the TLS state of a client connection; nil on cleartext.
func tlsInfo(nc net.Conn) *route.TLS {
	if t, ok := nc.(*tlsConn); ok {
		return t.info
	}
	return nil
}

// refuseAction answers a request refused by ssl_verify_client: nginx's
// 400 page with msg for plain HTTP; for a gRPC request an action with
// Code 0, which the caller answers with UNAUTHENTICATED and msg, since a
// gRPC client shows an HTTP 400 only as "Unknown".
func refuseAction(msg string, r *route.Request) *route.Action {
	if ct := headerFieldValue(r, "content-type"); strings.HasPrefix(ct, "application/grpc") {
		return &route.Action{}
	}
	return &route.Action{Code: http.StatusBadRequest, Body: "400 Bad Request: " + msg + "\n"}
}

func headerFieldValue(r *route.Request, name string) string {
	for _, h := range r.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// misdirected is nginx's 421 rule (ngx_http_set_virtual_server): on a
// TLS connection whose SNI named one of the listener's servers, a request
// for another host (see route.Listener.SNIMismatch) is misdirected when
// the server that host selects verifies client certificates
// (ssl_verify_client on, optional or optional_no_ca), since the
// certificate was asked for, or not, under the SNI's server.
func misdirected(lst *route.Listener, srv *config.Server, r *route.Request) bool {
	if r.TLS == nil || srv == nil {
		return false
	}
	if v := srv.Settings.SSL.VerifyClient; v == "" || v == "off" {
		return false
	}
	host := r.Authority
	if host == "" {
		host = headerFieldValue(r, "host")
	}
	return lst.SNIMismatch(r.LocalAddr, r.TLS.State.ServerName, host)
}

// misdirectedResult answers a misdirected request: 421 with nginx's page
// or its error_page; a gRPC call without an error_page for 421 gets
// PERMISSION_DENIED (refusalCode) with the text nginx logs.
func misdirectedResult() *access.Result {
	return &access.Result{Status: http.StatusMisdirectedRequest,
		Message: "client attempted to request the server name different from the one that was negotiated"}
}

// refusal is nginx's answer to a request of srv on a connection whose
// client certificate does not satisfy srv's ssl_verify_client: "" to
// serve it.
func (rc *running) refusal(srv *config.Server, t *route.TLS) string {
	if t == nil || srv == nil {
		return ""
	}
	return rc.tlsServers[srv].Refusal(t.Verify)
}
