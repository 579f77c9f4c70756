package parser

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/tlsconf/tlstest"
)

// TestSSLLoadErrors: what nginx refuses at -t when it loads TLS material
// is refused here too, with nginx's text up to the OpenSSL call, Go's
// reason after it, and the directive's FILE:LINE.
func TestSSLLoadErrors(t *testing.T) {
	good := tlstest.New(t, nil, tlstest.Options{})
	other := tlstest.New(t, nil, tlstest.Options{RSA: true})
	expired := tlstest.New(t, nil, tlstest.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	files := map[string]string{
		"good.crt": string(good.CertPEM()), "good.key": string(good.KeyPEM()),
		"other.key":   string(other.KeyPEM()),
		"enc.key":     string(good.EncryptedKeyPEM(t, "secret")),
		"pw":          "wrong\nsecret\n",
		"badpw":       "wrong\n",
		"expired.crt": string(expired.CertPEM()), "expired.key": string(expired.KeyPEM()),
		"garbage.crt": "not a certificate\n",
		"ca.crt":      string(good.CertPEM()),
	}
	const head = "events{}\nhttp{server{listen 127.0.0.1:1 ssl;\n"
	tests := []struct {
		name, body string
		want       string // error; "" = loads
		warn       string
	}{
		{"missing certificate", "ssl_certificate D/nope.crt;\nssl_certificate_key D/good.key;}}\n",
			`[emerg] cannot load certificate "D/nope.crt": open() "D/nope.crt" failed (2: No such file or directory) in F:3`, ""},
		{"missing key", "ssl_certificate D/good.crt;\nssl_certificate_key D/nope.key;}}\n",
			`[emerg] cannot load certificate key "D/nope.key": open() "D/nope.key" failed (2: No such file or directory) in F:4`, ""},
		{"not a certificate", "ssl_certificate D/garbage.crt;\nssl_certificate_key D/good.key;}}\n",
			`[emerg] cannot load certificate "D/garbage.crt": PEM_read_bio_X509_AUX() failed (no PEM certificate found) in F:3`, ""},
		{"key of another certificate", "ssl_certificate D/good.crt;\nssl_certificate_key D/other.key;}}\n",
			`[emerg] SSL_CTX_use_PrivateKey("D/other.key") failed (the key does not match the certificate "D/good.crt") in F:4`, ""},
		{"encrypted key without password", "ssl_certificate D/good.crt;\nssl_certificate_key D/enc.key;}}\n",
			`[emerg] cannot load certificate key "D/enc.key": PEM_read_bio_PrivateKey() failed (the key is encrypted and no ssl_password_file is given) in F:4`, ""},
		{"wrong password", "ssl_certificate D/good.crt;\nssl_certificate_key D/enc.key;\nssl_password_file D/badpw;}}\n",
			`[emerg] cannot load certificate key "D/enc.key": PEM_read_bio_PrivateKey() failed (bad decrypt: no password of the password file fits) in F:4`, ""},
		{"second password fits", "ssl_certificate D/good.crt;\nssl_certificate_key D/enc.key;\nssl_password_file D/pw;}}\n", "", ""},
		{"missing password file", "ssl_certificate D/good.crt;\nssl_certificate_key D/enc.key;\nssl_password_file D/nope;}}\n",
			`[emerg] open() "D/nope" failed (2: No such file or directory) in F:5`, ""},
		{"expired certificate", "ssl_certificate D/expired.crt;\nssl_certificate_key D/expired.key;}}\n", "",
			`[warn] certificate "D/expired.crt" has expired`},
		{"cipher Go lacks", "ssl_certificate D/good.crt;\nssl_certificate_key D/good.key;\nssl_ciphers DHE-RSA-AES128-GCM-SHA256;}}\n",
			`[emerg] SSL_CTX_set_cipher_list("DHE-RSA-AES128-GCM-SHA256") failed (no cipher suite Go implements is selected) in F:5`, ""},
		{"unknown cipher word", "ssl_certificate D/good.crt;\nssl_certificate_key D/good.key;\nssl_ciphers HIGH:BOGUS;}}\n",
			`[emerg] SSL_CTX_set_cipher_list("HIGH:BOGUS") failed (unknown cipher "BOGUS") in F:5`, ""},
		{"mozilla intermediate", "ssl_certificate D/good.crt;\nssl_certificate_key D/good.key;\nssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:!aNULL;}}\n", "", ""},
		{"curve", "ssl_certificate D/good.crt;\nssl_certificate_key D/good.key;\nssl_ecdh_curve X25519:secp384r1;}}\n", "", ""},
		{"curve Go lacks", "ssl_certificate D/good.crt;\nssl_certificate_key D/good.key;\nssl_ecdh_curve brainpoolP256r1;}}\n",
			`[emerg] SSL_CTX_set1_curves_list("brainpoolP256r1") failed`, ""},
		{"protocol hole", "ssl_certificate D/good.crt;\nssl_certificate_key D/good.key;\nssl_protocols TLSv1 TLSv1.2;}}\n",
			`[emerg] protocols "TLSv1 TLSv1.2" are not supported by gproxy`, ""},
		{"verify without CA", "ssl_certificate D/good.crt;\nssl_certificate_key D/good.key;\nssl_verify_client on;}}\n",
			`[emerg] no ssl_client_certificate for ssl_verify_client in F:5`, ""},
		{"missing CA", "ssl_certificate D/good.crt;\nssl_certificate_key D/good.key;\nssl_verify_client on;\nssl_client_certificate D/nope.crt;}}\n",
			`[emerg] SSL_CTX_load_verify_locations("D/nope.crt") failed (open() "D/nope.crt" failed (2: No such file or directory)) in F:6`, ""},
		{"ticket key size", "ssl_certificate D/good.crt;\nssl_certificate_key D/good.key;\nssl_session_ticket_key D/pw;}}\n",
			`[emerg] "D/pw" must be 48 or 80 bytes in F:5`, ""},
		{"conf command Go lacks", "ssl_certificate D/good.crt;\nssl_certificate_key D/good.key;\nssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;}}\n",
			`[emerg] SSL_CONF_cmd("Ciphersuites", "TLS_AES_128_GCM_SHA256") failed (no equivalent in Go's crypto/tls`, ""},
		{"reject handshake needs no certificate", "ssl_reject_handshake on;}}\n", "", ""},
		{"grpcs client key password", "location / { grpc_pass grpcs://127.0.0.1:2; grpc_ssl_certificate D/good.crt;\ngrpc_ssl_certificate_key D/enc.key;\ngrpc_ssl_password_file D/badpw;}\nssl_reject_handshake on;}}\n",
			`[emerg] cannot load certificate key "D/enc.key": PEM_read_bio_PrivateKey() failed (bad decrypt: no password of the password file fits) in F:4`, ""},
		{"grpcs verify without trusted", "location / { grpc_pass grpcs://127.0.0.1:2;\ngrpc_ssl_verify on;}\nssl_reject_handshake on;}}\n",
			`[emerg] no grpc_ssl_trusted_certificate for grpc_ssl_verify in F:3`, ""},
		{"grpcs name with variables", "location / { grpc_pass grpcs://127.0.0.1:2;\ngrpc_ssl_name $host;}\nssl_reject_handshake on;}}\n",
			`[emerg] "grpc_ssl_name" with variables is not supported by gproxy`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := map[string]string{}
			for k, v := range files {
				fs[k] = v
			}
			dir := t.TempDir()
			conf := strings.ReplaceAll(head+tc.body, "D/", dir+"/")
			fs["nginx.conf"] = conf
			for k, v := range fs {
				writeFile(t, filepath.Join(dir, k), v)
			}
			_, warns, err := Load(filepath.Join(dir, "nginx.conf"), Options{LookupHost: fakeLookup})
			norm := func(s string) string {
				s = strings.ReplaceAll(s, filepath.Join(dir, "nginx.conf")+":", "F:")
				return strings.ReplaceAll(s, dir+"/", "D/")
			}
			got := ""
			if err != nil {
				got = norm(err.Error())
			}
			if tc.want == "" && got != "" || tc.want != "" && !strings.HasPrefix(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if tc.warn != "" {
				found := false
				for _, w := range warns {
					found = found || strings.HasPrefix(norm(w.Error()), tc.warn)
				}
				if !found {
					t.Errorf("no warning %q in %v", tc.warn, warns)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
