package proxy

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/tlsconf/tlstest"
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
