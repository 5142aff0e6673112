package registry_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/registry"

	registrytypes "github.com/moby/moby/api/types/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestHostAndInsecure(t *testing.T) {
	for in, want := range map[string]string{"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io", "quay.io": "quay.io", "localhost:5000": "localhost:5000"} {
		if got := registry.Host(in); got != want {
			t.Errorf("Host(%s) = %s, want %s", in, got, want)
		}
	}
	if registry.AuthKey("docker.io") != registry.DockerHubIndex || registry.AuthKey("quay.io") != "quay.io" {
		t.Errorf("AuthKey")
	}
	c := registry.New(registry.Options{Insecure: []string{"reg.example:5000", "10.1.0.0/16", "http://plain.example/"}})
	for host, want := range map[string]bool{
		"localhost:5000": true, "127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:5000": true, "localhost": true,
		"reg.example:5000": true, "reg.example:5001": false, "10.1.2.3:5000": true, "10.2.0.1": false,
		"plain.example": true, "registry-1.docker.io": false,
	} {
		if got := c.IsInsecure(host); got != want {
			t.Errorf("IsInsecure(%s) = %v, want %v", host, got, want)
		}
	}
}

func TestDecodeAuthConfig(t *testing.T) {
	enc := base64.URLEncoding.EncodeToString([]byte(`{"username":"u","password":"p+/?","serveraddress":"localhost:5000"}`))
	ac, err := registry.DecodeAuthConfig(enc)
	if err != nil || ac.Username != "u" || ac.Password != "p+/?" || ac.ServerAddress != "localhost:5000" {
		t.Fatalf("%+v %v", ac, err)
	}
	ac, err = registry.DecodeAuthConfig(base64.StdEncoding.EncodeToString([]byte(`{"auth":"` + base64.StdEncoding.EncodeToString([]byte("a:b:c")) + `"}`)))
	if err != nil || ac.Username != "a" || ac.Password != "b:c" {
		t.Fatalf("auth field: %+v %v", ac, err)
	}
	for _, empty := range []string{"", base64.URLEncoding.EncodeToString([]byte("{}"))} {
		if ac, err := registry.DecodeAuthConfig(empty); ac != nil || err != nil {
			t.Errorf("%q: %+v %v", empty, ac, err)
		}
	}
	if _, err := registry.DecodeAuthConfig("!!!"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad header: %v", err)
	}
}

func newClient() *registry.Client {
	return registry.New(registry.Options{RetryDelay: time.Millisecond})
}

