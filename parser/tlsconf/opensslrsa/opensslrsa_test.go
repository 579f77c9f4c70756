package opensslrsa

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"os"
	"sync"
	"testing"
)

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// wrapped returns testKey wrapped, failing when OpenSSL should sign (cgo
// and a libcrypto on the machine) but does not, and skipping otherwise.
func wrapped(t testing.TB) crypto.Signer {
	t.Helper()
	s, err := Wrap(testKey())
	if _, isGo := s.(*rsa.PrivateKey); !isGo {
		return s
	}
	if haveLibcrypto() && cgoEnabled {
		t.Fatalf("libcrypto is installed but the key keeps Go's crypto/rsa: %v", err)
	}
	t.Skipf("no OpenSSL signatures here: %v", err)
	return nil
}

func haveLibcrypto() bool {
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu"} {
		for _, name := range []string{"libcrypto.so.3", "libcrypto.so.1.1"} {
			if _, err := os.Stat(dir + "/" + name); err == nil {
				return true
			}
		}
	}
	return false
}

// TestSignaturesVerifyWithGo: OpenSSL's PSS (salt as long as the hash, as
// crypto/tls asks, and the longest salt of PSSSaltLengthAuto) and PKCS #1
// v1.5 signatures with SHA-256, SHA-384 and SHA-512 verify with Go's
// crypto/rsa, and Public is the Go key's.
func TestSignaturesVerifyWithGo(t *testing.T) {
	s := wrapped(t)
	k := testKey()
	if !k.PublicKey.Equal(s.Public()) {
		t.Fatal("Public is not the key's public half")
	}
	msg := []byte("a TLS handshake transcript")
	d256, d384, d512 := sha256.Sum256(msg), sha512.Sum384(msg), sha512.Sum512(msg)
	for _, c := range []struct {
		h      crypto.Hash
		digest []byte
	}{{crypto.SHA256, d256[:]}, {crypto.SHA384, d384[:]}, {crypto.SHA512, d512[:]}} {
		for _, salt := range []int{rsa.PSSSaltLengthEqualsHash, rsa.PSSSaltLengthAuto} {
			opts := &rsa.PSSOptions{SaltLength: salt, Hash: c.h}
			sig, err := s.Sign(rand.Reader, c.digest, opts)
			if err != nil {
				t.Fatalf("PSS %v salt %d: %v", c.h, salt, err)
			}
			if err := rsa.VerifyPSS(&k.PublicKey, c.h, c.digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}); err != nil {
				t.Errorf("PSS %v salt %d: %v", c.h, salt, err)
			}
			if salt == rsa.PSSSaltLengthEqualsHash {
				if err := rsa.VerifyPSS(&k.PublicKey, c.h, c.digest, sig, opts); err != nil {
					t.Errorf("PSS %v: salt is not the hash's length: %v", c.h, err)
				}
			}
		}
		sig, err := s.Sign(rand.Reader, c.digest, c.h)
		if err != nil {
			t.Fatalf("PKCS #1 v1.5 %v: %v", c.h, err)
		}
		if err := rsa.VerifyPKCS1v15(&k.PublicKey, c.h, c.digest, sig); err != nil {
			t.Errorf("PKCS #1 v1.5 %v: %v", c.h, err)
		}
		// PKCS #1 v1.5 is deterministic: Go's signature is the same.
		if want, _ := k.Sign(rand.Reader, c.digest, c.h); string(want) != string(sig) {
			t.Errorf("PKCS #1 v1.5 %v: OpenSSL's signature differs from Go's", c.h)
		}
	}
}

// TestDecryptStaysWithGo: the TLS_RSA_* key exchange decrypts with Go's
// key.
func TestDecryptStaysWithGo(t *testing.T) {
	s := wrapped(t)
	secret := []byte("48 bytes of a TLS 1.2 premaster secret.........")
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, s.Public().(*rsa.PublicKey), secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.(crypto.Decrypter).Decrypt(rand.Reader, ct, nil)
	if err != nil || string(got) != string(secret) {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
}

// TestMultiPrimeKeepsGo: a key of three primes is returned as it is.
func TestMultiPrimeKeepsGo(t *testing.T) {
	k, err := rsa.GenerateMultiPrimeKey(rand.Reader, 3, 2048) //nolint:staticcheck // the case under test
	if err != nil {
		t.Skip(err)
	}
	s, err := Wrap(k)
	if s != crypto.Signer(k) || err == nil {
		t.Fatalf("Wrap(3 primes) = %T, %v; want the key itself and a reason", s, err)
	}
}

func BenchmarkSignPSS2048(b *testing.B) {
	digest := sha256.Sum256([]byte("x"))
	opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	for _, c := range []struct {
		name string
		s    crypto.Signer
	}{{"openssl", wrapped(b)}, {"go", testKey()}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.s.Sign(rand.Reader, digest[:], opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
