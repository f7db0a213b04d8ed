package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"
)

// Token scopes: read for every query and the stream, ingest for POST
// /events, admin for acting on clients (DELETE /clients/{id}/connection).
const (
	scopeRead   = "read"
	scopeIngest = "ingest"
	scopeAdmin  = "admin"
)

// authenticator checks bearer tokens. It keeps only SHA-256 digests, and
// compares a presented token against every configured one in constant time
// (digests of equal length, no early exit), so neither timing nor a memory
// dump reveals a token.
type authenticator struct {
	read, ingest, admin [][sha256.Size]byte
}

func newAuthenticator(readTokens, ingestTokens, adminTokens []string) authenticator {
	digests := func(tokens []string) [][sha256.Size]byte {
		var out [][sha256.Size]byte
		for _, t := range tokens {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, sha256.Sum256([]byte(t)))
			}
		}
		return out
	}
	return authenticator{read: digests(readTokens), ingest: digests(ingestTokens), admin: digests(adminTokens)}
}

// open reports whether no token is configured: then the API is open.
func (a authenticator) open() bool {
	return len(a.read) == 0 && len(a.ingest) == 0 && len(a.admin) == 0
}

// scoped returns the digests of scope and those of the other scopes.
func (a authenticator) scoped(scope string) (want, other [][sha256.Size]byte) {
	switch scope {
	case scopeIngest:
		return a.ingest, append(slices.Clone(a.read), a.admin...)
	case scopeAdmin:
		return a.admin, append(slices.Clone(a.read), a.ingest...)
	}
	return a.read, append(slices.Clone(a.ingest), a.admin...)
}

func matches(digests [][sha256.Size]byte, digest [sha256.Size]byte) bool {
	found := 0
	for i := range digests {
		found |= subtle.ConstantTimeCompare(digests[i][:], digest[:])
	}
	return found == 1
}

// authenticate requires a bearer token of scope once any token is
// configured: 401 without a known token, 403 with a token of the other
// scope only.
func (s *Server) authenticate(scope string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if s.auth.open() {
			return next
		}
		check := s.auth.check(scope)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if check.allow(s, w, r) {
				next.ServeHTTP(w, r)
			}
		})
	}
}

// scopeCheck is authenticate's check of one scope.
type scopeCheck struct {
	open        bool
	scope       string
	want, other [][sha256.Size]byte
}

func (a authenticator) check(scope string) scopeCheck {
	want, other := a.scoped(scope)
	return scopeCheck{open: a.open(), scope: scope, want: want, other: other}
}

// allow reports whether r may go on; if not, it has answered 401 or 403.
func (c *scopeCheck) allow(s *Server, w http.ResponseWriter, r *http.Request) bool {
	if c.open {
		return true
	}
	token, ok := bearerToken(r)
	if !ok {
		s.unauthorized(w, r, "this route needs a bearer token (Authorization: Bearer <token>)")
		return false
	}
	digest := sha256.Sum256([]byte(token))
	switch {
	case matches(c.want, digest):
		return true
	case matches(c.other, digest):
		s.forbidden(w, r, c.scope)
	default:
		s.unauthorized(w, r, "the bearer token is not valid")
	}
	return false
}

// bearerToken returns the token of an "Authorization: Bearer" header
// (RFC 6750 §2.1; the scheme is case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
