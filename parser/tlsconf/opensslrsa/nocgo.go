//go:build !cgo

package opensslrsa

import (
	"crypto"
	"crypto/rsa"
	"errors"
)

// Wrap returns k: without cgo, libcrypto cannot be loaded.
func Wrap(k *rsa.PrivateKey) (crypto.Signer, error) {
	return keepGo(k, errors.New("gproxy was built without cgo, so RSA signatures use Go's crypto/rsa"))
}
