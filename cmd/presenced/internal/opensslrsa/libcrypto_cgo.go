//go:build cgo && linux

package opensslrsa

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Only the few libcrypto 3 functions used here, resolved by dlsym, so that
// neither OpenSSL's headers nor libcrypto are needed to build or to start.
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;
typedef struct evp_md_st EVP_MD;

static EVP_PKEY *(*p_d2i_PrivateKey)(int, EVP_PKEY **, const unsigned char **, long);
static void (*p_EVP_PKEY_free)(EVP_PKEY *);
static EVP_PKEY_CTX *(*p_EVP_PKEY_CTX_new)(EVP_PKEY *, void *);
static void (*p_EVP_PKEY_CTX_free)(EVP_PKEY_CTX *);
static int (*p_EVP_PKEY_sign_init)(EVP_PKEY_CTX *);
static int (*p_EVP_PKEY_sign)(EVP_PKEY_CTX *, unsigned char *, size_t *, const unsigned char *, size_t);
static int (*p_EVP_PKEY_CTX_set_rsa_padding)(EVP_PKEY_CTX *, int);
static int (*p_EVP_PKEY_CTX_set_rsa_pss_saltlen)(EVP_PKEY_CTX *, int);
static int (*p_EVP_PKEY_CTX_set_signature_md)(EVP_PKEY_CTX *, const EVP_MD *);
static const EVP_MD *(*p_EVP_get_digestbyname)(const char *);
static unsigned long (*p_ERR_get_error)(void);
static void (*p_ERR_error_string_n)(unsigned long, char *, size_t);
static const char *(*p_OpenSSL_version)(int);

#define RESOLVE(name) if (!(*(void **)(&p_##name) = dlsym(lib, #name))) { snprintf(err, errlen, "libcrypto.so.3 has no %s", #name); return 0; }

static int ossl_load(char *err, size_t errlen) {
	void *lib = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen libcrypto.so.3 failed");
		return 0;
	}
	RESOLVE(d2i_PrivateKey)
	RESOLVE(EVP_PKEY_free)
	RESOLVE(EVP_PKEY_CTX_new)
	RESOLVE(EVP_PKEY_CTX_free)
	RESOLVE(EVP_PKEY_sign_init)
	RESOLVE(EVP_PKEY_sign)
	RESOLVE(EVP_PKEY_CTX_set_rsa_padding)
	RESOLVE(EVP_PKEY_CTX_set_rsa_pss_saltlen)
	RESOLVE(EVP_PKEY_CTX_set_signature_md)
	RESOLVE(EVP_get_digestbyname)
	RESOLVE(ERR_get_error)
	RESOLVE(ERR_error_string_n)
	RESOLVE(OpenSSL_version)
	return 1;
}

static const char *ossl_version(void) { return p_OpenSSL_version(0); }

// ossl_error empties this thread's error queue into err: the queue is
// per thread, so it is read in the same C call that failed.
static void ossl_error(const char *what, char *err, size_t errlen) {
	unsigned long code, last = 0;
	while ((code = p_ERR_get_error()) != 0) last = code;
	if (last == 0) { snprintf(err, errlen, "%s failed", what); return; }
	char buf[256];
	p_ERR_error_string_n(last, buf, sizeof buf);
	snprintf(err, errlen, "%s: %s", what, buf);
}

static EVP_PKEY *ossl_key(const unsigned char *der, long len, char *err, size_t errlen) {
	const unsigned char *p = der;
	EVP_PKEY *k = p_d2i_PrivateKey(6, NULL, &p, len); // EVP_PKEY_RSA, PKCS #1 DER
	if (!k) ossl_error("d2i_PrivateKey", err, errlen);
	return k;
}

static void ossl_free(EVP_PKEY *k) { p_EVP_PKEY_free(k); }

