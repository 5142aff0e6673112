package registry_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeRegistry is a small distribution-API server for the tests: manifests
// and blobs in memory, an optional token service, blobs that break once,
// uploads and mounts.
type fakeRegistry struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	blobs     map[string][]byte          // repo + "@" + digest -> bytes
	manifests map[string]fakeManifest    // repo + ":" + tag or digest
	uploads   map[string]*bytes.Buffer   // upload id -> data so far
	nextID    int                        // upload ids are never reused
	breakOnce map[digest.Digest]int      // blob -> bytes to send before cutting the first GET
	ignoreRng bool                       // answer Range requests with the whole blob
	ranges    []string                   // Range headers seen on blob GETs
	requests  map[string]int             // "METHOD path" -> count
	tokenAuth bool                       // require a bearer token from /token
	user      string                     // "user:password" the token service wants; "" for anyone
	scopes    []string                   // scopes asked of the token service
	tokens    map[string]map[string]bool // token -> scopes it grants
}

type fakeManifest struct {
	mediaType string
	body      []byte
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{t: t, blobs: map[string][]byte{}, manifests: map[string]fakeManifest{}, uploads: map[string]*bytes.Buffer{},
		breakOnce: map[digest.Digest]int{}, requests: map[string]int{}, tokens: map[string]map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// host is the registry's host:port (127.0.0.1, so HTTP is allowed).
func (f *fakeRegistry) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeRegistry) addBlob(repo string, b []byte) ocispec.Descriptor {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := digest.FromBytes(b)
	f.blobs[repo+"@"+d.String()] = b
	return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
}

func (f *fakeRegistry) addManifest(repo, tag, mediaType string, v any) ocispec.Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.addManifestBytes(repo, tag, mediaType, b)
}

func (f *fakeRegistry) addManifestBytes(repo, tag, mediaType string, b []byte) ocispec.Descriptor {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := digest.FromBytes(b)
	m := fakeManifest{mediaType: mediaType, body: b}
	f.manifests[repo+":"+d.String()] = m
	if tag != "" {
		f.manifests[repo+":"+tag] = m
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

func (f *fakeRegistry) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[key]
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests[r.Method+" "+r.URL.Path]++
	f.mu.Unlock()
	if r.URL.Path == "/token" {
		f.token(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v2/") {
		http.NotFound(w, r)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v2/")
	if rest == "" {
		if f.tokenAuth && !f.authorized(r, "") {
			f.challenge(w, "")
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	var repo, kind, ref string
	for _, k := range []string{"/manifests/", "/blobs/uploads/", "/blobs/"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			repo, kind, ref = rest[:i], strings.Trim(k, "/"), rest[i+len(k):]
			break
		}
	}
	if repo == "" {
		http.NotFound(w, r)
		return
	}
	scope := "repository:" + repo + ":pull"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		scope = "repository:" + repo + ":push"
	}
	if f.tokenAuth && !f.authorized(r, scope) {
		f.challenge(w, scope)
		return
	}
	switch kind {
	case "manifests":
		f.manifest(w, r, repo, ref)
	case "blobs":
		f.blob(w, r, repo, digest.Digest(ref))
	case "blobs/uploads":
		f.upload(w, r, repo, ref)
	}
}

func (f *fakeRegistry) challenge(w http.ResponseWriter, scope string) {
	h := fmt.Sprintf(`Bearer realm="%s/token",service="fake-registry"`, f.srv.URL)
	if scope != "" {
		h += `,scope="` + scope + `"`
	}
	w.Header().Set("WWW-Authenticate", h)
	apiError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
}

func (f *fakeRegistry) authorized(r *http.Request, scope string) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	granted, ok := f.tokens[tok]
	return ok && (scope == "" || granted[scope])
}

func (f *fakeRegistry) token(w http.ResponseWriter, r *http.Request) {
	if f.user != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u+":"+p != f.user {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"details": "incorrect username or password"})
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := "tok" + strconv.Itoa(len(f.tokens))
	granted := map[string]bool{}
	for _, s := range r.URL.Query()["scope"] {
		f.scopes = append(f.scopes, s)
		// "repository:name:pull,push" grants each action.
		if i := strings.LastIndex(s, ":"); i > 0 {
			for _, a := range strings.Split(s[i+1:], ",") {
				granted[s[:i+1]+a] = true
			}
		}
	}
	f.tokens[tok] = granted
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
}

func (f *fakeRegistry) manifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		f.mu.Lock()
		m, ok := f.manifests[repo+":"+ref]
		f.mu.Unlock()
		if !ok {
			apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
			return
		}
		w.Header().Set("Content-Type", m.mediaType)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(m.body).String())
		w.Write(m.body)
	case http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		d := f.addManifestBytes(repo, ref, r.Header.Get("Content-Type"), b)
		w.Header().Set("Docker-Content-Digest", d.Digest.String())
		w.WriteHeader(http.StatusCreated)
	}
}

