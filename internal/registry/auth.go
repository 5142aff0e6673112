package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"berth/internal/errdefs"

	registrytypes "github.com/moby/moby/api/types/registry"
)

// DecodeAuthConfig decodes an X-Registry-Auth header: base64url (padded
// or not, standard alphabet tolerated) JSON of an AuthConfig. An empty
// header, or one that decodes to "{}", is anonymous access (nil).
func DecodeAuthConfig(h string) (*registrytypes.AuthConfig, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil, nil
	}
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err = enc.DecodeString(h); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errdefs.InvalidWrap(err, "invalid X-Registry-Auth header")
	}
	var ac registrytypes.AuthConfig
	if err := json.Unmarshal(b, &ac); err != nil {
		return nil, errdefs.InvalidWrap(err, "invalid X-Registry-Auth header")
	}
	if ac.Auth != "" && ac.Username == "" {
		// "auth" is base64("user:password"), as in ~/.docker/config.json.
		if raw, err := base64.StdEncoding.DecodeString(ac.Auth); err == nil {
			if u, p, ok := strings.Cut(string(raw), ":"); ok {
				ac.Username, ac.Password = u, p
			}
		}
	}
	if ac == (registrytypes.AuthConfig{}) {
		return nil, nil
	}
	return &ac, nil
}

// challenge is one WWW-Authenticate challenge: a scheme and its parameters.
type challenge struct {
	scheme string // lower case: "bearer", "basic"
	params map[string]string
}

// parseChallenges parses WWW-Authenticate headers (RFC 7235; parameters
// quoted or not, several challenges per header).
func parseChallenges(headers []string) []challenge {
	var out []challenge
	for _, h := range headers {
		s := strings.TrimSpace(h)
		for s != "" {
			var scheme string
			scheme, s = token(s)
			if scheme == "" {
				break
			}
			c := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
			s = strings.TrimLeft(s, " ")
			for {
				k, rest := token(s)
				if k == "" || !strings.HasPrefix(strings.TrimLeft(rest, " "), "=") {
					break
				}
				rest = strings.TrimLeft(strings.TrimLeft(rest, " ")[1:], " ")
				var v string
				if strings.HasPrefix(rest, `"`) {
					v, rest = quoted(rest)
				} else {
					v, rest = token(rest)
				}
				c.params[strings.ToLower(k)] = v
				s = strings.TrimLeft(rest, " ")
				if !strings.HasPrefix(s, ",") {
					break
				}
				s = strings.TrimLeft(s[1:], " ")
			}
			out = append(out, c)
			s = strings.TrimLeft(strings.TrimLeft(s, ","), " ")
		}
	}
	return out
}

// token splits the leading token off s.
func token(s string) (string, string) {
	i := strings.IndexFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '=' || r == '"' })
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// quoted splits a leading quoted string off s (which starts with a quote).
func quoted(s string) (string, string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), ""
}

// authorizer adds credentials to a registry's requests, as its challenge
// asks: a bearer token per scope from the token service, or basic auth.
type authorizer struct {
	c     *Client
	host  string
	creds *registrytypes.AuthConfig

	mu         sync.Mutex
	didPing    bool
	challenges []challenge
	tokens     map[string]bearerToken // scope -> token
}

type bearerToken struct {
	token   string
	expires time.Time
}

func newAuthorizer(c *Client, host string, creds *registrytypes.AuthConfig) *authorizer {
	return &authorizer{c: c, host: host, creds: creds, tokens: map[string]bearerToken{}}
}

func (a *authorizer) pinged() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.didPing
}

func (a *authorizer) setChallenges(cs []challenge) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.didPing, a.challenges = true, cs
}

// authorize sets req's Authorization for scope ("repository:library/busybox:pull");
// fresh forgets the cached token (after a 401).
func (a *authorizer) authorize(ctx context.Context, req *http.Request, scope string, fresh bool) error {
	a.mu.Lock()
	cs := a.challenges
	a.mu.Unlock()
	for _, c := range cs {
		switch c.scheme {
		case "bearer":
			tok, err := a.token(ctx, c, scope, fresh)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			return nil
		case "basic":
			if a.creds != nil && a.creds.Username != "" {
				req.SetBasicAuth(a.creds.Username, a.creds.Password)
			}
			return nil
		}
	}
	return nil
}

// token returns a bearer token for scope, from the cache or the token
// service the challenge names.
func (a *authorizer) token(ctx context.Context, c challenge, scope string, fresh bool) (string, error) {
	if a.creds != nil && a.creds.RegistryToken != "" {
		return a.creds.RegistryToken, nil
	}
	a.mu.Lock()
	t, ok := a.tokens[scope]
	a.mu.Unlock()
	if ok && !fresh && time.Now().Before(t.expires) {
		return t.token, nil
	}
	realm := c.params["realm"]
	if realm == "" {
		return "", fmt.Errorf("registry %s: bearer challenge without a realm", a.host)
	}
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("registry %s: bad token realm %q", a.host, realm)
	}
	hc, err := a.c.httpClient(u.Host)
	if err != nil {
		return "", err
	}
	var req *http.Request
	if a.creds != nil && a.creds.IdentityToken != "" {
		// OAuth2 refresh token (what `docker login` got from the registry).
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.creds.IdentityToken}, "client_id": {"berth"}, "service": {c.params["service"]}}
		if scope != "" {
			form.Set("scope", scope)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		q := u.Query()
		if s := c.params["service"]; s != "" {
			q.Set("service", s)
		}
		for _, sc := range strings.Fields(scope) {
			q.Add("scope", sc)
		}
		if a.creds != nil && a.creds.Username != "" {
			q.Set("account", a.creds.Username)
		}
		u.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return "", err
		}
		if a.creds != nil && a.creds.Username != "" {
			req.SetBasicAuth(a.creds.Username, a.creds.Password)
		}
	}
	req.Header.Set("User-Agent", a.c.opts.UserAgent)
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("registry %s: get a token: %w", a.host, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", responseError(resp, "get a token from "+u.Host)
	}
	var tr struct {
		Token        string `json:"token"`
		AccessToken  string `json:"access_token"`
		ExpiresIn    int    `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		return "", fmt.Errorf("registry %s: token response: %w", a.host, err)
	}
	if tr.Token == "" {
		tr.Token = tr.AccessToken
	}
	if tr.Token == "" {
		return "", fmt.Errorf("registry %s: the token service returned no token", a.host)
	}
	if tr.ExpiresIn < 60 {
		tr.ExpiresIn = 60 // the spec's minimum
	}
	a.mu.Lock()
	a.tokens[scope] = bearerToken{token: tr.Token, expires: time.Now().Add(time.Duration(tr.ExpiresIn)*time.Second - 10*time.Second)}
	a.mu.Unlock()
	return tr.Token, nil
}
