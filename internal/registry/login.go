package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"berth/internal/errdefs"

	registrytypes "github.com/moby/moby/api/types/registry"
)

// LoginHost is the registry host a `docker login` server address names:
// "localhost:5000", "https://registry.example/v2/", or Docker Hub's index
// URL (or nothing) for Docker Hub.
func LoginHost(server string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	s = strings.TrimSuffix(s, "/")
	s = strings.TrimSuffix(strings.TrimSuffix(s, "/v1"), "/v2")
	if s == "" {
		return DockerHubRegistry
	}
	return Host(s)
}

// Login checks creds against the registry creds.ServerAddress names, as
// `docker login` asks the daemon to: a registry that asks for no
// credentials accepts any; one with a basic challenge must accept them on
// its /v2/ endpoint; one with a bearer challenge must give a token for
// them. It returns the identity token the token service issued, if any.
func (c *Client) Login(ctx context.Context, creds *registrytypes.AuthConfig) (string, error) {
	if creds == nil {
		creds = &registrytypes.AuthConfig{}
	}
	host := LoginHost(creds.ServerAddress)
	a := newAuthorizer(c, host, creds)
	scheme, err := c.scheme(ctx, host, a)
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	cs := a.challenges
	a.mu.Unlock()
	endpoint := scheme + "://" + host + "/v2/"
	for _, ch := range cs {
		switch ch.scheme {
		case "bearer":
			if creds.Username == "" && creds.IdentityToken == "" {
				return "", errdefs.Unauthorized("login to %s: no username given", host)
			}
			if _, err := a.token(ctx, ch, "", true); err != nil {
				if IsDenied(err) {
					return "", errdefs.Unauthorized("login attempt to %s failed: %v", endpoint, err)
				}
				return "", err
			}
			return "", nil
		case "basic":
			hc, err := c.httpClient(host)
			if err != nil {
				return "", err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
			if err != nil {
				return "", errdefs.InvalidWrap(err, "registry %s", host)
			}
			req.Header.Set("User-Agent", c.opts.UserAgent)
			req.SetBasicAuth(creds.Username, creds.Password)
			resp, err := hc.Do(req)
			if err != nil {
				return "", fmt.Errorf("login to %s: %w", host, err)
			}
			drain(resp)
			switch resp.StatusCode {
			case http.StatusOK:
				return "", nil
			case http.StatusUnauthorized, http.StatusForbidden:
				return "", errdefs.Unauthorized("login attempt to %s failed with status: %s", endpoint, resp.Status)
			}
			return "", fmt.Errorf("login attempt to %s failed with status: %s", endpoint, resp.Status)
		}
	}
	return "", nil
}

// DecodeAuthConfigs decodes POST /build's X-Registry-Config header: base64url
// JSON of a map from server address to AuthConfig. An empty header is no
// credentials.
func DecodeAuthConfigs(h string) (map[string]registrytypes.AuthConfig, error) {
	out := map[string]registrytypes.AuthConfig{}
	if strings.TrimSpace(h) == "" {
		return out, nil
	}
	if err := decodeHeader(h, &out); err != nil {
		return nil, errdefs.InvalidWrap(err, "invalid X-Registry-Config header")
	}
	for k, ac := range out {
		splitAuth(&ac)
		out[k] = ac
	}
	return out, nil
}

// decodeHeader decodes base64url JSON (padded or not, the standard
// alphabet tolerated) into v.
func decodeHeader(h string, v any) error {
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err = enc.DecodeString(strings.TrimSpace(h)); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// splitAuth fills Username and Password from "auth", base64("user:password")
// as in ~/.docker/config.json.
func splitAuth(ac *registrytypes.AuthConfig) {
	if ac.Auth == "" || ac.Username != "" {
		return
	}
	if raw, err := base64.StdEncoding.DecodeString(ac.Auth); err == nil {
		if u, p, ok := strings.Cut(string(raw), ":"); ok {
			ac.Username, ac.Password = u, p
		}
	}
}
