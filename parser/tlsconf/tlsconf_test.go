package tlsconf

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/tlsconf/tlstest"
)

func TestParseCiphers(t *testing.T) {
	tests := []struct {
		in     string
		has    []uint16
		hasnt  []uint16
		reason string
	}{
		{"HIGH:!aNULL:!MD5", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384},
			[]uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}, ""},
		{"ECDHE+AESGCM", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
			[]uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, ""},
		{"ALL:!kRSA:!3DES:!SHA1:!SHA256:!SHA384", []uint16{}, []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, "no cipher suite Go implements is selected"},
		{"ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, ""},
		{"HIGH:-AES256:AES256-GCM-SHA384", []uint16{tls.TLS_RSA_WITH_AES_256_GCM_SHA384}, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}, ""},
		{"HIGH:!AES256:AES256-GCM-SHA384", []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, []uint16{tls.TLS_RSA_WITH_AES_256_GCM_SHA384}, ""},
		{"DEFAULT:@STRENGTH", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}, ""},
		{"HIGH:NOPE", nil, nil, `unknown cipher "NOPE"`},
	}
	for _, tc := range tests {
		ids, reason := parseCiphers(tc.in)
		if tc.reason != "" {
			if reason == "" || reason[:min(len(reason), len(tc.reason))] != tc.reason[:min(len(reason), len(tc.reason))] {
				t.Errorf("%q: reason %q, want %q", tc.in, reason, tc.reason)
			}
			continue
		}
		if reason != "" {
			t.Errorf("%q: %s", tc.in, reason)
		}
		for _, id := range tc.has {
			if !slices.Contains(ids, id) {
				t.Errorf("%q lacks %s", tc.in, tls.CipherSuiteName(id))
			}
		}
		for _, id := range tc.hasnt {
			if slices.Contains(ids, id) {
				t.Errorf("%q has %s", tc.in, tls.CipherSuiteName(id))
			}
		}
	}
}

// TestVerify: $ssl_client_verify for the usual cases, and what each
// ssl_verify_client mode answers.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.New(t, nil, tlstest.Options{CN: "ca", CA: true})
	inter := tlstest.New(t, ca, tlstest.Options{CN: "inter", CA: true})
	good := tlstest.New(t, ca, tlstest.Options{CN: "good", Client: true, Serial: 7})
	deep := tlstest.New(t, inter, tlstest.Options{CN: "deep", Client: true})
	expired := tlstest.New(t, ca, tlstest.Options{CN: "old", Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	self := tlstest.New(t, nil, tlstest.Options{CN: "self", Client: true})
	revoked := tlstest.New(t, ca, tlstest.Options{CN: "revoked", Client: true, Serial: 99})
	caPath, _ := ca.Write(t, dir, "ca")
	srvCrt, srvKey := tlstest.New(t, ca, tlstest.Options{}).Write(t, dir, "srv")
	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(99), RevocationTime: time.Now()}},
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	crlPath := filepath.Join(dir, "ca.crl")
	os.WriteFile(crlPath, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER}), 0o644)

	mk := func(mode string, depth int, crl string) *Server {
		s, err := NewServer(&config.SSLSettings{Certificates: []string{srvCrt}, CertificateKeys: []string{srvKey},
			Protocols: []string{"TLSv1.2", "TLSv1.3"}, Ciphers: "HIGH", VerifyClient: mode, VerifyDepth: depth,
			ClientCertificate: caPath, CRL: crl, SessionTimeout: time.Minute, SessionTickets: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	on := mk("on", 1, crlPath)
	now := time.Now()
	chain := func(cs ...*tlstest.Cert) []*x509.Certificate {
		var out []*x509.Certificate
		for _, c := range cs {
			out = append(out, c.Cert)
		}
		return out
	}
	// The CRL names the CA as issuer; deep's issuer (inter) has none, so
	// with a CRL a chain through inter fails on the missing CRL, as
	// OpenSSL's CRL_CHECK_ALL does.
	for _, c := range []struct {
		srv   *Server
		certs []*x509.Certificate
		want  string
	}{
		{on, nil, "NONE"},
		{on, chain(good), "SUCCESS"},
		{on, chain(expired), "FAILED:certificate has expired"},
		{on, chain(self), "FAILED:self-signed certificate"},
		{on, chain(revoked), "FAILED:certificate revoked"},
		{mk("on", 1, ""), chain(deep, inter), "FAILED:certificate chain too long"},
		{mk("on", 2, ""), chain(deep, inter), "SUCCESS"},
		{mk("on", 2, crlPath), chain(deep, inter), "FAILED:unable to get certificate CRL"},
		{mk("on", 1, ""), chain(deep), "FAILED:unable to get local issuer certificate"},
	} {
		if got := c.srv.Verify(c.certs, now); got != c.want {
			t.Errorf("Verify(%d certs) = %q, want %q", len(c.certs), got, c.want)
		}
	}
	for _, c := range []struct {
		mode, verify, want string
	}{
		{"on", "NONE", "No required SSL certificate was sent"},
		{"optional", "NONE", ""},
		{"optional", "FAILED:self-signed certificate", "The SSL certificate error"},
		{"optional_no_ca", "FAILED:self-signed certificate", ""},
		{"optional_no_ca", "FAILED:certificate has expired", "The SSL certificate error"},
		{"on", "SUCCESS", ""},
	} {
		if got := mk(c.mode, 1, "").Refusal(c.verify); got != c.want {
			t.Errorf("%s with %s: %q, want %q", c.mode, c.verify, got, c.want)
		}
	}
	if got := good.Cert.SerialNumber.Int64(); got != 7 {
		t.Fatal(got)
	}
}

// TestTicketLifetime: a session older than ssl_session_timeout is not
// resumed; a younger one is.
func TestTicketLifetime(t *testing.T) {
	dir := t.TempDir()
	crt, key := tlstest.New(t, nil, tlstest.Options{}).Write(t, dir, "srv")
	s, err := NewServer(&config.SSLSettings{Certificates: []string{crt}, CertificateKeys: []string{key},
		Protocols: []string{"TLSv1.3"}, Ciphers: "HIGH", SessionTickets: true, SessionTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := s.Config([]string{"h2"})
	cache := tls.NewLRUClientSessionCache(4)
	resumed := func() bool {
		t.Helper()
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() {
			sc := tls.Server(b, srv)
			if sc.Handshake() == nil {
				io.Copy(io.Discard, sc) // sends the ticket, reads until closed
			}
		}()
		c := tls.Client(a, &tls.Config{InsecureSkipVerify: true, ClientSessionCache: cache, ServerName: "localhost"})
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		// The ticket comes after the handshake: one read takes it in.
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		c.Read(make([]byte, 1))
		return c.ConnectionState().DidResume
	}
	if resumed() {
		t.Fatal("first handshake resumed")
	}
	if !resumed() {
		t.Fatal("a fresh ticket was not resumed")
	}
	defer func() { timeNow = time.Now }()
	timeNow = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if resumed() {
		t.Error("a ticket older than ssl_session_timeout was resumed")
	}
}
