//go:build cgo

package opensslrsa

import (
	"crypto"
	"crypto/rsa"
	_ "crypto/sha1" // the self-test verifies SHA-1 and SHA-512 signatures
	"crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"

	"github.com/golang-fips/openssl/v2"
	"github.com/golang-fips/openssl/v2/bbig"
)

// libraries are the libcrypto names tried, newest first.
var libraries = []string{"libcrypto.so.3", "libcrypto.so.1.1"}

// load loads libcrypto once per process (openssl.Init takes effect once).
var load = sync.OnceValue(func() error {
	for _, name := range libraries {
		if ok, _ := openssl.CheckVersion(name); ok {
			if err := openssl.Init(name); err != nil {
				return fmt.Errorf("cannot initialise %s: %v", name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("cannot load %s", strings.Join(libraries, " or "))
})

// Wrap returns a signer that signs with OpenSSL, or k and the reason it
// keeps Go's crypto/rsa. Keys of more than two primes keep Go's.
func Wrap(k *rsa.PrivateKey) (crypto.Signer, error) {
	if err := load(); err != nil {
		return keepGo(k, fmt.Errorf("RSA signatures use Go's crypto/rsa: %v", err))
	}
	if len(k.Primes) != 2 {
		return keepGo(k, errors.New("RSA signatures of a multi-prime key use Go's crypto/rsa"))
	}
	if k.Precomputed.Dp == nil {
		k.Precompute()
	}
	ok, err := openssl.NewPrivateKeyRSA(bbig.Enc(k.N), bbig.Enc(bigE(k.E)), bbig.Enc(k.D),
		bbig.Enc(k.Primes[0]), bbig.Enc(k.Primes[1]),
		bbig.Enc(k.Precomputed.Dp), bbig.Enc(k.Precomputed.Dq), bbig.Enc(k.Precomputed.Qinv))
	if err != nil {
		return keepGo(k, fmt.Errorf("RSA signatures use Go's crypto/rsa: OpenSSL refused the key: %v", err))
	}
	s := &Signer{key: k, ossl: ok}
	bindingOnce.Do(func() { bindingErr = s.selfTest(everyKind()) })
	if bindingErr != nil {
		return keepGo(k, fmt.Errorf("RSA signatures use Go's crypto/rsa: %v", bindingErr))
	}
	if err := s.selfTest([]kind{{crypto.SHA256, true}}); err != nil {
		return keepGo(k, fmt.Errorf("RSA signatures use Go's crypto/rsa: %v", err))
	}
	return s, nil
}

// bigE is e as a big.Int.
func bigE(e int) *big.Int { return big.NewInt(int64(e)) }

// Signer is an RSA private key whose signatures OpenSSL computes. It is a
// crypto.Signer and, for the RSA key exchange of TLS_RSA_* suites, a
// crypto.Decrypter whose decryption stays with Go's crypto/rsa (crypto/tls
// relies on its constant-time PKCS #1 v1.5 session-key handling).
type Signer struct {
	key  *rsa.PrivateKey
	ossl *openssl.PrivateKeyRSA
}

// Public returns the key's *rsa.PublicKey.
func (s *Signer) Public() crypto.PublicKey { return &s.key.PublicKey }

// Sign signs digest, the hash of a message by opts.HashFunc(), as
// (*rsa.PrivateKey).Sign does: RSASSA-PSS when opts is *rsa.PSSOptions,
// else RSASSA-PKCS1-v1_5. OpenSSL draws the PSS salt from its own random
// source; rand is not read. Hashes other than SHA-1, SHA-2 and TLS 1.0's
// MD5+SHA1 go to Go's crypto/rsa.
func (s *Signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	if !signedByOpenSSL[h] || len(digest) != h.Size() {
		return s.key.Sign(rand, digest, opts)
	}
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		salt := pss.SaltLength
		if salt == rsa.PSSSaltLengthEqualsHash {
			salt = h.Size()
		}
		return openssl.SignRSAPSS(s.ossl, h, digest, salt)
	}
	return openssl.SignRSAPKCS1v15(s.ossl, h, digest)
}

// Decrypt decrypts with Go's crypto/rsa (see Signer).
func (s *Signer) Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return s.key.Decrypt(rand, msg, opts)
}

// signedByOpenSSL are the hashes TLS signs with (RFC 8446 4.2.3, RFC 5246
// 7.4.1.4.1, and MD5+SHA1 for TLS 1.0 and 1.1).
var signedByOpenSSL = map[crypto.Hash]bool{
	crypto.SHA1: true, crypto.SHA256: true, crypto.SHA384: true, crypto.SHA512: true, crypto.MD5SHA1: true,
}

// The first key checks every hash and padding of signedByOpenSSL (the
// mapping of hashes to OpenSSL's digests does not depend on the key);
// when that fails, no key signs with OpenSSL.
var (
	bindingOnce sync.Once
	bindingErr  error
)

// kind is a signature scheme: a hash with PSS or PKCS #1 v1.5 padding.
type kind struct {
	h   crypto.Hash
	pss bool
}

func everyKind() []kind {
	var out []kind
	for h := range signedByOpenSSL {
		out = append(out, kind{h, false})
		if h != crypto.MD5SHA1 { // PSS has no MD5+SHA1 scheme
			out = append(out, kind{h, true})
		}
	}
	return out
}

// selfTest signs a fixed digest of each kind with OpenSSL and verifies it
// with Go, so that a key OpenSSL imported wrongly, or a binding that pads
// or hashes differently, never signs a handshake. Each key checks TLS
// 1.3's rsa_pss_rsae_sha256 (about 0.3 ms with RSA 2048).
func (s *Signer) selfTest(kinds []kind) error {
	sum := sha256.Sum256([]byte("gproxy opensslrsa self-test"))
	for _, c := range kinds {
		digest := make([]byte, c.h.Size())
		for i := range digest {
			digest[i] = sum[i%len(sum)]
		}
		var err error
		if c.pss {
			opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: c.h}
			var sig []byte
			if sig, err = s.Sign(nil, digest, opts); err == nil {
				err = rsa.VerifyPSS(&s.key.PublicKey, c.h, digest, sig, opts)
			}
		} else {
			var sig []byte
			if sig, err = s.Sign(nil, digest, c.h); err == nil {
				err = rsa.VerifyPKCS1v15(&s.key.PublicKey, c.h, digest, sig)
			}
		}
		if err != nil {
			name := "PKCS #1 v1.5"
			if c.pss {
				name = "PSS"
			}
			return fmt.Errorf("OpenSSL's %s signature with %v failed Go's check: %v", name, c.h, err)
		}
	}
	return nil
}
