package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/internal/registry"

	"github.com/distribution/reference"
	"github.com/golang-jwt/jwt/v5"
	registrytypes "github.com/moby/moby/api/types/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	testRealm   = "https://auth.example/token"
	testService = "registry.test"
	testIssuer  = "test-issuer"
)

// signer is a token-signing key with its certificate.
type signer struct {
	key    crypto.Signer
	cert   *x509.Certificate
	method jwt.SigningMethod
}

var serial int64

// newSigner makes a key of kind ("ec", "rsa") and a certificate for it,
// self-signed, or issued by parent when it is set.
func newSigner(t *testing.T, kind string, parent *signer, ca bool) *signer {
	t.Helper()
	s := &signer{}
	var err error
	switch kind {
	case "ec":
		s.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		s.method = jwt.SigningMethodES256
	case "rsa":
		s.key, err = rsa.GenerateKey(rand.Reader, 2048)
		s.method = jwt.SigningMethodRS256
	case "ed25519":
		_, s.key, err = ed25519.GenerateKey(rand.Reader)
		s.method = jwt.SigningMethodEdDSA
	}
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "token signer " + kind},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: ca,
	}
	issuer, issuerKey := tmpl, s.key
	if parent != nil {
		issuer, issuerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, s.key.Public(), issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	if s.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	return s
}

// bundle writes the signers' certificates as a PEM file.
func bundle(t *testing.T, signers ...*signer) string {
	t.Helper()
	var b bytes.Buffer
	for _, s := range signers {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw})
	}
	p := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// claims are a good token's claims for access.
func claims(sub string, access ...Access) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": testIssuer, "sub": sub, "aud": testService, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(), "jti": newID(), "access": access}
}

// sign signs c with s; header adds to the JOSE header.
func (s *signer) sign(t *testing.T, c jwt.Claims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(s.method, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	str, err := tok.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return str
}

func pull(name string) Access {
	return Access{Type: "repository", Name: name, Actions: []string{"pull"}}
}
func pushPull(name string) Access {
	return Access{Type: "repository", Name: name, Actions: []string{"pull", "push"}}
}

// tokenEnv is a registry with token auth trusting signers.
func tokenEnv(t *testing.T, signers ...*signer) *env {
	t.Helper()
	ta, err := LoadTokenAuth(TokenConfig{Realm: testRealm, Service: testService, Issuer: testIssuer, RootCertBundle: bundle(t, signers...)})
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, "", func(o *Options) { o.Auth = ta })
}

// as sends a request with a bearer token.
func (e *env) as(tok, method, path string, body []byte, hdr ...string) resp {
	e.t.Helper()
	return e.do(method, path, body, append([]string{"Authorization", "Bearer " + tok}, hdr...)...)
}

// refused checks a 401 with code and exactly the challenge want.
func (e *env) refused(r resp, code Code, want string) {
	e.t.Helper()
	if r.Request.Method == http.MethodHead {
		code = "" // no body
	}
	e.expect(r, http.StatusUnauthorized, code)
	if got := r.Header.Get("WWW-Authenticate"); got != want {
		e.t.Fatalf("%s %s: challenge\n got %s\nwant %s", r.Request.Method, r.Request.URL.Path, got, want)
	}
}

func challenge(scope, errParam string) string {
	c := `Bearer realm="` + testRealm + `",service="` + testService + `"`
	if scope != "" {
		c += `,scope="` + scope + `"`
	}
	if errParam != "" {
		c += `,error="` + errParam + `"`
	}
	return c
}

