package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// Upstream is the TLS client side of grpc_pass grpcs://.
type Upstream struct {
	// Config is the crypto/tls client configuration: ALPN h2, the SNI
	// name when grpc_ssl_server_name is on, the client certificate,
	// versions, suites, a session cache when grpc_ssl_session_reuse is on,
	// and verification when grpc_ssl_verify is on.
	Config *tls.Config
	// Key identifies the settings: locations whose keys are equal can
	// share connections.
	Key string
}

// NewUpstream loads the grpc_ssl_* settings of a location passing to
// host (the grpc_pass host or upstream name, nginx's default
// grpc_ssl_name). Errors are *Error with the directive's position.
func NewUpstream(g *config.GRPCSettings, host string) (*Upstream, error) {
	name := host
	if len(g.SSLName.Parts) > 0 {
		for _, p := range g.SSLName.Parts {
			if p.Var != "" {
				return nil, errAt(g.SSLPos.Name, "\"grpc_ssl_name\" with variables is not supported by gproxy: upstream connections are shared by many requests")
			}
		}
		name = g.SSLName.Raw
	}
	// nginx strips a port from the name it checks and sends.
	if h, _, err := net.SplitHostPort(name); err == nil {
		name = h
	}
	if len(name) > 1 && name[0] == '[' && name[len(name)-1] == ']' {
		name = name[1 : len(name)-1]
	}
	c := &tls.Config{
		// Verification is ours (below): nginx checks the name it is given
		// whether or not it sends it as SNI, and not at all when
		// grpc_ssl_verify is off, its default.
		InsecureSkipVerify: true,
		NextProtos:         []string{"h2"},
	}
	// RFC 6066: SNI carries no IP address literal; nginx sends none then.
	if g.SSLServerName && net.ParseIP(name) == nil {
		c.ServerName = name
	}
	var err error
	if c.MinVersion, c.MaxVersion, err = protocolRange(g.SSLProtocols, g.SSLPos.Protocols); err != nil {
		return nil, err
	}
	if c.CipherSuites, err = ciphers(g.SSLCiphers, g.SSLPos.Ciphers); err != nil {
		return nil, err
	}
	if g.SSLCertificate != "" {
		if g.SSLCertificateKey == "" {
			return nil, errAt(posAt(g.SSLPos.Certificates, 0), "no \"grpc_ssl_certificate_key\" is defined for certificate \"%s\"", g.SSLCertificate)
		}
		passwords, err := readPasswords(g.SSLPasswordFile, g.SSLPos.PasswordFile)
		if err != nil {
			return nil, err
		}
		pair, err := loadPair(g.SSLCertificate, g.SSLCertificateKey, posAt(g.SSLPos.Certificates, 0), posAt(g.SSLPos.CertificateKeys, 0), passwords)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{pair}
	}
	if g.SSLVerify {
		if g.SSLTrustedCertificate == "" {
			return nil, errAt(config.Pos{}, "no grpc_ssl_trusted_certificate for grpc_ssl_verify")
		}
		roots := x509.NewCertPool()
		if err := loadCAs(roots, g.SSLTrustedCertificate, g.SSLPos.TrustedCertificate); err != nil {
			return nil, err
		}
		crl, err := loadCRL(g.SSLCRL, g.SSLPos.CRL)
		if err != nil {
			return nil, err
		}
		depth := g.SSLVerifyDepth
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyServer(cs.PeerCertificates, name, roots, crl, depth)
		}
	}
	if g.SSLSessionReuse {
		c.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	if err := applyConfCommands(c, g.SSLConfCommands, g.SSLPos.ConfCommand); err != nil {
		return nil, err
	}
	return &Upstream{Config: c, Key: UpstreamKey(g, host)}, nil
}

// UpstreamKey is NewUpstream(g, host).Key without loading anything.
func UpstreamKey(g *config.GRPCSettings, host string) string {
	return fmt.Sprintf("%q %q %v %v %d %q %q %q %q %q %q %q %v %q", host, g.SSLName.Raw, g.SSLServerName, g.SSLVerify,
		g.SSLVerifyDepth, g.SSLTrustedCertificate, g.SSLCRL, g.SSLCertificate, g.SSLCertificateKey,
		g.SSLPasswordFile, g.SSLProtocols, g.SSLCiphers, g.SSLSessionReuse, g.SSLConfCommands)
}

// verifyServer checks an upstream's certificates as nginx's
// grpc_ssl_verify does: a chain to a trusted certificate within depth,
// the CRL, and the name.
func verifyServer(certs []*x509.Certificate, name string, roots *x509.CertPool, crl *crlSet, depth int) error {
	if len(certs) == 0 {
		return errors.New("upstream SSL certificate verify error: no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	now := time.Now()
	chains, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return fmt.Errorf("upstream SSL certificate verify error: (%s)", verifyReason(err, certs, now))
	}
	var ok []*x509.Certificate
	for _, ch := range chains {
		if len(ch)-1 <= max(depth, 0) {
			ok = ch
			break
		}
	}
	if ok == nil {
		return errors.New("upstream SSL certificate verify error: (certificate chain too long)")
	}
	if r := crl.check(ok); r != "" {
		return fmt.Errorf("upstream SSL certificate verify error: (%s)", r)
	}
	if !checkHost(certs[0], name) {
		return fmt.Errorf("upstream SSL certificate does not match \"%s\"", name)
	}
	return nil
}

// checkHost is OpenSSL's X509_check_host, which nginx uses: the subject
// alternative names, or, in a certificate without DNS names, the subject's
// common name (Go's VerifyHostname no longer reads the common name).
func checkHost(c *x509.Certificate, name string) bool {
	if c.VerifyHostname(name) == nil {
		return true
	}
	if len(c.DNSNames) > 0 || net.ParseIP(name) != nil {
		return false
	}
	cn := strings.ToLower(c.Subject.CommonName)
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if cn == name {
		return true
	}
	// A leftmost "*." label matches one label.
	if rest, ok := strings.CutPrefix(cn, "*."); ok {
		if i := strings.IndexByte(name, '.'); i > 0 && name[i+1:] == rest {
			return true
		}
	}
	return false
}
