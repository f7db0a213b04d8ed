// Package opensslrsa computes RSA signatures with OpenSSL's libcrypto
// (libcrypto.so.3, loaded at run time with dlopen) behind a crypto.Signer,
// for the server signature of TLS handshakes.
//
// Why: a TLS handshake with an RSA-2048 certificate costs the server one
// private-key operation. Go's crypto/rsa is constant-time portable code
// and takes about 1.2 ms per RSA-2048 PSS signature on this project's
// machines (AMD EPYC with AVX-512 IFMA); OpenSSL 3 takes about 0.3 ms
// there (its rsaz AVX-512 code), and that single operation decides how many
// TLS connects per second a core can take — mosquitto gets OpenSSL's speed.
// Everything else of TLS (record layer, key exchange, certificate parsing,
// verification of client certificates) stays with Go's crypto/tls.
//
// libcrypto is loaded, not linked: a binary built with cgo starts and works
// on a machine without OpenSSL 3 (Load reports why, and the caller keeps
// Go's signer), and one built without cgo (CGO_ENABLED=0, as the container
// image is) has only the fallback. OpenSSL draws the PSS salt and the RSA
// blinding from its own random generator; the io.Reader that crypto.Signer
// passes is not used.
package opensslrsa