func TestTokenChallenge(t *testing.T) {
	e := tokenEnv(t, newSigner(t, "ec", nil, false))
	d := digest.FromString("x").String()
	for _, c := range []struct{ method, path, scope string }{
		{"GET", "/v2/", ""},
		{"GET", "/v2/a/manifests/latest", "repository:a:pull"},
		{"HEAD", "/v2/team/a/blobs/" + d, "repository:team/a:pull"},
		{"GET", "/v2/a/tags/list", "repository:a:pull"},
		{"GET", "/v2/a/referrers/" + d, "repository:a:pull"},
		{"POST", "/v2/a/blobs/uploads/", "repository:a:pull,push"},
		{"PATCH", "/v2/a/blobs/uploads/123", "repository:a:pull,push"},
		{"PUT", "/v2/a/manifests/v1", "repository:a:pull,push"},
		{"DELETE", "/v2/a/manifests/" + d, "repository:a:delete"},
		{"DELETE", "/v2/a/blobs/" + d, "repository:a:delete"},
		{"POST", "/v2/b/blobs/uploads/?mount=" + d + "&from=a", "repository:b:pull,push repository:a:pull"},
		{"GET", "/v2/_catalog", "registry:catalog:*"},
		{"GET", "/v2/Bad_Name/tags/list", ""},
		{"GET", "/v3/", ""},
	} {
		e.refused(e.do(c.method, c.path, nil), CodeUnauthorized, challenge(c.scope, ""))
	}
	// Basic credentials are no token.
	u := strings.Replace(e.srv.URL, "http://", "http://alice:secret@", 1)
	e.refused(e.do("GET", u+"/v2/a/tags/list", nil), CodeUnauthorized, challenge("repository:a:pull", ""))
	e.refused(e.do("GET", "/v2/a/tags/list", nil, "Authorization", "Bearer "), CodeUnauthorized, challenge("repository:a:pull", ""))
	e.refused(e.do("GET", "/v2/a/tags/list", nil, "Authorization", "Bearer not.a.jwt"), CodeUnauthorized, challenge("repository:a:pull", "invalid_token"))
}

