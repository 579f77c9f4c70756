// Package opensslrsa computes the RSA signatures of TLS handshakes with
// the system's OpenSSL libcrypto (through github.com/golang-fips/openssl,
// which loads libcrypto.so.3 or libcrypto.so.1.1 with dlopen at run time)
// instead of Go's crypto/rsa: on the machines gproxy was measured on, one
// RSA-2048 signature costs 0.9-3 ms in Go 1.26 and 0.26-0.35 ms in
// OpenSSL 3.0 (BenchmarkSignPSS2048), and a full handshake with an RSA
// certificate is one signature.
//
// Wrap returns a crypto.Signer for a parsed *rsa.PrivateKey. When gproxy
// is built without cgo, when no libcrypto can be loaded, or when
// OpenSSL's signature with the key fails Go's verification at load time,
// Wrap returns the Go key itself with the reason, so a handshake is
// always signed by something that was checked; Fallback reports the
// first such reason for a one-time log line.
package opensslrsa

import (
	"crypto/rsa"
	"sync"
)

var (
	fallbackMu sync.Mutex
	fallback   error
)

// Fallback returns the reason the first key passed to Wrap kept Go's
// crypto/rsa, or nil when every key so far signs with OpenSSL.
func Fallback() error {
	fallbackMu.Lock()
	defer fallbackMu.Unlock()
	return fallback
}

// keepGo records err as the reason k keeps Go's crypto/rsa and returns k.
func keepGo(k *rsa.PrivateKey, err error) (*rsa.PrivateKey, error) {
	fallbackMu.Lock()
	if fallback == nil {
		fallback = err
	}
	fallbackMu.Unlock()
	return k, err
}
