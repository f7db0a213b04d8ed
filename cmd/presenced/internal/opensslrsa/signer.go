package opensslrsa

import (
	"crypto"
	"crypto/rsa"
	"io"
)

// Signer signs with the private key inside libcrypto. Its public key is
// the Go key's, so crypto/tls chooses the same signature schemes as for
// an *rsa.PrivateKey. Hashes or options libcrypto is not asked for (a raw
// or MD5+SHA1 PKCS #1 v1.5 signature, a PSS salt length other than the
// hash's or the maximum) are signed by Go's crypto/rsa with the same key.
type Signer struct {
	key  *rsa.PrivateKey
	pkey *evpKey
}

// Public returns the RSA public key.
func (s *Signer) Public() crypto.PublicKey { return &s.key.PublicKey }

// Sign signs digest, the hash of a message, as crypto.Signer does:
// RSASSA-PSS when opts is *rsa.PSSOptions, PKCS #1 v1.5 otherwise.
func (s *Signer) Sign(random io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	hash := opts.HashFunc()
	md, ok := digestName(hash)
	if !ok || len(digest) != hash.Size() {
		return s.key.Sign(random, digest, opts)
	}
	padding, saltLen := paddingPKCS1, 0
	if pss, isPSS := opts.(*rsa.PSSOptions); isPSS {
		switch pss.SaltLength {
		case rsa.PSSSaltLengthEqualsHash:
			padding, saltLen = paddingPSS, saltLenDigest
		case rsa.PSSSaltLengthAuto:
			padding, saltLen = paddingPSS, saltLenMax
		default:
			return s.key.Sign(random, digest, opts)
		}
	}
	return s.pkey.sign(md, padding, saltLen, digest, s.key.Size())
}

// digestName is libcrypto's name of the hashes TLS 1.2 and 1.3 sign with.
func digestName(h crypto.Hash) (string, bool) {
	switch h {
	case crypto.SHA256:
		return "SHA256", true
	case crypto.SHA384:
		return "SHA384", true
	case crypto.SHA512:
		return "SHA512", true
	case crypto.SHA1:
		return "SHA1", true
	}
	return "", false
}

// Padding and salt-length constants of OpenSSL's rsa.h.
const (
	paddingPKCS1  = 1
	paddingPSS    = 6
	saltLenDigest = -1 // RSA_PSS_SALTLEN_DIGEST
	saltLenMax    = -3 // RSA_PSS_SALTLEN_MAX (sign)
)
