package registry_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/registry"

	registrytypes "github.com/moby/moby/api/types/registry"
	"github.com/opencontainers/go-digest"
)

// TestStorePush pulls an image into a store, then pushes it: to another repository of
// the same registry (its layers are mounted from where they were pulled), and to a
// second registry (uploaded, with progress). The manifest is pushed byte for byte and
// the image gains a RepoDigest.
func TestStorePush(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.tokenAuth = true
	im := reg.pushTestImage(t, "src", "v1")
	s := openStore(t)
	c := newClient()
	ctx := context.Background()
	if _, err := pull(t, s, c, reg.host()+"/src:v1", nil, nil); err != nil {
		t.Fatal(err)
	}
	dst := reg.host() + "/team/dst:v2"
	if err := s.Tag(reg.host()+"/src:v1", dst); err != nil {
		t.Fatal(err)
	}
	ref, _ := image.ParseRef(dst)
	var log progressLog
	res, err := s.Push(ctx, c.Repository(ref, nil), ref, log.add)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != im.manifest.Digest || res.Tag != "v2" || res.Size != im.manifest.Size {
		t.Errorf("pushed %+v, want the manifest %s", res, im.manifest.Digest)
	}
	for _, l := range im.layers {
		id := l.Digest.Encoded()[:12]
		if got := log.statuses(id); !slices.Equal(got, []string{"Preparing", "Mounted from src"}) {
			t.Errorf("layer %s: %v", id, got)
		}
	}
	if n := reg.countPrefix("PUT /v2/team/dst/blobs/uploads/"); n != 1 {
		t.Errorf("%d uploads, want 1 (the config; the layers are mounted)", n)
	}
	got, err := s.Resolve(dst)
	if err != nil || !slices.Contains(got.RepoDigests, reg.host()+"/team/dst@"+im.manifest.Digest.String()) {
		t.Errorf("RepoDigests after push: %v %v", got.RepoDigests, err)
	}
	// A second push finds everything there.
	log = progressLog{}
	if _, err := s.Push(ctx, c.Repository(ref, nil), ref, log.add); err != nil {
		t.Fatal(err)
	}
	if got := log.statuses(im.layers[1].Digest.Encoded()[:12]); !slices.Equal(got, []string{"Preparing", "Layer already exists"}) {
		t.Errorf("second push: %v", got)
	}

	// Another registry: every blob is uploaded.
	reg2 := newFakeRegistry(t)
	other := reg2.host() + "/copy:latest"
	if err := s.Tag(dst, other); err != nil {
		t.Fatal(err)
	}
	ref2, _ := image.ParseRef(other)
	log = progressLog{}
	if _, err := s.Push(ctx, c.Repository(ref2, nil), ref2, log.add); err != nil {
		t.Fatal(err)
	}
	big := im.layers[1]
	if got := log.statuses(big.Digest.Encoded()[:12]); !slices.Equal(got, []string{"Preparing", "Pushing", "Pushed"}) {
		t.Errorf("upload statuses: %v", got)
	}
	var last image.PullProgress
	for _, e := range log.ev {
		if e.ID == big.Digest.Encoded()[:12] && e.Status == "Pushing" {
			last = e
		}
	}
	if last.Current != big.Size || last.Total != big.Size {
		t.Errorf("last progress %+v, want %d of %d", last, big.Size, big.Size)
	}
	_, b, err := c.Repository(ref2, nil).Manifest(ctx, "latest")
	if err != nil || digest.FromBytes(b) != im.manifest.Digest {
		t.Fatalf("manifest on the second registry: %v", err)
	}
	for i, l := range im.layers {
		reg2.mu.Lock()
		got := reg2.blobs["copy@"+l.Digest.String()]
		reg2.mu.Unlock()
		if !bytes.Equal(got, im.layerBytes[i]) {
			t.Errorf("layer %d differs on the second registry", i)
		}
	}

	// Removing a tag also drops its repository's digest references when no other tag
	// of that repository is left, as dockerd's rmi does.
	del, err := s.Remove(ctx, dst, image.RemoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []image.Deleted{{Untagged: dst}, {Untagged: reg.host() + "/team/dst@" + im.manifest.Digest.String()}}
	if !slices.Equal(del, want) {
		t.Errorf("rmi %s: %+v, want %+v", dst, del, want)
	}
	if _, err := s.Resolve(other); err != nil {
		t.Errorf("the image went with one of its tags: %v", err)
	}

	// An image that is not here.
	missing, _ := image.ParseRef(reg2.host() + "/nothing:v1")
	if _, err := s.Push(ctx, c.Repository(missing, nil), missing, nil); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "An image does not exist locally with the tag") {
		t.Errorf("missing image: %v", err)
	}
}

