package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/gproxy/gproxy/parser/syserr"
	"os"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/tlsconf/opensslrsa"
	"github.com/youmark/pkcs8"
)

// readPasswords reads an ssl_password_file: one passphrase per line, as
// nginx reads it (trailing CR and spaces of a line are part of nothing).
func readPasswords(path string, at config.Pos) ([][]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errAt(at, "%s", syserr.Open(path, err))
	}
	var out [][]byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimRight(line, "\r\t ")
		if len(line) > 0 {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return nil, errAt(at, "password file \"%s\" is empty", path)
	}
	return out, nil
}

// loadPair loads one ssl_certificate (leaf first, then its chain) and its
// ssl_certificate_key, trying each password on an encrypted key, with
// nginx's messages: `cannot load certificate "..."`, `cannot load
// certificate key "..."`, `SSL_CTX_use_PrivateKey("...") failed`.
func loadPair(cert, key string, certAt, keyAt config.Pos, passwords [][]byte) (tls.Certificate, error) {
	var out tls.Certificate
	data, err := os.ReadFile(cert)
	if err != nil {
		return out, errAt(certAt, "cannot load certificate \"%s\": %s", cert, syserr.Open(cert, err))
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" || b.Type == "TRUSTED CERTIFICATE" {
			out.Certificate = append(out.Certificate, b.Bytes)
		}
	}
	if len(out.Certificate) == 0 {
		return out, errAt(certAt, "cannot load certificate \"%s\": PEM_read_bio_X509_AUX() failed (no PEM certificate found)", cert)
	}
	leaf, err := x509.ParseCertificate(out.Certificate[0])
	if err != nil {
		return out, errAt(certAt, "cannot load certificate \"%s\": PEM_read_bio_X509_AUX() failed (%v)", cert, err)
	}
	for i, der := range out.Certificate[1:] {
		if _, err := x509.ParseCertificate(der); err != nil {
			return out, errAt(certAt, "cannot load certificate \"%s\": PEM_read_bio_X509() failed (chain certificate %d: %v)", cert, i+1, err)
		}
	}
	out.Leaf = leaf
	pk, err := loadKey(key, keyAt, passwords)
	if err != nil {
		return out, err
	}
	if !publicKeyMatches(leaf.PublicKey, pk) {
		return out, errAt(keyAt, "SSL_CTX_use_PrivateKey(\"%s\") failed (the key does not match the certificate \"%s\")", key, cert)
	}
	out.PrivateKey = pk
	if k, ok := pk.(*rsa.PrivateKey); ok {
		// OpenSSL signs RSA handshakes about ten times faster than Go;
		// Wrap keeps Go's key when it cannot (opensslrsa.Fallback).
		out.PrivateKey, _ = opensslrsa.Wrap(k)
	}
	return out, nil
}

// loadKey reads a PEM private key: PKCS#1, SEC 1, PKCS#8, and encrypted
// PKCS#8 or legacy encrypted PEM with one of passwords.
func loadKey(key string, at config.Pos, passwords [][]byte) (crypto.Signer, error) {
	data, err := os.ReadFile(key)
	if err != nil {
		return nil, errAt(at, "cannot load certificate key \"%s\": %s", key, syserr.Open(key, err))
	}
	fail := func(reason string) error {
		return errAt(at, "cannot load certificate key \"%s\": PEM_read_bio_PrivateKey() failed (%s)", key, reason)
	}
	var b *pem.Block
	for rest := data; ; {
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fail("no PEM private key found")
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			break
		}
	}
	var der [][]byte // candidates to parse
	switch {
	case b.Type == "ENCRYPTED PRIVATE KEY":
		if len(passwords) == 0 {
			return nil, fail("the key is encrypted and no ssl_password_file is given")
		}
		for _, pw := range passwords {
			k, err := pkcs8.ParsePKCS8PrivateKey(b.Bytes, pw)
			if err == nil {
				if s, ok := k.(crypto.Signer); ok {
					return s, nil
				}
				return nil, fail("unsupported key type")
			}
		}
		return nil, fail("bad decrypt: no password of the password file fits")
	case x509.IsEncryptedPEMBlock(b): //nolint:staticcheck // legacy "Proc-Type: 4,ENCRYPTED" keys are still written by openssl
		if len(passwords) == 0 {
			return nil, fail("the key is encrypted and no ssl_password_file is given")
		}
		for _, pw := range passwords {
			d, err := x509.DecryptPEMBlock(b, pw) //nolint:staticcheck
			if err == nil {
				der = append(der, d)
			}
		}
		if len(der) == 0 {
			return nil, fail("bad decrypt: no password of the password file fits")
		}
	default:
		der = [][]byte{b.Bytes}
	}
	var lastErr error
	for _, d := range der {
		k, err := parseKeyDER(d)
		if err == nil {
			return k, nil
		}
		lastErr = err
	}
	return nil, fail(lastErr.Error())
}