func TestTokenScopes(t *testing.T) {
	ec := newSigner(t, "ec", nil, false)
	e := tokenEnv(t, ec)
	admin := ec.sign(t, claims("admin", pushPull("a"), Access{Type: "repository", Name: "a", Actions: []string{"delete"}}), nil)
	cfg, layer := []byte(`{"architecture":"amd64","os":"linux"}`), []byte("layer a")
	var descs []ocispec.Descriptor
	for _, b := range [][]byte{cfg, layer} {
		d := digest.FromBytes(b)
		e.expect(e.as(admin, "POST", "/v2/a/blobs/uploads/?digest="+d.String(), b), http.StatusCreated, "")
		descs = append(descs, ocispec.Descriptor{Digest: d, Size: int64(len(b))})
	}
	descs[0].MediaType, descs[1].MediaType = ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayer
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: descs[0], Layers: descs[1:]}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	e.expect(e.as(admin, "PUT", "/v2/a/manifests/v1", mb, "Content-Type", ocispec.MediaTypeImageManifest), http.StatusCreated, "")

	// A pull token for a: pull works, nothing else.
	tok := ec.sign(t, claims("alice", pull("a")), nil)
	r := e.as(tok, "GET", "/v2/a/manifests/v1", nil)
	e.expect(r, http.StatusOK, "")
	if !bytes.Equal(r.body, mb) {
		t.Fatal("pulled another manifest")
	}
	e.expect(e.as(tok, "GET", "/v2/a/blobs/"+descs[1].Digest.String(), nil), http.StatusOK, "")
	e.expect(e.as(tok, "GET", "/v2/a/tags/list", nil), http.StatusOK, "")
	e.expect(e.as(tok, "GET", "/v2/", nil), http.StatusOK, "")
	e.refused(e.as(tok, "POST", "/v2/a/blobs/uploads/", nil), CodeDenied, challenge("repository:a:pull,push", "insufficient_scope"))
	e.refused(e.as(tok, "PUT", "/v2/a/manifests/v2", mb, "Content-Type", ocispec.MediaTypeImageManifest), CodeDenied, challenge("repository:a:pull,push", "insufficient_scope"))
	e.refused(e.as(tok, "DELETE", "/v2/a/manifests/v1", nil), CodeDenied, challenge("repository:a:delete", "insufficient_scope"))
	e.refused(e.as(tok, "GET", "/v2/b/tags/list", nil), CodeDenied, challenge("repository:b:pull", "insufficient_scope"))
	e.refused(e.as(tok, "GET", "/v2/a/b/tags/list", nil), CodeDenied, challenge("repository:a/b:pull", "insufficient_scope"))
	e.refused(e.as(tok, "GET", "/v2/_catalog", nil), CodeDenied, challenge("registry:catalog:*", "insufficient_scope"))
	var body struct{ Errors []struct{ Detail []Access } }
	r = e.as(tok, "GET", "/v2/b/tags/list", nil)
	if json.Unmarshal(r.body, &body) != nil || len(body.Errors) != 1 || !slices.EqualFunc(body.Errors[0].Detail, []Access{pull("b")}, func(a, b Access) bool {
		return a.Type == b.Type && a.Name == b.Name && slices.Equal(a.Actions, b.Actions)
	}) {
		t.Errorf("detail of a refusal: %s", r.body)
	}
	if log := e.log.String(); !strings.Contains(log, "status=401") || !strings.Contains(log, "user=alice") || !strings.Contains(log, "repository:b:pull is not granted") {
		t.Fatalf("access log does not name the user and the reason:\n%s", log)
	}

	// The catalog needs registry:catalog:*; "*" grants every action.
	cat := ec.sign(t, claims("ops", Access{Type: "registry", Name: "catalog", Actions: []string{"*"}}), nil)
	r = e.as(cat, "GET", "/v2/_catalog", nil)
	e.expect(r, http.StatusOK, "")
	if !strings.Contains(string(r.body), `"a"`) {
		t.Fatalf("catalog %s", r.body)
	}
	star := ec.sign(t, claims("ops", Access{Type: "repository", Name: "a", Actions: []string{"*"}}), nil)
	e.expect(e.as(star, "DELETE", "/v2/a/manifests/"+digest.FromBytes(mb).String(), nil), http.StatusAccepted, "")

	// A mount needs pull on the source; a mount from anywhere is not done.
	d := descs[1].Digest.String()
	pushB := ec.sign(t, claims("bob", pushPull("b")), nil)
	e.refused(e.as(pushB, "POST", "/v2/b/blobs/uploads/?mount="+d+"&from=a", nil), CodeDenied, challenge("repository:b:pull,push repository:a:pull", "insufficient_scope"))
	e.expect(e.as(pushB, "POST", "/v2/b/blobs/uploads/?mount="+d, nil), http.StatusAccepted, "")
	e.expect(e.as(pushB, "HEAD", "/v2/b/blobs/"+d, nil), http.StatusNotFound, "")
	both := ec.sign(t, claims("bob", pushPull("b"), pull("a")), nil)
	e.expect(e.as(both, "POST", "/v2/b/blobs/uploads/?mount="+d+"&from=a", nil), http.StatusCreated, "")
	e.expect(e.as(pushB, "HEAD", "/v2/b/blobs/"+d, nil), http.StatusOK, "")
}