// TestLogin: a bearer registry checks the credentials at its token service, a basic one
// at /v2/, one without authentication accepts anything; refusals are ErrUnauthorized.
func TestLogin(t *testing.T) {
	ctx := context.Background()
	c := newClient()
	reg := newFakeRegistry(t)
	reg.tokenAuth, reg.user = true, "alice:secret"
	if _, err := c.Login(ctx, &registrytypes.AuthConfig{Username: "alice", Password: "secret", ServerAddress: reg.host()}); err != nil {
		t.Errorf("bearer login: %v", err)
	}
	_, err := c.Login(ctx, &registrytypes.AuthConfig{Username: "alice", Password: "wrong", ServerAddress: "http://" + reg.host() + "/v2/"})
	if !errors.Is(err, errdefs.ErrUnauthorized) || !strings.Contains(err.Error(), "incorrect username or password") {
		t.Errorf("bearer, wrong password: %v", err)
	}

	basic := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == "bob" && p == "pw" {
			w.Write([]byte("{}"))
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer basic.Close()
	host := strings.TrimPrefix(basic.URL, "http://")
	if _, err := c.Login(ctx, &registrytypes.AuthConfig{Username: "bob", Password: "pw", ServerAddress: host}); err != nil {
		t.Errorf("basic login: %v", err)
	}
	_, err = c.Login(ctx, &registrytypes.AuthConfig{Username: "bob", Password: "nope", ServerAddress: host})
	if !errors.Is(err, errdefs.ErrUnauthorized) || !strings.Contains(err.Error(), "failed with status: 401 Unauthorized") {
		t.Errorf("basic, wrong password: %v", err)
	}

	open := newFakeRegistry(t)
	if _, err := c.Login(ctx, &registrytypes.AuthConfig{Username: "any", Password: "thing", ServerAddress: open.host()}); err != nil {
		t.Errorf("registry without authentication: %v", err)
	}
	if _, err := c.Login(ctx, &registrytypes.AuthConfig{Username: "x", Password: "y", ServerAddress: "127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("unreachable registry: %v", err)
	}
}

func TestLoginHost(t *testing.T) {
	for in, want := range map[string]string{
		"":                            registry.DockerHubRegistry,
		"https://index.docker.io/v1/": registry.DockerHubRegistry,
		"docker.io":                   registry.DockerHubRegistry,
		"localhost:5000":              "localhost:5000",
		"http://localhost:5000/v2/":   "localhost:5000",
		"https://r.example/":          "r.example",
	} {
		if got := registry.LoginHost(in); got != want {
			t.Errorf("LoginHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeAuthConfigs(t *testing.T) {
	b, _ := json.Marshal(map[string]registrytypes.AuthConfig{
		"localhost:5000":              {Auth: base64.StdEncoding.EncodeToString([]byte("u:p"))},
		"https://index.docker.io/v1/": {Username: "hub", Password: "pw"},
	})
	m, err := registry.DecodeAuthConfigs(base64.URLEncoding.EncodeToString(b))
	if err != nil {
		t.Fatal(err)
	}
	if a := m["localhost:5000"]; a.Username != "u" || a.Password != "p" {
		t.Errorf("auth split: %+v", a)
	}
	if a := m["https://index.docker.io/v1/"]; a.Username != "hub" {
		t.Errorf("hub: %+v", a)
	}
	if m, err := registry.DecodeAuthConfigs(""); err != nil || len(m) != 0 {
		t.Errorf("empty: %v %v", m, err)
	}
	if _, err := registry.DecodeAuthConfigs("!!!"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("garbage: %v", err)
	}
}

// TestMirror reads a Docker Hub image from a mirror, over the mirror URL's scheme.
func TestMirror(t *testing.T) {
	reg := newFakeRegistry(t)
	im := reg.pushTestImage(t, "library/busybox", "latest")
	c := newClient()
	ref, _ := image.ParseRef("busybox")
	repo, err := c.Mirror("http://"+reg.host(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	desc, _, err := repo.Manifest(context.Background(), "latest")
	if err != nil || desc.Digest != im.index.Digest {
		t.Fatalf("manifest from the mirror: %v %v", desc, err)
	}
	// A mirror of another registry under a prefix of its repositories (containerd's
	// override_path): registry.k8s.io/pause is the mirror's registry.k8s.io/pause.
	pim := reg.pushTestImage(t, "registry.k8s.io/pause", "3.9")
	pref, _ := image.ParseRef("registry.k8s.io/pause:3.9")
	repo, err = c.Mirror("http://"+reg.host()+"/v2/registry.k8s.io", pref, nil)
	if err != nil {
		t.Fatal(err)
	}
	desc, _, err = repo.Manifest(context.Background(), "3.9")
	if err != nil || desc.Digest != pim.index.Digest {
		t.Fatalf("manifest from the prefixed mirror: %v %v", desc, err)
	}
	for _, bad := range []string{"ftp://x", "http://host/some/path", "nohost", "http://host/v2/UPPER", "http://host/v2/a//b", "http://host/v2/x?q=1"} {
		if _, err := c.Mirror(bad, ref, nil); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("mirror %q: %v", bad, err)
		}
	}
}

// countPrefix counts the requests whose "METHOD path" starts with prefix.
func (f *fakeRegistry) countPrefix(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, v := range f.requests {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}
