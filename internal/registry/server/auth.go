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
	// Authenticate returns the user the request authenticates as once it
	// is sure the request may have need, the access it asks for (nil: the
	// version check GET /v2/ and paths outside the API, which only need
	// valid credentials). An error refuses the request with 401:
	// ErrInsufficientScope (valid credentials that do not grant need,
	// answered DENIED; user may still name who was refused) or any other
	// error for missing or invalid credentials (UNAUTHORIZED).
	Authenticate(r *http.Request, need []Access) (user string, err error)
	// Challenge is the WWW-Authenticate header of the 401 that refused a
	// request needing need, with err.
	Challenge(need []Access, err error) string
}

// Access is what a request needs of one resource, in the terms of Docker's
// token scopes: Type "repository", Name the repository, Actions among
// "pull", "push" and "delete"; or Type "registry", Name "catalog", Actions
// ["*"]. A token's access claim is a list of the same.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Scope is the access as a token scope: "repository:library/busybox:pull,push".
func (a Access) Scope() string { return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",") }

// wholeRegistry is an Authenticator whose users, once authenticated, may
// do anything (htpasswd). Only with one, or with none, does a mount without
// from= look for the blob in every repository: where access is granted per
// repository (tokens) it would hand out blobs of repositories the client
// may not pull, so such a mount gets an upload session instead.
type wholeRegistry interface {
	grantsWholeRegistry()
}

var (
	// ErrNoCredentials: the request carries no (or wrong) credentials.
	ErrNoCredentials = errors.New("no valid credentials")
	// ErrInsufficientScope: the credentials are valid but do not grant what
	// the request needs.
	ErrInsufficientScope = errors.New("insufficient scope")
)

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

// Authenticate checks the request's basic credentials. A known user may do
// anything: htpasswd has no per-repository rights, so need is not looked at.
func (h *Htpasswd) Authenticate(r *http.Request, need []Access) (string, error) {
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

func (h *Htpasswd) grantsWholeRegistry() {}

// Challenge is the WWW-Authenticate header of a 401: the same whatever the
// request needed.
func (h *Htpasswd) Challenge([]Access, error) string { return fmt.Sprintf("Basic realm=%q", h.Realm) }
