// Package registry is berth's client of the OCI distribution API (Docker
// registries, Docker Hub, any distribution-spec server): it resolves image
// references with Docker's defaults, chooses HTTP or HTTPS for a host,
// answers the registry's WWW-Authenticate challenges (bearer tokens and
// basic), fetches manifests and blobs (resuming interrupted blob downloads
// with Range requests and verifying every digest) and offers the primitives
// a push needs (blob existence checks, cross-repository mounts, monolithic
// and chunked uploads, manifest PUT).
//
// It knows nothing of berth's image store: what it fetches it hands over
// as verified streams and bytes, described by OCI descriptors. The image
// store decides what to keep; the daemon wires the two together. The
// registry server (internal/registry/server) is a separate package.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"berth/internal/errdefs"

	"github.com/distribution/reference"
	registrytypes "github.com/moby/moby/api/types/registry"
)

// Docker Hub: references name docker.io, its API answers at registry-1.
const (
	DockerHubDomain   = "docker.io"
	DockerHubRegistry = "registry-1.docker.io"
	// DockerHubIndex is the server address `docker login` uses for Docker Hub.
	DockerHubIndex = "https://index.docker.io/v1/"
)

// Options configures a Client.
type Options struct {
	// Insecure lists registries reached over plain HTTP (or HTTPS without
	// certificate verification when they offer it): "host:port", "host",
	// or a CIDR ("10.0.0.0/8") matching the host's address. localhost,
	// 127.0.0.0/8 and ::1 are always insecure, as with Docker.
	Insecure []string
	// RootCAs verifies registries' certificates; nil uses the system's.
	RootCAs *x509.CertPool
	// CertsDir holds extra CA certificates per registry, Docker's
	// /etc/docker/certs.d layout: <CertsDir>/<host[:port]>/*.crt.
	CertsDir string
	// Transport replaces the network transport (tests). TLS settings
	// above are not applied to it.
	Transport http.RoundTripper
	// DialContext replaces how connections are made (tests: a registry
	// name that resolves to a local server); TLS settings still apply.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// UserAgent is sent with every request.
	UserAgent string
	// Retries is how many times a failed blob download is resumed
	// (default 5).
	Retries int
	// RetryDelay is the first pause between attempts, doubled each time
	// (default 500ms).
	RetryDelay time.Duration
}

// Client talks to registries. It is safe for concurrent use; it keeps
// each host's scheme once found.
type Client struct {
	opts Options

	mu      sync.Mutex
	schemes map[string]string // host -> "https" or "http", once pinged
	clients map[string]*http.Client
}

// New returns a client.
func New(opts Options) *Client {
	if opts.Retries == 0 {
		opts.Retries = 5
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = 500 * time.Millisecond
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "berth"
	}
	return &Client{opts: opts, schemes: map[string]string{}, clients: map[string]*http.Client{}}
}

// Host is the registry host a reference's domain is served by
// ("docker.io" -> "registry-1.docker.io").
func Host(domain string) string {
	if domain == DockerHubDomain || domain == "index.docker.io" {
		return DockerHubRegistry
	}
	return domain
}

// AuthKey is the key credentials for a reference's registry are kept
// under, as `docker login` names it (Docker Hub's index URL, else the
// domain).
func AuthKey(domain string) string {
	if domain == DockerHubDomain || domain == "index.docker.io" {
		return DockerHubIndex
	}
	return domain
}

// IsInsecure tells whether host ("host[:port]") may be reached over HTTP.
func (c *Client) IsInsecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	for _, e := range c.opts.Insecure {
		e = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://"), "/")
		if e == host || e == h {
			return true
		}
		if _, n, err := net.ParseCIDR(e); err == nil {
			if ip != nil && n.Contains(ip) {
				return true
			}
			if ip == nil {
				if addrs, err := net.LookupIP(h); err == nil {
					for _, a := range addrs {
						if n.Contains(a) {
							return true
						}
					}
				}
			}
		}
	}
	return false
}

// httpClient is the HTTP client for host: TLS with the configured and
// per-host CAs, verification off for insecure hosts.
func (c *Client) httpClient(host string) (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.clients[host]; ok {
		return hc, nil
	}
	hc := &http.Client{Transport: c.opts.Transport, CheckRedirect: checkRedirect}
	if c.opts.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if c.opts.DialContext != nil {
			t.DialContext = c.opts.DialContext
		}
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.opts.RootCAs}
		if c.opts.CertsDir != "" {
			pool, err := c.hostCAs(host)
			if err != nil {
				return nil, err
			}
			if pool != nil {
				t.TLSClientConfig.RootCAs = pool
			}
		}
		if c.IsInsecure(host) {
			t.TLSClientConfig.InsecureSkipVerify = true
		}
		hc.Transport = t
	}
	c.clients[host] = hc
	return hc, nil
}

// checkRedirect keeps Go's default limit; blob GETs are redirected to
// storage (S3, a CDN) without the registry's Authorization header, which
// Go drops on a change of host.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// hostCAs reads <CertsDir>/<host>/*.crt on top of the configured pool.
func (c *Client) hostCAs(host string) (*x509.CertPool, error) {
	files, _ := filepath.Glob(filepath.Join(c.opts.CertsDir, host, "*.crt"))
	if len(files) == 0 {
		return nil, nil
	}
	pool := c.opts.RootCAs
	if pool == nil {
		var err error
		if pool, err = x509.SystemCertPool(); err != nil {
			pool = x509.NewCertPool()
		}
	} else {
		pool = pool.Clone()
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("registry %s: %w", host, err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, errdefs.Invalid("registry %s: %s holds no PEM certificate", host, f)
		}
	}
	return pool, nil
}

