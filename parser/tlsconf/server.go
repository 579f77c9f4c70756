package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"github.com/gproxy/gproxy/parser/syserr"
	"os"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// Server is the TLS side of one virtual server.
type Server struct {
	// Reject is ssl_reject_handshake: handshakes choosing this server
	// fail.
	Reject bool
	// Warnings are what loading found worth saying but not refusing
	// (an expired certificate, which nginx serves), each with its
	// position.
	Warnings []*Error

	base       *tls.Config // nil when the server has no certificate
	verify     string      // ssl_verify_client
	roots      *x509.CertPool
	depth      int
	crl        *crlSet
	ticketLife time.Duration
}

// NewServer loads what s names (certificates and keys, password file,
// CA lists, CRL, ticket keys, DH parameters) and checks the rest, in
// nginx's order of loading. Every error is an *Error naming the
// directive's position.
func NewServer(s *config.SSLSettings) (*Server, error) {
	srv := &Server{Reject: s.RejectHandshake, verify: s.VerifyClient, depth: s.VerifyDepth, ticketLife: s.SessionTimeout}
	if len(s.Certificates) == 0 {
		return srv, nil
	}
	c := &tls.Config{}
	passwords, err := readPasswords(s.PasswordFile, s.Pos.PasswordFile)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for i, cert := range s.Certificates {
		if i >= len(s.CertificateKeys) {
			return nil, errAt(posAt(s.Pos.Certificates, i), "no \"ssl_certificate_key\" is defined for certificate \"%s\"", cert)
		}
		pair, err := loadPair(cert, s.CertificateKeys[i], posAt(s.Pos.Certificates, i), posAt(s.Pos.CertificateKeys, i), passwords)
		if err != nil {
			return nil, err
		}
		if now.After(pair.Leaf.NotAfter) {
			srv.Warnings = append(srv.Warnings, &Error{Pos: posAt(s.Pos.Certificates, i), Msg: fmt.Sprintf(
				"certificate \"%s\" has expired (notAfter %s); it is served all the same, as nginx does", cert, pair.Leaf.NotAfter.UTC().Format(time.RFC3339))})
		}
		c.Certificates = append(c.Certificates, pair)
	}
	if c.MinVersion, c.MaxVersion, err = protocolRange(s.Protocols, s.Pos.Protocols); err != nil {
		return nil, err
	}
	if c.CipherSuites, err = ciphers(s.Ciphers, s.Pos.Ciphers); err != nil {
		return nil, err
	}
	if c.CurvePreferences, err = curves(s.ECDHCurve, s.Pos.ECDHCurve); err != nil {
		return nil, err
	}
	if err := checkDHParam(s.DHParam, s.Pos.DHParam); err != nil {
		return nil, err
	}
	if err := srv.loadVerify(c, s); err != nil {
		return nil, err
	}
	c.SessionTicketsDisabled = !s.SessionTickets
	if err := setTicketKeys(c, s); err != nil {
		return nil, err
	}
	if err := applyConfCommands(c, s.ConfCommands, s.Pos.ConfCommand); err != nil {
		return nil, err
	}
	srv.base = c
	return srv, nil
}

// HasCertificate reports whether the server can complete a handshake.
func (s *Server) HasCertificate() bool { return s.base != nil }

// Config returns a new crypto/tls configuration of the server offering
// protos in ALPN. Tickets older than ssl_session_timeout are not resumed.
// It is nil when the server has no certificate.
func (s *Server) Config(protos []string) *tls.Config {
	if s.base == nil {
		return nil
	}
	c := s.base.Clone()
	c.NextProtos = protos
	if life := s.ticketLife; life > 0 && !c.SessionTicketsDisabled {
		c.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
			if _, ok := createdAt(ss); !ok {
				var b [len(ticketTag) + 8]byte
				copy(b[:], ticketTag)
				binary.BigEndian.PutUint64(b[len(ticketTag):], uint64(timeNow().Unix()))
				ss.Extra = append(ss.Extra, b[:])
			}
			return c.EncryptTicket(cs, ss)
		}
		c.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
			ss, err := c.DecryptTicket(identity, cs)
			if err != nil || ss == nil {
				return nil, nil // a full handshake instead
			}
			if t, ok := createdAt(ss); !ok || timeNow().Sub(t) > life {
				return nil, nil
			}
			return ss, nil
		}
	}
	return c
}

