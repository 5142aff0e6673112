package server

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenConfig configures token authentication, as distribution's
// `auth: token:` section does.
type TokenConfig struct {
	// Realm is the token service's URL, sent to clients in the challenge.
	Realm string
	// Service names this registry: tokens must have it in their audience.
	Service string
	// Issuer is who signs the tokens: their iss.
	Issuer string
	// RootCertBundle is a PEM file of certificates; tokens must be signed
	// by the key of one of them (or carry an x5c chain up to one).
	RootCertBundle string
}

// TokenLeeway is the clock skew allowed on a token's exp and nbf.
const TokenLeeway = time.Minute

// tokenAlgs are the signatures accepted: the RSA and ECDSA families.
var tokenAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// ErrInvalidToken: the bearer token is malformed, not signed by a trusted
// key, for another issuer or audience, expired or not yet valid.
var ErrInvalidToken = errors.New("invalid token")

// TokenAuth is Docker's token authentication: clients get a JWT from the
// token service the challenge names (Realm) and send it as a bearer token.
// The token must be signed (RS*, PS*, ES*) by a key of the root certificate
// bundle, by Issuer, for Service, be within its validity (TokenLeeway
// allowed), and grant in its access claim every action the request needs.
// The user is the token's sub.
type TokenAuth struct {
	realm, service, issuer string
	roots                  *x509.CertPool
	keys                   []crypto.PublicKey          // the bundle's keys
	byID                   map[string]crypto.PublicKey // kid -> key
	now                    func() time.Time
}

// LoadTokenAuth checks cfg and reads its certificate bundle.
func LoadTokenAuth(cfg TokenConfig) (*TokenAuth, error) {
	u, err := url.Parse(cfg.Realm)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("token auth: realm %q is not an http(s) URL", cfg.Realm)
	}
	if cfg.Service == "" || cfg.Issuer == "" {
		return nil, errors.New("token auth: a service and an issuer are required")
	}
	for _, s := range []string{cfg.Realm, cfg.Service} {
		if strings.ContainsAny(s, "\"\\\r\n") {
			return nil, fmt.Errorf("token auth: %q cannot be put in a challenge (quotes, backslashes, line breaks)", s)
		}
	}
	if cfg.RootCertBundle == "" {
		return nil, errors.New("token auth: a root certificate bundle is required")
	}
	certs, err := readCertBundle(cfg.RootCertBundle)
	if err != nil {
		return nil, err
	}
	t := &TokenAuth{realm: cfg.Realm, service: cfg.Service, issuer: cfg.Issuer, roots: x509.NewCertPool(), byID: map[string]crypto.PublicKey{}, now: time.Now}
	for _, c := range certs {
		switch c.PublicKey.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
		default:
			return nil, fmt.Errorf("token auth: %s: certificate %q has a %s key; tokens are verified with RSA or ECDSA keys", cfg.RootCertBundle, c.Subject, c.PublicKeyAlgorithm)
		}
		t.roots.AddCert(c)
		t.keys = append(t.keys, c.PublicKey)
		for _, id := range keyIDs(c.PublicKey) {
			t.byID[id] = c.PublicKey
		}
	}
	return t, nil
}

// readCertBundle reads the certificates of a PEM file (other blocks are
// skipped, as distribution does); a file with none is an error.
func readCertBundle(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token auth: root certificate bundle: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("token auth: root certificate bundle %s: certificate %d: %w", path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("token auth: root certificate bundle %s holds no PEM certificate", path)
	}
	return certs, nil
}

// keyIDs are the kid values a token service may name key by: the libtrust
// key ID (docker_auth, distribution before v3) and the RFC 7638 JWK
// thumbprint (SHA-256).
func keyIDs(key crypto.PublicKey) []string {
	var ids []string
	if der, err := x509.MarshalPKIXPublicKey(key); err == nil {
		sum := sha256.Sum256(der)
		b32 := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
		var groups []string
		for i := 0; i < len(b32); i += 4 {
			groups = append(groups, b32[i:min(i+4, len(b32))])
		}
		ids = append(ids, strings.Join(groups, ":"))
	}
	b64 := base64.RawURLEncoding.EncodeToString
	var jwk string
	switch k := key.(type) {
	case *rsa.PublicKey:
		jwk = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64(big.NewInt(int64(k.E)).Bytes()), b64(k.N.Bytes()))
	case *ecdsa.PublicKey:
		// Coordinates are padded to the curve's size (RFC 7518, 6.2.1.2).
		pt, err := k.Bytes()
		if err != nil || len(pt) < 3 || pt[0] != 4 {
			return ids
		}
		n := (len(pt) - 1) / 2
		jwk = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Curve.Params().Name, b64(pt[1:1+n]), b64(pt[1+n:]))
	default:
		return ids
	}
	sum := sha256.Sum256([]byte(jwk))
	return append(ids, b64(sum[:]))
}