func TestTokenRefused(t *testing.T) {
	ec, rs := newSigner(t, "ec", nil, false), newSigner(t, "rsa", nil, false)
	stranger := newSigner(t, "ec", nil, false)
	e := tokenEnv(t, ec, rs)
	ok := claims("alice", pull("a"))
	with := func(k string, v any) jwt.MapClaims {
		c := claims("alice", pull("a"))
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	now := time.Now()
	good := ec.sign(t, ok, nil)
	parts := strings.Split(good, ".")
	forged, _ := json.Marshal(claims("mallory", pushPull("a")))
	hmac, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, ok).SignedString(ec.cert.Raw)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, ok).SignedString(jwt.UnsafeAllowNoneSignatureType)

	for name, tok := range map[string]string{
		"wrong issuer":          ec.sign(t, with("iss", "someone-else"), nil),
		"wrong audience":        ec.sign(t, with("aud", "other.registry"), nil),
		"no audience":           ec.sign(t, with("aud", nil), nil),
		"expired":               ec.sign(t, with("exp", now.Add(-2*time.Minute).Unix()), nil),
		"no expiry":             ec.sign(t, with("exp", nil), nil),
		"not yet valid":         ec.sign(t, with("nbf", now.Add(2*time.Minute).Unix()), nil),
		"bad signature":         parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2],
		"truncated signature":   parts[0] + "." + parts[1] + "." + parts[2][:10],
		"unknown key":           stranger.sign(t, ok, nil),
		"unknown key, kid":      stranger.sign(t, ok, map[string]any{"kid": keyIDs(ec.cert.PublicKey)[0]}),
		"x5c not in the bundle": stranger.sign(t, ok, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(stranger.cert.Raw)}}),
		"x5c of another key":    stranger.sign(t, ok, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(ec.cert.Raw)}}),
		"x5c garbage":           ec.sign(t, ok, map[string]any{"x5c": "abc"}),
		"HS256 with the cert":   hmac,
		"alg none":              none,
	} {
		for _, path := range []string{"/v2/a/tags/list", "/v2/"} {
			r := e.as(tok, "GET", path, nil)
			want := challenge("", "invalid_token")
			if path != "/v2/" {
				want = challenge("repository:a:pull", "invalid_token")
			}
			if r.StatusCode != http.StatusUnauthorized || r.code() != CodeUnauthorized || r.Header.Get("WWW-Authenticate") != want {
				t.Errorf("%s: GET %s: %d %s %s", name, path, r.StatusCode, r.Header.Get("WWW-Authenticate"), r.body)
			}
		}
	}
	// Within the leeway; an audience list that holds the service; the
	// algorithms of RSA and ECDSA keys; a key found by kid, by x5c, or
	// by trying the bundle's keys when the kid is not one of theirs.
	for name, tok := range map[string]string{
		"expired within leeway":  ec.sign(t, with("exp", now.Add(-30*time.Second).Unix()), nil),
		"nbf within leeway":      ec.sign(t, with("nbf", now.Add(30*time.Second).Unix()), nil),
		"audience list":          ec.sign(t, with("aud", []string{"other", testService}), nil),
		"RS256":                  rs.sign(t, ok, nil),
		"PS256":                  (&signer{key: rs.key, method: jwt.SigningMethodPS256}).sign(t, ok, nil),
		"ES256, unknown kid":     ec.sign(t, ok, map[string]any{"kid": "ABCD:EFGH"}),
		"RS256, kid libtrust":    rs.sign(t, ok, map[string]any{"kid": keyIDs(rs.cert.PublicKey)[0]}),
		"ES256, kid RFC 7638":    ec.sign(t, ok, map[string]any{"kid": keyIDs(ec.cert.PublicKey)[1]}),
		"ES256, x5c of its cert": ec.sign(t, ok, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(ec.cert.Raw)}}),
		"RS256, x5c of its cert": rs.sign(t, ok, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(rs.cert.Raw)}}),
	} {
		if r := e.as(tok, "GET", "/v2/a/tags/list", nil); r.StatusCode != http.StatusNotFound || r.code() != CodeNameUnknown {
			t.Errorf("%s: %d %s %s", name, r.StatusCode, r.Header.Get("WWW-Authenticate"), r.body)
		}
	}
	// A kid that names one key of the bundle is verified with that key only.
	ec2 := newSigner(t, "ec", nil, false)
	e2 := tokenEnv(t, ec, ec2)
	e2.expect(e2.as(ec2.sign(t, ok, map[string]any{"kid": keyIDs(ec2.cert.PublicKey)[0]}), "GET", "/v2/", nil), http.StatusOK, "")
	e2.refused(e2.as(ec2.sign(t, ok, map[string]any{"kid": keyIDs(ec.cert.PublicKey)[0]}), "GET", "/v2/", nil), CodeUnauthorized, challenge("", "invalid_token"))
	if log := e.log.String(); !strings.Contains(log, "token has invalid issuer") || !strings.Contains(log, "token is expired") {
		t.Errorf("the access log does not say why tokens were refused:\n%s", log)
	}
}