// timeNow is time.Now; tests move it.
var timeNow = time.Now

// ticketTag marks the creation time gproxy keeps in a session's Extra.
const ticketTag = "gproxy-created:"

func createdAt(ss *tls.SessionState) (time.Time, bool) {
	for _, e := range ss.Extra {
		if len(e) == len(ticketTag)+8 && string(e[:len(ticketTag)]) == ticketTag {
			return time.Unix(int64(binary.BigEndian.Uint64(e[len(ticketTag):])), 0), true
		}
	}
	return time.Time{}, false
}

// posAt is ps[i], or no position.
func posAt(ps []config.Pos, i int) config.Pos {
	if i < len(ps) {
		return ps[i]
	}
	return config.Pos{}
}

// ciphers maps an OpenSSL cipher string, with nginx's message when it
// cannot be honoured.
func ciphers(v string, at config.Pos) ([]uint16, error) {
	ids, reason := parseCiphers(v)
	if reason != "" {
		return nil, errAt(at, "SSL_CTX_set_cipher_list(\"%s\") failed (%s)", v, reason)
	}
	return ids, nil
}

// checkDHParam reads ssl_dhparam as nginx does. Go's crypto/tls has no
// finite-field DHE suites, so the parameters are checked and unused.
func checkDHParam(path string, at config.Pos) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return errAt(at, "BIO_new_file(\"%s\") failed (%s)", path, syserr.Open(path, err))
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return errAt(at, "PEM_read_bio_DHparams(\"%s\") failed (no PEM DH PARAMETERS found)", path)
		}
		if b.Type == "DH PARAMETERS" || b.Type == "X9.42 DH PARAMETERS" {
			return nil
		}
	}
}

// setTicketKeys reads ssl_session_ticket_key files (48 or 80 bytes, as
// nginx requires) and makes each a Go ticket key: the first encrypts. Go
// derives its keys from 32 bytes, so tickets are not interchangeable with
// nginx's, but are shared by every gproxy reading the same files.
func setTicketKeys(c *tls.Config, s *config.SSLSettings) error {
	if len(s.SessionTicketKeys) == 0 || c.SessionTicketsDisabled {
		return nil
	}
	var keys [][32]byte
	for i, f := range s.SessionTicketKeys {
		at := posAt(s.Pos.SessionTicketKeys, i)
		data, err := os.ReadFile(f)
		if err != nil {
			return errAt(at, "%s", syserr.Open(f, err))
		}
		if len(data) != 48 && len(data) != 80 {
			return errAt(at, "\"%s\" must be 48 or 80 bytes", f)
		}
		keys = append(keys, sha256.Sum256(data))
	}
	c.SetSessionTicketKeys(keys)
	return nil
}

// loadVerify sets up client certificate verification
// (ssl_verify_client, ssl_client_certificate, ssl_trusted_certificate,
// ssl_crl). The handshake only asks for a certificate; Verify checks it
// afterwards, so that the result reaches $ssl_client_verify and each
// request is answered as nginx answers it.
func (s *Server) loadVerify(c *tls.Config, st *config.SSLSettings) error {
	if st.ClientCertificate != "" {
		// Its names go in the CertificateRequest, as nginx sends them.
		c.ClientCAs = x509.NewCertPool()
		if err := loadCAs(c.ClientCAs, st.ClientCertificate, st.Pos.ClientCertificate); err != nil {
			return err
		}
	}
	if st.VerifyClient == "" || st.VerifyClient == "off" {
		return nil
	}
	if st.ClientCertificate == "" && st.TrustedCertificate == "" && st.VerifyClient != "optional_no_ca" {
		return errAt(st.Pos.VerifyClient, "no ssl_client_certificate for ssl_verify_client")
	}
	s.roots = x509.NewCertPool()
	for _, f := range []struct {
		path string
		at   config.Pos
	}{{st.ClientCertificate, st.Pos.ClientCertificate}, {st.TrustedCertificate, st.Pos.TrustedCertificate}} {
		if f.path != "" {
			if err := loadCAs(s.roots, f.path, f.at); err != nil {
				return err
			}
		}
	}
	crl, err := loadCRL(st.CRL, st.Pos.CRL)
	if err != nil {
		return err
	}
	s.crl = crl
	c.ClientAuth = tls.RequestClientCert
	return nil
}