func (f *fakeRegistry) blob(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) {
	f.mu.Lock()
	b, ok := f.blobs[repo+"@"+d.String()]
	cut, broken := f.breakOnce[d]
	delete(f.breakOnce, d)
	if rg := r.Header.Get("Range"); rg != "" && r.Method == http.MethodGet {
		f.ranges = append(f.ranges, rg)
	}
	ignore := f.ignoreRng
	f.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry")
		return
	}
	w.Header().Set("Docker-Content-Digest", d.String())
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		return
	}
	start := 0
	if rg, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok && !ignore {
		start, _ = strconv.Atoi(strings.TrimSuffix(rg, "-"))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(b)-1, len(b)))
		w.Header().Set("Content-Length", strconv.Itoa(len(b)-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	}
	if broken {
		w.Write(b[start:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cut the connection mid-body
	}
	w.Write(b[start:])
}

func (f *fakeRegistry) upload(w http.ResponseWriter, r *http.Request, repo, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && id == "":
		if m := r.URL.Query().Get("mount"); m != "" {
			if b, ok := f.blobs[r.URL.Query().Get("from")+"@"+m]; ok {
				f.blobs[repo+"@"+m] = b
				w.Header().Set("Location", "/v2/"+repo+"/blobs/"+m)
				w.WriteHeader(http.StatusCreated)
				return
			}
		}
		f.nextID++
		id = "u" + strconv.Itoa(f.nextID)
		f.uploads[id] = &bytes.Buffer{}
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id+"?state=x")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPatch:
		buf := f.uploads[id]
		if buf == nil {
			apiError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "no such upload")
			return
		}
		if cr := r.Header.Get("Content-Range"); cr != "" && !strings.HasPrefix(cr, strconv.Itoa(buf.Len())+"-") {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		io.Copy(buf, r.Body)
		f.requests["PATCH chunks"]++
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPut:
		buf := f.uploads[id]
		if buf == nil {
			apiError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "no such upload")
			return
		}
		io.Copy(buf, r.Body)
		d := digest.Digest(r.URL.Query().Get("digest"))
		if digest.FromBytes(buf.Bytes()) != d {
			apiError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content")
			return
		}
		f.blobs[repo+"@"+d.String()] = buf.Bytes()
		delete(f.uploads, id)
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// testImage is a two-layer image served under repo:tag through an index
// that also lists another platform and an attestation.
type testImage struct {
	index, manifest, config ocispec.Descriptor
	layers                  []ocispec.Descriptor
	layerBytes              [][]byte
}

func layerTar(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if strings.HasSuffix(name, "/") {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	return buf.Bytes()
}

func diffID(t *testing.T, gz []byte) digest.Digest {
	r, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	d, err := digest.FromReader(r)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *fakeRegistry) pushTestImage(t *testing.T, repo, tag string) testImage {
	var im testImage
	im.layerBytes = [][]byte{
		layerTar(t, map[string]string{"etc/": "", "etc/hello": "hello from layer one\n", "bin/": ""}),
		layerTar(t, map[string]string{"srv/": "", "srv/data": strings.Repeat("layer two ", 50000)}),
	}
	var diffIDs []digest.Digest
	for _, b := range im.layerBytes {
		d := f.addBlob(repo, b)
		d.MediaType = ocispec.MediaTypeImageLayerGzip
		im.layers = append(im.layers, d)
		diffIDs = append(diffIDs, diffID(t, b))
	}
	cfg, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/sh"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	im.config = f.addBlob(repo, cfg)
	im.config.MediaType = ocispec.MediaTypeImageConfig
	im.manifest = f.addManifest(repo, "", ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: im.config, Layers: im.layers})
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "s390x"
	}
	md := im.manifest
	md.Platform = &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	im.index = f.addManifest(repo, tag, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{
			{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("elsewhere"), Size: 10, Platform: &ocispec.Platform{OS: "linux", Architecture: other}},
			md,
			{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("attestation"), Size: 10, Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"},
				Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"}},
		}})
	return im
}