func TestTokenCertChain(t *testing.T) {
	ca := newSigner(t, "ec", nil, true)
	leaf := newSigner(t, "rsa", ca, false)
	e := tokenEnv(t, ca)
	ok := claims("alice", pull("a"))
	x5c := []string{base64.StdEncoding.EncodeToString(leaf.cert.Raw), base64.StdEncoding.EncodeToString(ca.cert.Raw)}
	e.expect(e.as(leaf.sign(t, ok, map[string]any{"x5c": x5c}), "GET", "/v2/", nil), http.StatusOK, "")
	e.expect(e.as(leaf.sign(t, ok, map[string]any{"x5c": x5c[:1]}), "GET", "/v2/", nil), http.StatusOK, "")
	// The leaf is not in the bundle: without x5c its key is unknown.
	e.refused(e.as(leaf.sign(t, ok, nil), "GET", "/v2/", nil), CodeUnauthorized, challenge("", "invalid_token"))
	// A chain the CA did not sign.
	other := newSigner(t, "rsa", newSigner(t, "ec", nil, true), false)
	e.refused(e.as(other.sign(t, ok, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(other.cert.Raw)}}), "GET", "/v2/", nil),
		CodeUnauthorized, challenge("", "invalid_token"))
}

func TestLoadTokenAuth(t *testing.T) {
	good := bundle(t, newSigner(t, "ec", nil, false))
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600)
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}), 0o600)
	for _, c := range []struct {
		cfg  TokenConfig
		want string
	}{
		{TokenConfig{Realm: testRealm, Service: testService, Issuer: testIssuer, RootCertBundle: filepath.Join(dir, "missing.pem")}, "root certificate bundle: open"},
		{TokenConfig{Realm: testRealm, Service: testService, Issuer: testIssuer, RootCertBundle: empty}, "holds no PEM certificate"},
		{TokenConfig{Realm: testRealm, Service: testService, Issuer: testIssuer, RootCertBundle: bad}, "certificate 1"},
		{TokenConfig{Realm: testRealm, Service: testService, Issuer: testIssuer, RootCertBundle: bundle(t, newSigner(t, "ed25519", nil, false))}, "Ed25519 key"},
		{TokenConfig{Realm: "auth.example/token", Service: testService, Issuer: testIssuer, RootCertBundle: good}, "not an http(s) URL"},
		{TokenConfig{Realm: testRealm, Service: `a"b`, Issuer: testIssuer, RootCertBundle: good}, "challenge"},
		{TokenConfig{Realm: testRealm, Issuer: testIssuer, RootCertBundle: good}, "service and an issuer"},
		{TokenConfig{Realm: testRealm, Service: testService, Issuer: testIssuer}, "bundle is required"},
	} {
		if _, err := LoadTokenAuth(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.cfg, err, c.want)
		}
	}
}

func TestKeyIDs(t *testing.T) {
	// RFC 7638, 3.1: the thumbprint of its example RSA key.
	n, _ := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	ids := keyIDs(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537})
	if len(ids) != 2 || ids[1] != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("RFC 7638 thumbprint: %v", ids)
	}
	// libtrust: 12 groups of 4 base32 characters.
	if g := strings.Split(ids[0], ":"); len(g) != 12 || slices.ContainsFunc(g, func(s string) bool { return len(s) != 4 }) {
		t.Errorf("libtrust key ID %q", ids[0])
	}
}