// Repository is one repository of one registry, with the credentials to
// use there.
type Repository struct {
	c *Client
	// Host is the registry's address ("registry-1.docker.io", "localhost:5000").
	Host string
	// Name is the repository's path there ("library/busybox").
	Name string
	// Ref is the reference the repository was opened for.
	Ref reference.Named

	auth *authorizer
}

// Repository opens the repository of ref with credentials (nil for
// anonymous access).
func (c *Client) Repository(ref reference.Named, creds *registrytypes.AuthConfig) *Repository {
	host := Host(reference.Domain(ref))
	return &Repository{c: c, Host: host, Name: reference.Path(ref), Ref: ref, auth: newAuthorizer(c, host, creds)}
}

// base is the repository's API URL, pinging the registry the first time
// to choose the scheme and learn its authentication challenge.
func (r *Repository) base(ctx context.Context) (string, error) {
	scheme, err := r.c.scheme(ctx, r.Host, r.auth)
	if err != nil {
		return "", err
	}
	return scheme + "://" + r.Host + "/v2/" + r.Name, nil
}

// scheme finds how host answers: HTTPS, or for insecure hosts HTTP when
// HTTPS fails, as Docker does. The ping's challenge is handed to a.
func (c *Client) scheme(ctx context.Context, host string, a *authorizer) (string, error) {
	c.mu.Lock()
	s, ok := c.schemes[host]
	c.mu.Unlock()
	if ok && a.pinged() {
		return s, nil
	}
	schemes := []string{"https"}
	if ok {
		schemes = []string{s}
	} else if c.IsInsecure(host) {
		schemes = append(schemes, "http")
	}
	var errs []error
	for _, s := range schemes {
		err := c.ping(ctx, s, host, a)
		if err == nil {
			c.mu.Lock()
			c.schemes[host] = s
			c.mu.Unlock()
			return s, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("registry %s is not reachable: %w", host, errors.Join(errs...))
}

// ping is GET /v2/: 200 (no authentication) or 401 with a challenge.
func (c *Client) ping(ctx context.Context, scheme, host string, a *authorizer) error {
	hc, err := c.httpClient(host)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
	if err != nil {
		return errdefs.InvalidWrap(err, "registry %s", host)
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := hc.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		a.setChallenges(nil)
		return nil
	case http.StatusUnauthorized:
		a.setChallenges(parseChallenges(resp.Header.Values("WWW-Authenticate")))
		return nil
	}
	return fmt.Errorf("%s://%s/v2/: unexpected status %s", scheme, host, resp.Status)
}

// resolve makes a location the registry returned absolute.
func resolve(base *url.URL, loc string) (*url.URL, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("registry returned a bad location %q: %w", loc, err)
	}
	return base.ResolveReference(u), nil
}

// Mirror opens the repository of ref on a mirror: daemon.json's registry-mirrors for
// Docker Hub ("https://mirror.example", "http://127.0.0.1:5001") or a registry-hosts
// entry, over the scheme its URL names. A URL path below /v2/ names a prefix of the
// mirror's repositories, as containerd's hosts.toml with override_path: with
// "http://127.0.0.1:5000/v2/registry.k8s.io", registry.k8s.io/pause is the mirror's
// repository registry.k8s.io/pause.
func (c *Client) Mirror(mirror string, ref reference.Named, creds *registrytypes.AuthConfig) (*Repository, error) {
	u, prefix, err := ParseMirror(mirror)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if _, ok := c.schemes[u.Host]; !ok {
		c.schemes[u.Host] = u.Scheme
	}
	c.mu.Unlock()
	name := reference.Path(ref)
	if prefix != "" {
		name = prefix + "/" + name
	}
	return &Repository{c: c, Host: u.Host, Name: name, Ref: ref, auth: newAuthorizer(c, u.Host, creds)}, nil
}

// pathComponent is a component of a repository path (the distribution spec's).
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// ParseMirror checks a mirror URL: http or https, served at its root ("/" or "/v2") or
// under /v2/<prefix>, a repository path prefix. It returns the URL and the prefix.
func ParseMirror(mirror string) (*url.URL, string, error) {
	u, err := url.Parse(mirror)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, "", errdefs.Invalid("registry mirror %q: want an http or https URL", mirror)
	}
	p := strings.Trim(u.Path, "/")
	if p == "" || p == "v2" {
		return u, "", nil
	}
	prefix, ok := strings.CutPrefix(p, "v2/")
	if !ok {
		return nil, "", errdefs.Invalid("registry mirror %q: a mirror is served at its root, or under /v2/<prefix> for a prefix of its repositories", mirror)
	}
	for _, part := range strings.Split(prefix, "/") {
		if !pathComponent.MatchString(part) {
			return nil, "", errdefs.Invalid("registry mirror %q: %q is not a repository path component", mirror, part)
		}
	}
	return u, prefix, nil
}
