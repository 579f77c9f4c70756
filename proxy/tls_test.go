package proxy

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/parser/tlsconf/opensslrsa"
	"github.com/gproxy/gproxy/parser/tlsconf/tlstest"
)

// TestReloadRereadsCertificate: after the certificate file changes, a
// reload serves the new one to new handshakes; a reload whose new
// certificate is broken keeps the old configuration.
func TestReloadRereadsCertificate(t *testing.T) {
	dir := t.TempDir()
	first := tlstest.New(t, nil, tlstest.Options{CN: "first"})
	crt, key := first.Write(t, dir, "site")
	port := freePort(t)
	conf := fmt.Sprintf(`events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:%d ssl http2;
        ssl_certificate %s;
        ssl_certificate_key %s;
        location / { return 200 "ok"; }
    }
}
`, port, crt, key)
	s := startProxy(t, conf)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cn := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := cn(); got != "first" {
		t.Fatalf("certificate %q, want first", got)
	}
	reload := func() error {
		cfg, _, err := parser.LoadBytes(filepath.Join(dir, "nginx.conf"), []byte(conf), parser.Options{Prefix: dir})
		if err != nil {
			return err
		}
		return s.Reload(cfg)
	}
	tlstest.New(t, nil, tlstest.Options{CN: "second", RSA: true}).Write(t, dir, "site")
	if err := reload(); err != nil {
		t.Fatal(err)
	}
	if got := cn(); got != "second" {
		t.Fatalf("after reload: certificate %q, want second", got)
	}
	if err := os.WriteFile(key, []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := reload(); err == nil {
		t.Fatal("reload with a broken key succeeded")
	}
	if got := cn(); got != "second" {
		t.Fatalf("after a failed reload: certificate %q, want second", got)
	}
}

// TestHTTP2OnOverTLS: `http2 on;` (nginx 1.25.1+) on an ssl listener
// offers h2 in ALPN; without it only http/1.1 is offered.
func TestHTTP2OnOverTLS(t *testing.T) {
	dir := t.TempDir()
	crt, key := tlstest.New(t, nil, tlstest.Options{}).Write(t, dir, "site")
	on, off := freePort(t), freePort(t)
	startProxy(t, fmt.Sprintf(`events {}
http {
    access_log off;
    ssl_certificate %s;
    ssl_certificate_key %s;
    server { listen 127.0.0.1:%d ssl; http2 on; location / { return 200; } }
    server { listen 127.0.0.1:%d ssl; location / { return 200; } }
}
`, crt, key, on, off))
	for port, want := range map[int]string{on: "h2", off: "http/1.1"} {
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != want {
			t.Errorf("port %d: ALPN %q, want %q", port, got, want)
		}
		c.Close()
	}
}

// TestCertificateByClientCapabilities: with an ECDSA and an RSA pair on
// one server, a client that can only use RSA suites gets the RSA
// certificate, one that prefers ECDSA gets the ECDSA one.
func TestCertificateByClientCapabilities(t *testing.T) {
	dir := t.TempDir()
	eCrt, eKey := tlstest.New(t, nil, tlstest.Options{CN: "ecdsa"}).Write(t, dir, "e")
	rCrt, rKey := tlstest.New(t, nil, tlstest.Options{CN: "rsa", RSA: true}).Write(t, dir, "r")
	port := freePort(t)
	startProxy(t, fmt.Sprintf(`events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:%d ssl http2;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_certificate %s;
        ssl_certificate_key %s;
        location / { return 200; }
    }
}
`, port, eCrt, eKey, rCrt, rKey))
	for _, c := range []struct {
		suite uint16
		want  string
	}{
		{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "rsa"},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ecdsa"},
	} {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true,
			MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{c.suite}})
		if err != nil {
			t.Fatal(err)
		}
		if got := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; got != c.want {
			t.Errorf("client with %s got the %s certificate, want %s", tls.CipherSuiteName(c.suite), got, c.want)
		}
		conn.Close()
	}
}

// TestRSAHandshakes: with an RSA 2048 certificate, whose key signs with
// OpenSSL's libcrypto when gproxy is built with cgo (package opensslrsa),
// handshakes succeed with TLS 1.3 (rsa_pss_rsae_*), TLS 1.2 ECDHE-RSA with
// PSS and, through openssl s_client, with PKCS #1 v1.5 signatures, and
// TLS 1.2 RSA key exchange (decryption, which stays with Go).
func TestRSAHandshakes(t *testing.T) {
	dir := t.TempDir()
	crt, key := tlstest.New(t, nil, tlstest.Options{CN: "rsa", RSA: true}).Write(t, dir, "r")
	port := freePort(t)
	s := startProxy(t, fmt.Sprintf(`events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:%d ssl http2;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256;
        location / { return 200; }
    }
}
`, port, crt, key))
	for _, c := range s.cur.Load().tlsConfigs {
		if _, isGo := c.Certificates[0].PrivateKey.(*rsa.PrivateKey); isGo {
			if err := opensslrsa.Fallback(); err == nil {
				t.Error("the RSA key signs with Go's crypto/rsa and opensslrsa gives no reason")
			} else {
				t.Logf("signing with Go's crypto/rsa: %v", err)
			}
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, c := range []struct {
		name string
		conf *tls.Config
	}{
		{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}},
		{"TLS 1.2 ECDHE-RSA", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}},
		{"TLS 1.2 RSA key exchange", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}}},
	} {
		conf := c.conf
		roots := x509.NewCertPool()
		data, _ := os.ReadFile(crt)
		roots.AppendCertsFromPEM(data)
		conf.RootCAs, conf.ServerName = roots, "rsa"
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addr, conf)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		conn.Close()
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Log("no openssl: PKCS #1 v1.5 handshakes not tried")
		return
	}
	for _, alg := range []string{"RSA+SHA256", "RSA+SHA384", "RSA+SHA512"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", addr, "-tls1_2", "-sigalgs", alg,
			"-cipher", "ECDHE-RSA-AES128-GCM-SHA256", "-CAfile", crt, "-verify_return_error", "-servername", "rsa")
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "Peer signature type: RSA\n") {
			t.Errorf("openssl s_client -sigalgs %s: %v\n%s", alg, err, out)
		}
	}
}
