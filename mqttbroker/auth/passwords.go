package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/presenced/presenced/mqttbroker"
)

// PasswordFile authenticates user names against bcrypt hashes, one
// "user:$2a$..." line per user (mosquitto_passwd-style files using bcrypt,
// htpasswd -B files). It is an mqttbroker.Authenticator.
type PasswordFile struct {
	hashes map[string][]byte
	// dummy is compared for unknown users, so response time does not tell
	// which user names exist.
	dummy []byte

	mu sync.Mutex
	// verified remembers the SHA-256 of the last password that matched
	// each user: a fleet reconnecting at once costs one bcrypt per user,
	// not one per connection.
	verified map[string][sha256.Size]byte
}

// LoadPasswordFile reads a password file.
func LoadPasswordFile(path string) (*PasswordFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open password file: %w", err)
	}
	defer f.Close()
	return ParsePasswordFile(f, path)
}

// ParsePasswordFile parses password file lines from r; name is used in
// error messages. Blank lines and lines starting with '#' are ignored.
func ParsePasswordFile(r io.Reader, name string) (*PasswordFile, error) {
	p := &PasswordFile{hashes: make(map[string][]byte), verified: make(map[string][sha256.Size]byte)}
	err := eachLine(r, name, func(line string) error {
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			return errors.New(`want "user:bcrypt-hash"`)
		case user == "":
			return errors.New("empty user name")
		case p.hashes[user] != nil:
			return fmt.Errorf("user %q listed twice", user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("user %q: the hash is not a bcrypt hash ($2a$, $2b$ or $2y$)", user)
		}
		p.hashes[user] = []byte(hash)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parse password file: %w", err)
	}
	p.dummy, _ = bcrypt.GenerateFromPassword([]byte("presenced-dummy"), bcrypt.MinCost)
	return p, nil
}

// Users returns the number of users in the file.
func (p *PasswordFile) Users() int { return len(p.hashes) }

// Authenticate accepts a known user with the right password; anything else
// is mqttbroker.ErrBadCredentials (CONNACK 0x04).
func (p *PasswordFile) Authenticate(c mqttbroker.Credentials) error {
	hash, known := p.hashes[c.Username]
	if !known || !c.HasPassword {
		bcrypt.CompareHashAndPassword(p.dummy, c.Password)
		return mqttbroker.ErrBadCredentials
	}
	sum := sha256.Sum256(c.Password)
	p.mu.Lock()
	last, ok := p.verified[c.Username]
	p.mu.Unlock()
	if ok && subtle.ConstantTimeCompare(last[:], sum[:]) == 1 {
		return nil
	}
	if bcrypt.CompareHashAndPassword(hash, c.Password) != nil {
		return mqttbroker.ErrBadCredentials
	}
	p.mu.Lock()
	p.verified[c.Username] = sum
	p.mu.Unlock()
	return nil
}