// TestTokenPushPullWithClient runs berth's registry client against the
// server with token auth and a token service that checks passwords:
// alice may push and pull team/app, bob may only pull it.
func TestTokenPushPullWithClient(t *testing.T) {
	key := newSigner(t, "ec", nil, false)
	var mu sync.Mutex
	var scopes []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		allowed := map[string][]string{"alice": {"pull", "push"}, "bob": {"pull"}}[user]
		if pass != user+"-secret" || allowed == nil || r.URL.Path != "/token" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"details":"incorrect username or password"}`)
			return
		}
		if r.URL.Query().Get("service") != testService {
			http.Error(w, "unknown service", http.StatusBadRequest)
			return
		}
		var access []Access
		for _, sc := range r.URL.Query()["scope"] {
			mu.Lock()
			scopes = append(scopes, user+" "+sc)
			mu.Unlock()
			typ, rest, _ := strings.Cut(sc, ":")
			i := strings.LastIndex(rest, ":")
			if typ != "repository" || i < 0 || rest[:i] != "team/app" {
				continue
			}
			a := Access{Type: typ, Name: rest[:i]}
			for _, act := range strings.Split(rest[i+1:], ",") {
				if slices.Contains(allowed, act) {
					a.Actions = append(a.Actions, act)
				}
			}
			access = append(access, a)
		}
		tok, err := jwt.NewWithClaims(key.method, claims(user, access...)).SignedString(key.key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
	}))
	t.Cleanup(ts.Close)
	ta, err := LoadTokenAuth(TokenConfig{Realm: ts.URL + "/token", Service: testService, Issuer: testIssuer, RootCertBundle: bundle(t, key)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "", func(o *Options) { o.Auth = ta })

	ctx := context.Background()
	c := registry.New(registry.Options{RetryDelay: time.Millisecond})
	ref, err := reference.ParseNormalizedNamed(strings.TrimPrefix(e.srv.URL, "http://") + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	alice := c.Repository(ref, &registrytypes.AuthConfig{Username: "alice", Password: "alice-secret"})
	cfg, layer := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), []byte("a layer, in the clear")
	descs := []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))},
	}
	for i, b := range [][]byte{cfg, layer} {
		if ok, err := alice.BlobExists(ctx, descs[i].Digest); ok || err != nil {
			t.Fatalf("blob exists before the push: %v %v", ok, err)
		}
		up, err := alice.StartUpload(ctx, descs[i].Digest, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := up.Finish(ctx, descs[i], func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }); err != nil {
			t.Fatal(err)
		}
		if ok, err := alice.BlobExists(ctx, descs[i].Digest); !ok || err != nil {
			t.Fatalf("blob missing after the push: %v %v", ok, err)
		}
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: descs[0], Layers: descs[1:]}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	md, err := alice.PutManifest(ctx, "v1", ocispec.MediaTypeImageManifest, mb)
	if err != nil {
		t.Fatal(err)
	}

	bob := registry.New(registry.Options{RetryDelay: time.Millisecond}).Repository(ref, &registrytypes.AuthConfig{Username: "bob", Password: "bob-secret"})
	desc, got, err := bob.Manifest(ctx, "v1")
	if err != nil || !bytes.Equal(got, mb) || desc.Digest != md {
		t.Fatalf("pull the manifest back: %v %s", err, got)
	}
	rc, err := bob.Blob(ctx, descs[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, layer) {
		t.Fatalf("pull the layer back: %v %q", err, b)
	}
	if _, err := bob.StartUpload(ctx, descs[1].Digest, ""); !registry.IsDenied(err) {
		t.Fatalf("bob may not push: %v", err)
	}
	mallory := registry.New(registry.Options{RetryDelay: time.Millisecond}).Repository(ref, &registrytypes.AuthConfig{Username: "alice", Password: "wrong"})
	if _, _, err := mallory.Manifest(ctx, "v1"); !registry.IsDenied(err) {
		t.Fatalf("a wrong password: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"alice repository:team/app:pull,push", "bob repository:team/app:pull"} {
		if !slices.Contains(scopes, want) {
			t.Errorf("the token service was not asked for %q: %q", want, scopes)
		}
	}
	if log := e.log.String(); !strings.Contains(log, "user=alice") || !strings.Contains(log, "user=bob") {
		t.Errorf("the access log does not name the token's subject:\n%s", log)
	}
}