func openStore(t *testing.T) *image.Store {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("unpacking layers needs root")
	}
	s, err := image.Open(filepath.Join(t.TempDir(), "images"), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type progressLog struct {
	mu sync.Mutex
	ev []image.PullProgress
}

func (p *progressLog) add(e image.PullProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ev = append(p.ev, e)
}

func (p *progressLog) statuses(id string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.ev {
		if e.ID == id && (len(out) == 0 || out[len(out)-1] != e.Status) {
			out = append(out, e.Status)
		}
	}
	return out
}

func pull(t *testing.T, s *image.Store, c *registry.Client, name string, creds *registrytypes.AuthConfig, log *progressLog) (*image.Pulled, error) {
	t.Helper()
	ref, err := image.ParseRef(name)
	if err != nil {
		t.Fatal(err)
	}
	var fn func(image.PullProgress)
	if log != nil {
		fn = log.add
	}
	return s.Pull(context.Background(), c.Repository(ref, creds), ref, fn)
}

func TestPullIndexWithTokenAuth(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.tokenAuth, reg.user = true, "alice:secret"
	im := reg.pushTestImage(t, "team/app", "v1")
	s := openStore(t)
	c := newClient()
	name := reg.host() + "/team/app:v1"

	// Without credentials the token service refuses.
	if _, err := pull(t, s, c, name, nil, nil); !registry.IsDenied(err) || !errors.Is(err, errdefs.ErrForbidden) {
		t.Fatalf("anonymous pull: %v, want access denied", err)
	}

	log := &progressLog{}
	res, err := pull(t, s, c, name, &registrytypes.AuthConfig{Username: "alice", Password: "secret"}, log)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != im.index.Digest || !res.Updated {
		t.Errorf("result %+v, want digest %s, updated", res, im.index.Digest)
	}
	got := res.Image
	if got.ID != im.config.Digest || got.Target.Digest != im.manifest.Digest || got.Index == nil || got.Index.Digest != im.index.Digest {
		t.Errorf("image %s target %s index %v", got.ID, got.Target.Digest, got.Index)
	}
	if !slices.Contains(got.RepoTags, name) || !slices.Contains(got.RepoDigests, reg.host()+"/team/app@"+im.index.Digest.String()) {
		t.Errorf("tags %v digests %v", got.RepoTags, got.RepoDigests)
	}
	if !slices.Contains(reg.scopes, "repository:team/app:pull") {
		t.Errorf("token scopes %v", reg.scopes)
	}
	// Both layers unpacked.
	fs, err := s.Snaps.LayerFS(got.ChainIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(fs, "etc/hello")); err != nil || string(b) != "hello from layer one\n" {
		t.Errorf("layer one: %q %v", b, err)
	}
	fs, _ = s.Snaps.LayerFS(got.ChainIDs[1])
	if st, err := os.Stat(filepath.Join(fs, "srv/data")); err != nil || st.Size() != 500000 {
		t.Errorf("layer two: %v %v", st, err)
	}
	for _, l := range im.layers {
		id := l.Digest.Encoded()[:12]
		st := log.statuses(id)
		want := []string{"Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Pull complete"}
		// "Waiting" only when the downloads are queued; not with two layers.
		if !slices.Equal(st, want) {
			t.Errorf("layer %s progress %v, want %v", id, st, want)
		}
	}
	if n, err := s.Content.IngestCount(); err != nil || n != 0 {
		t.Errorf("ingest left behind: %d %v", n, err)
	}

	// Again: nothing downloaded, the image is up to date.
	before := reg.count("GET /v2/team/app/blobs/" + im.layers[0].Digest.String())
	log = &progressLog{}
	res, err = pull(t, s, c, name, &registrytypes.AuthConfig{Username: "alice", Password: "secret"}, log)
	if err != nil || res.Updated {
		t.Fatalf("second pull: %+v %v", res, err)
	}
	if after := reg.count("GET /v2/team/app/blobs/" + im.layers[0].Digest.String()); after != before {
		t.Errorf("layer fetched again")
	}
	if st := log.statuses(im.layers[0].Digest.Encoded()[:12]); !slices.Equal(st, []string{"Already exists"}) {
		t.Errorf("second pull progress %v", st)
	}

	// By digest.
	res, err = pull(t, s, c, reg.host()+"/team/app@"+im.index.Digest.String(), &registrytypes.AuthConfig{Username: "alice", Password: "secret"}, nil)
	if err != nil || res.Image.ID != im.config.Digest {
		t.Fatalf("pull by digest: %+v %v", res, err)
	}
}

func TestPullResumesBrokenBlob(t *testing.T) {
	for _, ignoreRange := range []bool{false, true} {
		reg := newFakeRegistry(t)
		reg.ignoreRng = ignoreRange
		im := reg.pushTestImage(t, "app", "latest")
		big := im.layers[1]
		reg.breakOnce[big.Digest] = int(big.Size / 2)
		s := openStore(t)
		res, err := pull(t, s, newClient(), reg.host()+"/app", nil, nil)
		if err != nil {
			t.Fatalf("ignore range %v: %v", ignoreRange, err)
		}
		if res.Image.ID != im.config.Digest {
			t.Errorf("image %s", res.Image.ID)
		}
		if want := "bytes=" + strconv.FormatInt(big.Size/2, 10) + "-"; len(reg.ranges) != 1 || reg.ranges[0] != want {
			t.Errorf("ignore range %v: Range headers %v, want [%s]", ignoreRange, reg.ranges, want)
		}
		if n := reg.count("GET /v2/app/blobs/" + big.Digest.String()); n != 2 {
			t.Errorf("blob GETs: %d, want 2", n)
		}
	}
}

func TestPullDigestMismatch(t *testing.T) {
	reg := newFakeRegistry(t)
	im := reg.pushTestImage(t, "app", "latest")
	// The registry serves other bytes under the layer's digest.
	bad := bytes.Clone(im.layerBytes[1])
	bad[len(bad)/2] ^= 0xff
	reg.mu.Lock()
	reg.blobs["app@"+im.layers[1].Digest.String()] = bad
	reg.mu.Unlock()
	s := openStore(t)
	_, err := pull(t, s, newClient(), reg.host()+"/app", nil, nil)
	if !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("pull: %v, want corrupt", err)
	}
	if ims, _ := s.List(); len(ims) != 0 {
		t.Errorf("images after a failed pull: %d", len(ims))
	}
	for _, d := range []digest.Digest{im.layers[0].Digest, im.layers[1].Digest, im.config.Digest} {
		if s.Content.Exists(d) {
			t.Errorf("blob %s kept after a failed pull", d)
		}
	}
	if n, _ := s.Content.IngestCount(); n != 0 {
		t.Errorf("ingest left behind: %d", n)
	}
	if ls, _ := s.Snaps.Layers(); len(ls) != 0 {
		t.Errorf("layers left behind: %d", len(ls))
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), "snapshots", "tmp"))
	if len(ents) != 0 {
		t.Errorf("staging left behind: %d", len(ents))
	}

	// A manifest whose bytes do not match the digest asked for.
	reg.mu.Lock()
	reg.manifests["app:"+im.manifest.Digest.String()] = fakeManifest{mediaType: ocispec.MediaTypeImageManifest, body: []byte(`{"schemaVersion":2,"config":{}}`)}
	reg.mu.Unlock()
	if _, err := pull(t, s, newClient(), reg.host()+"/app", nil, nil); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("manifest mismatch: %v, want corrupt", err)
	}
}

