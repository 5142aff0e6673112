package server

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Authenticator decides whether a request may be served, and by whom.
type Authenticator interface {
	// Authenticate returns the user the request authenticates as, or an
	// error (answered 401 UNAUTHORIZED).
	Authenticate(r *http.Request) (user string, err error)
}

// challenger is an Authenticator that says how to authenticate (the
// WWW-Authenticate header of a 401).
type challenger interface {
	Challenge() string
}

// ErrNoCredentials: the request carries no (or wrong) credentials.
var ErrNoCredentials = errors.New("no valid credentials")

// PasswordVerifier checks a password against a stored hash.
type PasswordVerifier func(hash, password []byte) error

// BcryptVerifier checks the bcrypt hashes of htpasswd files ($2y$, $2a$,
// $2b$), with golang.org/x/crypto/bcrypt.
var BcryptVerifier PasswordVerifier = bcrypt.CompareHashAndPassword

// Htpasswd is basic authentication against an htpasswd file of bcrypt
// hashes (htpasswd -B), the format docker's registry uses.
type Htpasswd struct {
	Realm  string
	users  map[string][]byte
	verify PasswordVerifier
}

// LoadHtpasswd reads an htpasswd file. verify checks its hashes (nil: use
// BcryptVerifier); without one, loading fails rather than letting every
// request in or none.
func LoadHtpasswd(path string, verify PasswordVerifier) (*Htpasswd, error) {
	if verify == nil {
		verify = BcryptVerifier
	}
	if verify == nil {
		return nil, fmt.Errorf("htpasswd %s: bcrypt hashes cannot be checked: this build of berth has no bcrypt (golang.org/x/crypto/bcrypt)", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	defer f.Close()
	h := &Htpasswd{Realm: "berth registry", users: map[string][]byte{}, verify: verify}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		user, hash, ok := strings.Cut(t, ":")
		if !ok || user == "" || hash == "" {
			return nil, fmt.Errorf("htpasswd %s:%d: not user:hash", path, line)
		}
		if !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("htpasswd %s:%d: user %s: only bcrypt hashes are accepted (htpasswd -B)", path, line, user)
		}
		h.users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	return h, nil
}

// Authenticate checks the request's basic credentials.
func (h *Htpasswd) Authenticate(r *http.Request) (string, error) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", ErrNoCredentials
	}
	hash, known := h.users[user]
	if !known {
		// Same work for unknown users, so timing does not tell them apart.
		subtle.ConstantTimeCompare([]byte(pass), []byte(pass))
		return "", ErrNoCredentials
	}
	if err := h.verify(hash, []byte(pass)); err != nil {
		return "", ErrNoCredentials
	}
	return user, nil
}

// Challenge is the WWW-Authenticate header of a 401.
func (h *Htpasswd) Challenge() string { return fmt.Sprintf("Basic realm=%q", h.Realm) }