func parseKeyDER(d []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS1PrivateKey(d); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(d); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(d)
	if err != nil {
		return nil, errors.New("not a PKCS#1, SEC 1 or PKCS#8 private key")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

// publicKeyMatches reports whether pk is the private half of pub.
func publicKeyMatches(pub any, pk crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return pub.(equaler).Equal(pk.Public())
	}
	return false
}

// loadCAs reads a PEM file of trusted certificates (ssl_client_certificate,
// ssl_trusted_certificate, grpc_ssl_trusted_certificate) into pool.
func loadCAs(pool *x509.CertPool, path string, at config.Pos) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return errAt(at, "SSL_CTX_load_verify_locations(\"%s\") failed (%s)", path, syserr.Open(path, err))
	}
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" && b.Type != "TRUSTED CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return errAt(at, "SSL_CTX_load_verify_locations(\"%s\") failed (%v)", path, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return errAt(at, "SSL_CTX_load_verify_locations(\"%s\") failed (no PEM certificate found)", path)
	}
	return nil
}

// loadCRL reads an ssl_crl or grpc_ssl_crl file: PEM "X509 CRL" blocks.
// It returns the revoked serial numbers by issuer (raw subject).
func loadCRL(path string, at config.Pos) (*crlSet, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errAt(at, "X509_LOOKUP_load_file(\"%s\") failed (%s)", path, syserr.Open(path, err))
	}
	set := &crlSet{revoked: map[string]map[string]bool{}}
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "X509 CRL" {
			continue
		}
		l, err := x509.ParseRevocationList(b.Bytes)
		if err != nil {
			return nil, errAt(at, "X509_LOOKUP_load_file(\"%s\") failed (%v)", path, err)
		}
		set.lists = append(set.lists, l)
		m := set.revoked[string(l.RawIssuer)]
		if m == nil {
			m = map[string]bool{}
			set.revoked[string(l.RawIssuer)] = m
		}
		for _, e := range l.RevokedCertificateEntries {
			m[string(e.SerialNumber.Bytes())] = true
		}
		n++
	}
	if n == 0 {
		return nil, errAt(at, "X509_LOOKUP_load_file(\"%s\") failed (no PEM CRL found)", path)
	}
	return set, nil
}

// crlSet is a loaded CRL file.
type crlSet struct {
	lists   []*x509.RevocationList
	revoked map[string]map[string]bool // issuer raw subject -> serial bytes
}

// check returns OpenSSL's verify error text for the first problem of
// chain (leaf first) against the CRLs, or "". As with OpenSSL's
// X509_V_FLAG_CRL_CHECK_ALL, which nginx sets, every certificate of the
// chain but the trusted root is checked, and each needs a CRL from its
// issuer.
func (s *crlSet) check(chain []*x509.Certificate) string {
	if s == nil {
		return ""
	}
	for i := 0; i+1 < len(chain); i++ {
		c, issuer := chain[i], chain[i+1]
		var crl *x509.RevocationList
		for _, l := range s.lists {
			if bytes.Equal(l.RawIssuer, issuer.RawSubject) && l.CheckSignatureFrom(issuer) == nil {
				crl = l
				break
			}
		}
		if crl == nil {
			return "unable to get certificate CRL"
		}
		if s.revoked[string(crl.RawIssuer)][string(c.SerialNumber.Bytes())] {
			return "certificate revoked"
		}
	}
	return ""
}