// tokenClaims are the claims of a registry token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Access []Access `json:"access"`
}

// Authenticate verifies the request's bearer token and that it grants need.
// No bearer token is ErrNoCredentials; a token that fails a check wraps
// ErrInvalidToken; a valid one that does not cover need is
// ErrInsufficientScope, with the token's subject as user.
func (t *TokenAuth) Authenticate(r *http.Request, need []Access) (string, error) {
	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	raw = strings.TrimSpace(raw)
	if !strings.EqualFold(scheme, "bearer") || raw == "" {
		return "", ErrNoCredentials
	}
	var claims tokenClaims
	p := jwt.NewParser(jwt.WithValidMethods(tokenAlgs), jwt.WithIssuer(t.issuer), jwt.WithAudience(t.service),
		jwt.WithExpirationRequired(), jwt.WithLeeway(TokenLeeway), jwt.WithTimeFunc(t.now))
	if _, err := p.ParseWithClaims(raw, &claims, t.signingKeys); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	for _, a := range need {
		if !granted(claims.Access, a) {
			return claims.Subject, fmt.Errorf("%w: %s is not granted", ErrInsufficientScope, a.Scope())
		}
	}
	return claims.Subject, nil
}

// granted tells whether the access claim grants every action of a.
func granted(claim []Access, a Access) bool {
	for _, act := range a.Actions {
		ok := false
		for _, g := range claim {
			if g.Type == a.Type && g.Name == a.Name && (slices.Contains(g.Actions, act) || slices.Contains(g.Actions, "*")) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// signingKeys finds the keys a token may be verified with: the leaf of its
// x5c chain, which must verify up to the bundle; else the bundle's key its
// kid names; else (no kid, or one this server does not compute the same
// way) every key of the bundle of the algorithm's family. The signature
// decides: a token signed by a key outside the bundle never verifies.
func (t *TokenAuth) signingKeys(tok *jwt.Token) (any, error) {
	if x5c, ok := tok.Header["x5c"]; ok {
		return t.chainKey(x5c)
	}
	if kid, _ := tok.Header["kid"].(string); kid != "" {
		if k, ok := t.byID[kid]; ok {
			return k, nil
		}
	}
	var set jwt.VerificationKeySet
	for _, k := range t.keys {
		switch k.(type) {
		case *rsa.PublicKey:
			if _, ok := tok.Method.(*jwt.SigningMethodECDSA); ok {
				continue
			}
		case *ecdsa.PublicKey:
			if _, ok := tok.Method.(*jwt.SigningMethodECDSA); !ok {
				continue
			}
		}
		set.Keys = append(set.Keys, k)
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no key of the root certificate bundle is for %s", tok.Method.Alg())
	}
	return set, nil
}

// chainKey verifies an x5c header (base64 DER certificates, leaf first)
// up to the bundle and returns the leaf's key.
func (t *TokenAuth) chainKey(x5c any) (crypto.PublicKey, error) {
	// Re-encoded so that any JSON array of strings is read the same way.
	b, _ := json.Marshal(x5c)
	var chain []string
	if err := json.Unmarshal(b, &chain); err != nil || len(chain) == 0 {
		return nil, errors.New("x5c header is not a list of certificates")
	}
	var certs []*x509.Certificate
	for i, s := range chain {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("x5c certificate %d: %w", i, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("x5c certificate %d: %w", i, err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: t.roots, Intermediates: inter, CurrentTime: t.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fmt.Errorf("x5c chain: %w", err)
	}
	return certs[0].PublicKey, nil
}

// Challenge is the Bearer challenge of a 401: the realm and service, the
// scope the request needs, and why a token sent was refused (RFC 6750).
func (t *TokenAuth) Challenge(need []Access, err error) string {
	var b strings.Builder
	b.WriteString(`Bearer realm=` + quote(t.realm) + `,service=` + quote(t.service))
	if len(need) > 0 {
		scopes := make([]string, len(need))
		for i, a := range need {
			scopes[i] = a.Scope()
		}
		b.WriteString(",scope=" + quote(strings.Join(scopes, " ")))
	}
	switch {
	case errors.Is(err, ErrInsufficientScope):
		b.WriteString(`,error="insufficient_scope"`)
	case errors.Is(err, ErrInvalidToken):
		b.WriteString(`,error="invalid_token"`)
	}
	return b.String()
}

// quote is an HTTP quoted-string.
func quote(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