func TestPullErrors(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.addManifestBytes("old", "latest", "application/vnd.docker.distribution.manifest.v1+prettyjws", []byte(`{"schemaVersion":1,"fsLayers":[]}`))
	s := openStore(t)
	_, err := pull(t, s, newClient(), reg.host()+"/old", nil, nil)
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "schema 1") {
		t.Errorf("schema 1: %v", err)
	}
	_, err = pull(t, s, newClient(), reg.host()+"/nothing:here", nil, nil)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "manifest unknown") {
		t.Errorf("missing tag: %v", err)
	}
	// Artifacts: a config or a layer that is not an image's is refused before any
	// blob is fetched, and nothing is stored.
	layer := reg.addBlob("art", []byte("not a tar"))
	cfg := reg.addBlob("art", []byte("{}"))
	for name, m := range map[string]ocispec.Manifest{
		"config": {Config: ocispec.Descriptor{MediaType: "application/vnd.example.config.v1+json", Digest: cfg.Digest, Size: cfg.Size},
			Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: layer.Digest, Size: layer.Size}}},
		"layer": {Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cfg.Digest, Size: cfg.Size},
			Layers: []ocispec.Descriptor{{MediaType: "application/vnd.example.data.v1", Digest: layer.Digest, Size: layer.Size}}},
	} {
		m.SchemaVersion, m.MediaType = 2, ocispec.MediaTypeImageManifest
		reg.addManifest("art", name, ocispec.MediaTypeImageManifest, m)
		before := reg.count("GET /v2/art/blobs/" + cfg.Digest.String())
		_, err := pull(t, s, newClient(), reg.host()+"/art:"+name, nil, nil)
		if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "unsupported media type application/vnd.example.") {
			t.Errorf("artifact (%s): %v", name, err)
		}
		if n := reg.count("GET /v2/art/blobs/" + cfg.Digest.String()); n != before {
			t.Errorf("artifact (%s): its config was fetched", name)
		}
		if ims, _ := s.List(); len(ims) != 0 || s.Content.Exists(cfg.Digest) {
			t.Errorf("artifact (%s): %d images after the refusal, config stored %v", name, len(ims), s.Content.Exists(cfg.Digest))
		}
	}
	// A registry that is not there.
	_, err = pull(t, s, newClient(), "127.0.0.1:1/app", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("no registry: %v", err)
	}
}