// ossl_ctx makes a signing context for k. A context is reused for many
// signatures (one at a time): making one per signature costs OpenSSL 3
// its provider lookups every time.
static EVP_PKEY_CTX *ossl_ctx(EVP_PKEY *k, char *err, size_t errlen) {
	EVP_PKEY_CTX *ctx = p_EVP_PKEY_CTX_new(k, NULL);
	if (!ctx) { ossl_error("EVP_PKEY_CTX_new", err, errlen); return NULL; }
	if (p_EVP_PKEY_sign_init(ctx) <= 0) {
		ossl_error("EVP_PKEY_sign_init", err, errlen);
		p_EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static void ossl_ctx_free(EVP_PKEY_CTX *ctx) { p_EVP_PKEY_CTX_free(ctx); }

static const EVP_MD *ossl_md(const char *name) { return p_EVP_get_digestbyname(name); }

static int ossl_sign(EVP_PKEY_CTX *ctx, const EVP_MD *md, int padding, int saltlen,
		const unsigned char *digest, size_t dlen, unsigned char *sig, size_t *siglen,
		char *err, size_t errlen) {
	int ok = p_EVP_PKEY_CTX_set_rsa_padding(ctx, padding) > 0
		&& p_EVP_PKEY_CTX_set_signature_md(ctx, md) > 0
		&& (padding != 6 || p_EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, saltlen) > 0)
		&& p_EVP_PKEY_sign(ctx, sig, siglen, digest, dlen) > 0;
	if (!ok) ossl_error("EVP_PKEY_sign", err, errlen);
	return ok;
}
*/
import "C"

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"runtime"
	"sync"
	"unsafe"
)

const errLen = 512

var (
	loadOnce    sync.Once
	loadErr     error
	loadVersion string
)

// Load loads libcrypto.so.3 once and reports its version, or why it cannot
// be used.
func Load() (version string, err error) {
	loadOnce.Do(func() {
		var buf [errLen]C.char
		if C.ossl_load(&buf[0], errLen) == 0 {
			loadErr = errors.New(C.GoString(&buf[0]))
			return
		}
		loadVersion = C.GoString(C.ossl_version())
	})
	return loadVersion, loadErr
}

// evpKey is a private key held by libcrypto, with signing contexts kept
// for reuse; all freed when it is unreachable.
type evpKey struct {
	p    *C.EVP_PKEY
	ctxs chan *C.EVP_PKEY_CTX // idle contexts, at most cap: one per signature in progress
}

// mds are libcrypto's digests by name, looked up once.
var mds sync.Map // string → *C.EVP_MD

// NewSigner copies key into libcrypto. Call Load first.
func NewSigner(key *rsa.PrivateKey) (*Signer, error) {
	if _, err := Load(); err != nil {
		return nil, err
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	defer clear(der)
	var buf [errLen]C.char
	p := C.ossl_key((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)), &buf[0], errLen)
	if p == nil {
		return nil, errors.New(C.GoString(&buf[0]))
	}
	k := &evpKey{p: p, ctxs: make(chan *C.EVP_PKEY_CTX, 2*runtime.GOMAXPROCS(0))}
	runtime.AddCleanup(k, freeKey, keyResources{p, k.ctxs})
	return &Signer{key: key, pkey: k}, nil
}

type keyResources struct {
	p    *C.EVP_PKEY
	ctxs chan *C.EVP_PKEY_CTX
}

func freeKey(r keyResources) {
	for {
		select {
		case ctx := <-r.ctxs:
			C.ossl_ctx_free(ctx)
		default:
			C.ossl_free(r.p)
			return
		}
	}
}

func lookupDigest(name string) (*C.EVP_MD, error) {
	if md, ok := mds.Load(name); ok {
		return md.(*C.EVP_MD), nil
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	md := C.ossl_md(cname)
	if md == nil {
		return nil, errors.New("libcrypto has no digest " + name)
	}
	mds.Store(name, md)
	return md, nil
}

func (k *evpKey) sign(mdName string, padding, saltLen int, dgst []byte, size int) ([]byte, error) {
	md, err := lookupDigest(mdName)
	if err != nil {
		return nil, err
	}
	var buf [errLen]C.char
	var ctx *C.EVP_PKEY_CTX
	select {
	case ctx = <-k.ctxs:
	default:
		if ctx = C.ossl_ctx(k.p, &buf[0], errLen); ctx == nil {
			return nil, errors.New(C.GoString(&buf[0]))
		}
	}
	sig := make([]byte, size)
	sigLen := C.size_t(len(sig))
	ok := C.ossl_sign(ctx, md, C.int(padding), C.int(saltLen),
		(*C.uchar)(unsafe.Pointer(&dgst[0])), C.size_t(len(dgst)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &sigLen, &buf[0], errLen)
	if ok == 0 {
		// A context that failed is not trusted again.
		C.ossl_ctx_free(ctx)
		return nil, errors.New(C.GoString(&buf[0]))
	}
	select {
	case k.ctxs <- ctx:
	default:
		C.ossl_ctx_free(ctx)
	}
	runtime.KeepAlive(k)
	return sig[:sigLen], nil
}