func TestBlobGivesUp(t *testing.T) {
	reg := newFakeRegistry(t)
	d := reg.addBlob("app", bytes.Repeat([]byte("x"), 1000))
	ref, _ := image.ParseRef(reg.host() + "/app")
	c := registry.New(registry.Options{RetryDelay: time.Millisecond, Retries: 2})
	repo := c.Repository(ref, nil)
	rc, err := repo.Blob(context.Background(), ocispec.Descriptor{Digest: d.Digest, Size: 2000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil {
		t.Fatal("a short blob read to the end")
	}
	_, err = repo.Blob(context.Background(), ocispec.Descriptor{Digest: digest.FromString("missing"), Size: 1}, nil)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing blob: %v", err)
	}
}

func TestPushPrimitives(t *testing.T) {
	reg := newFakeRegistry(t)
	reg.tokenAuth = true
	ctx := context.Background()
	c := newClient()
	src, _ := image.ParseRef(reg.host() + "/base")
	dst, _ := image.ParseRef(reg.host() + "/team/app:v2")
	base, app := c.Repository(src, nil), c.Repository(dst, nil)

	blob := bytes.Repeat([]byte("blob data "), 1000)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	if ok, err := base.BlobExists(ctx, desc.Digest); err != nil || ok {
		t.Fatalf("exists before: %v %v", ok, err)
	}
	// Monolithic.
	up, err := base.StartUpload(ctx, desc.Digest, "")
	if err != nil || up.Mounted {
		t.Fatalf("start: %+v %v", up, err)
	}
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }
	if err := up.Finish(ctx, desc, open); err != nil {
		t.Fatal(err)
	}
	if ok, err := base.BlobExists(ctx, desc.Digest); err != nil || !ok {
		t.Fatalf("exists after: %v %v", ok, err)
	}
	// Cross-repository mount.
	up, err = app.StartUpload(ctx, desc.Digest, "base")
	if err != nil || !up.Mounted {
		t.Fatalf("mount: %+v %v", up, err)
	}
	if ok, _ := app.BlobExists(ctx, desc.Digest); !ok {
		t.Fatal("mounted blob missing")
	}
	if !slices.Contains(reg.scopes, "repository:base:pull") {
		t.Errorf("mount scopes %v", reg.scopes)
	}
	// Chunked.
	blob2 := bytes.Repeat([]byte("chunky "), 3000)
	desc2 := ocispec.Descriptor{Digest: digest.FromBytes(blob2), Size: int64(len(blob2))}
	up, err = app.StartUpload(ctx, desc2.Digest, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := up.FinishChunked(ctx, desc2, bytes.NewReader(blob2), 5000); err != nil {
		t.Fatal(err)
	}
	if n := reg.count("PATCH chunks"); n != 5 {
		t.Errorf("chunks: %d, want 5", n)
	}
	if ok, _ := app.BlobExists(ctx, desc2.Digest); !ok {
		t.Fatal("chunked blob missing")
	}
	// A wrong digest is refused.
	up, _ = app.StartUpload(ctx, desc2.Digest, "")
	if err := up.Finish(ctx, ocispec.Descriptor{Digest: digest.FromString("other"), Size: desc.Size}, open); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("wrong digest: %v", err)
	}
	// Manifest.
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`)
	d, err := app.PutManifest(ctx, "v2", ocispec.MediaTypeImageManifest, m)
	if err != nil || d != digest.FromBytes(m) {
		t.Fatalf("put manifest: %s %v", d, err)
	}
	got, b, err := app.Manifest(ctx, "v2")
	if err != nil || got.Digest != d || !bytes.Equal(b, m) || got.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("get manifest back: %+v %v", got, err)
	}
}
