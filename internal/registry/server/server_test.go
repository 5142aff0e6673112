package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"golang.org/x/crypto/bcrypt"
)

type env struct {
	t   *testing.T
	s   *Server
	srv *httptest.Server
	log *bytes.Buffer
}

func newEnv(t *testing.T, root string, opts ...func(*Options)) *env {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	logBuf := &bytes.Buffer{}
	o := Options{Root: root, Logger: slog.New(slog.NewTextHandler(logBuf, nil))}
	for _, f := range opts {
		f(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, s: s, srv: httptest.NewServer(s), log: logBuf}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
		e.s.Close()
		e.srv = nil
	}
}

type resp struct {
	*http.Response
	body []byte
}

// code is the first error code of an error body.
func (r resp) code() Code {
	var b errorBody
	if json.Unmarshal(r.body, &b) != nil || len(b.Errors) == 0 {
		return ""
	}
	return b.Errors[0].Code
}

func (e *env) do(method, path string, body []byte, hdr ...string) resp {
	e.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = e.srv.URL + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res, b}
}

func (e *env) expect(r resp, status int, code Code) {
	e.t.Helper()
	if r.StatusCode != status || (code != "" && r.code() != code) {
		e.t.Fatalf("%s %s: got %d %s, want %d %s", r.Request.Method, r.Request.URL, r.StatusCode, r.body, status, code)
	}
}

// pushBlob uploads b monolithically into repo.
func (e *env) pushBlob(repo string, b []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	e.expect(e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b), http.StatusCreated, "")
	return d
}

// pushImage pushes a config and a layer and returns an image manifest naming them.
func (e *env) pushImage(repo string, extra func(*ocispec.Manifest)) []byte {
	e.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("layer " + repo)
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: e.pushBlob(repo, cfg), Size: int64(len(cfg))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: e.pushBlob(repo, layer), Size: int64(len(layer))}},
	}
	m.SchemaVersion = 2
	if extra != nil {
		extra(&m)
	}
	b, _ := json.Marshal(m)
	return b
}

func (e *env) putManifest(repo, ref string, b []byte, mt string) resp {
	e.t.Helper()
	return e.do("PUT", "/v2/"+repo+"/manifests/"+ref, b, "Content-Type", mt)
}

func TestParseRoute(t *testing.T) {
	for p, want := range map[string]route{
		"/v2/":                                  {kind: "base"},
		"/v2/a/b/tags/list":                     {kind: "tags", name: "a/b"},
		"/v2/a/blobs/uploads/":                  {kind: "uploads", name: "a"},
		"/v2/a/blobs/uploads":                   {kind: "uploads", name: "a"},
		"/v2/a/blobs/uploads/123":               {kind: "upload", name: "a", ref: "123"},
		"/v2/a/blobs/sha256:1":                  {kind: "blob", name: "a", ref: "sha256:1"},
		"/v2/a/blobs/blobs/sha256:1":            {kind: "blob", name: "a/blobs", ref: "sha256:1"},
		"/v2/a/blobs/uploads/blobs/x":           {kind: "blob", name: "a/blobs/uploads", ref: "x"},
		"/v2/manifests/manifests/latest":        {kind: "manifest", name: "manifests", ref: "latest"},
		"/v2/a/referrers/sha256:1":              {kind: "referrers", name: "a", ref: "sha256:1"},
		"/v2/_catalog":                          {kind: "catalog"},
		"/v2/tags/list/manifests/tags/list/x/y": {},
	} {
		got, ok := parseRoute(p)
		if got != want || ok != (want.kind != "") {
			t.Errorf("%s: got %+v %v, want %+v", p, got, ok, want)
		}
	}
}

func TestPingAndAccessLog(t *testing.T) {
	e := newEnv(t, "")
	r := e.do("GET", "/v2/", nil)
	e.expect(r, 200, "")
	if r.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatal("no API version header")
	}
	e.expect(e.do("GET", "/v2/Bad_Name/tags/list", nil), 400, CodeNameInvalid)
	e.expect(e.do("GET", "/v3/", nil), 404, CodeUnsupported)
	e.expect(e.do("PATCH", "/v2/a/manifests/x", nil), 405, CodeUnsupported)
	if !strings.Contains(e.log.String(), `msg="registry request"`) || !strings.Contains(e.log.String(), "path=/v2/Bad_Name/tags/list status=400") {
		t.Fatalf("access log: %s", e.log.String())
	}
}

func TestBlobMonolithicGetRangeDelete(t *testing.T) {
	e := newEnv(t, "")
	data := []byte("0123456789abcdef")
	d := e.pushBlob("r", data)

	r := e.do("GET", "/v2/r/blobs/"+d.String(), nil)
	e.expect(r, 200, "")
	if !bytes.Equal(r.body, data) || r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("get: %q %v", r.body, r.Header)
	}
	r = e.do("HEAD", "/v2/r/blobs/"+d.String(), nil)
	if r.StatusCode != 200 || r.ContentLength != int64(len(data)) || len(r.body) != 0 {
		t.Fatalf("head: %d %d", r.StatusCode, r.ContentLength)
	}
	r = e.do("GET", "/v2/r/blobs/"+d.String(), nil, "Range", "bytes=2-5")
	if r.StatusCode != 206 || string(r.body) != "2345" || r.Header.Get("Content-Range") != "bytes 2-5/16" {
		t.Fatalf("range: %d %q %v", r.StatusCode, r.body, r.Header)
	}
	e.expect(e.do("GET", "/v2/r/blobs/"+d.String(), nil, "Range", "bytes=100-200"), 416, "")
	// Repositories are separate.
	e.expect(e.do("GET", "/v2/other/blobs/"+d.String(), nil), 404, CodeBlobUnknown)
	e.expect(e.do("GET", "/v2/r/blobs/sha256:nothex", nil), 400, CodeDigestInvalid)

	e.expect(e.do("DELETE", "/v2/r/blobs/"+d.String(), nil), 202, "")
	e.expect(e.do("HEAD", "/v2/r/blobs/"+d.String(), nil), 404, "")
	e.expect(e.do("DELETE", "/v2/r/blobs/"+d.String(), nil), 404, CodeBlobUnknown)
}

func TestBlobDigestMismatchLeavesNothing(t *testing.T) {
	e := newEnv(t, "")
	data := []byte("the real content")
	claimed := digest.FromString("something else")
	e.expect(e.do("POST", "/v2/r/blobs/uploads/?digest="+claimed.String(), data), 400, CodeDigestInvalid)
	e.expect(e.do("HEAD", "/v2/r/blobs/"+claimed.String(), nil), 404, "")
	e.expect(e.do("HEAD", "/v2/r/blobs/"+digest.FromBytes(data).String(), nil), 404, "")
	if e.s.content.Exists(claimed) || e.s.content.Exists(digest.FromBytes(data)) {
		t.Fatal("a blob that failed verification is stored")
	}
	if n, _ := e.s.content.IngestCount(); n != 0 {
		t.Fatalf("%d ingest files left", n)
	}
	e.expect(e.do("POST", "/v2/r/blobs/uploads/?digest=sha256:short", data), 400, CodeDigestInvalid)

	// The same through a session: the upload is removed.
	r := e.do("POST", "/v2/r/blobs/uploads/", nil)
	e.expect(r, 202, "")
	loc := r.Header.Get("Location")
	e.expect(e.do("PUT", loc+"?digest="+claimed.String(), data), 400, CodeDigestInvalid)
	e.expect(e.do("GET", loc, nil), 404, CodeBlobUploadUnknown)
	// A PUT without digest is refused and keeps the upload.
	r = e.do("POST", "/v2/r/blobs/uploads/", nil)
	loc = r.Header.Get("Location")
	e.expect(e.do("PUT", loc, data), 400, CodeDigestInvalid)
	e.expect(e.do("GET", loc, nil), 204, "")
}

func testChunked(t *testing.T, alg digest.Algorithm) {
	e := newEnv(t, "")
	data := bytes.Repeat([]byte("chunky data "), 300)
	d := alg.FromBytes(data)
	r := e.do("POST", "/v2/a/b/blobs/uploads/", nil)
	e.expect(r, 202, "")
	loc := r.Header.Get("Location")
	if r.Header.Get("Docker-Upload-UUID") == "" || r.Header.Get("Range") != "0-0" {
		t.Fatalf("post headers: %v", r.Header)
	}
	rng := func(a, b int) string { return fmt.Sprintf("%d-%d", a, b) }
	r = e.do("PATCH", loc, data[:1000], "Content-Range", rng(0, 999), "Content-Type", "application/octet-stream")
	e.expect(r, 202, "")
	if r.Header.Get("Range") != "0-999" {
		t.Fatalf("range after chunk: %q", r.Header.Get("Range"))
	}
	loc = r.Header.Get("Location")
	// Out of order, overlapping, inconsistent: 416 with where to resume.
	for _, cr := range []string{rng(2000, 2999), rng(500, 1499), rng(1000, 1001), "garbage"} {
		r = e.do("PATCH", loc, data[1000:2000], "Content-Range", cr)
		e.expect(r, 416, CodeBlobUploadInvalid)
		if r.Header.Get("Range") != "0-999" || r.Header.Get("Location") == "" {
			t.Fatalf("416 headers: %v", r.Header)
		}
	}
	r = e.do("GET", loc, nil)
	e.expect(r, 204, "")
	if r.Header.Get("Range") != "0-999" {
		t.Fatalf("status range %q", r.Header.Get("Range"))
	}
	// Streamed chunk without Content-Range.
	e.expect(e.do("PATCH", loc, data[1000:2000]), 202, "")
	// Last chunk with the PUT.
	r = e.do("PUT", loc+"?digest="+d.String(), data[2000:], "Content-Range", rng(2000, len(data)-1))
	e.expect(r, 201, "")
	if r.Header.Get("Docker-Content-Digest") != d.String() || r.Header.Get("Location") != "/v2/a/b/blobs/"+d.String() {
		t.Fatalf("put headers: %v", r.Header)
	}
	r = e.do("GET", "/v2/a/b/blobs/"+d.String(), nil)
	if !bytes.Equal(r.body, data) {
		t.Fatal("blob differs")
	}
	e.expect(e.do("GET", loc, nil), 404, CodeBlobUploadUnknown)
	if ents, _ := os.ReadDir(e.s.uploads); len(ents) != 0 {
		t.Fatalf("upload files left: %v", ents)
	}
}

func TestBlobChunkedSHA256(t *testing.T) { testChunked(t, digest.SHA256) }
func TestBlobChunkedSHA512(t *testing.T) { testChunked(t, digest.SHA512) }

func TestUploadCancelAndUnknown(t *testing.T) {
	e := newEnv(t, "")
	r := e.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := r.Header.Get("Location")
	e.expect(e.do("PATCH", loc, []byte("abc")), 202, "")
	// Another repository's upload is unknown here.
	e.expect(e.do("PATCH", strings.Replace(loc, "/v2/r/", "/v2/other/", 1), []byte("x")), 404, CodeBlobUploadUnknown)
	e.expect(e.do("DELETE", loc, nil), 204, "")
	e.expect(e.do("PATCH", loc, []byte("x")), 404, CodeBlobUploadUnknown)
	e.expect(e.do("PUT", loc+"?digest="+digest.FromString("abc").String(), nil), 404, CodeBlobUploadUnknown)
	e.expect(e.do("DELETE", loc, nil), 404, CodeBlobUploadUnknown)
	e.expect(e.do("GET", "/v2/r/blobs/uploads/../../etc", nil), 404, "")
	if ents, _ := os.ReadDir(e.s.uploads); len(ents) != 0 {
		t.Fatalf("upload files left: %v", ents)
	}
}

// An upload survives a restart of the server (or its kill); what a killed
// server was writing is never visible as a blob.
func TestUploadAcrossRestartAndCrashLeftovers(t *testing.T) {
	root := t.TempDir()
	e := newEnv(t, root)
	data := []byte("resumable upload content")
	d := digest.FromBytes(data)
	r := e.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := r.Header.Get("Location")
	e.expect(e.do("PATCH", loc, data[:10], "Content-Range", "0-9"), 202, "")
	e.close()

	// What a kill leaves: a half-written blob in the content store's ingest
	// directory and an upload file without a record.
	os.WriteFile(filepath.Join(root, "content", "ingest", "deadbeef"), data[:5], 0o600)
	orphan := filepath.Join(root, "uploads", "orphan")
	os.WriteFile(orphan, data, 0o600)
	mustOld(t, orphan)

	e2 := newEnv(t, root)
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatal("orphan upload file kept")
	}
	if n, _ := e2.s.content.IngestCount(); n != 0 {
		t.Fatal("half-written blob kept")
	}
	e2.expect(e2.do("GET", "/v2/r/blobs/"+d.String(), nil), 404, CodeBlobUnknown)
	r = e2.do("GET", loc, nil)
	e2.expect(r, 204, "")
	if r.Header.Get("Range") != "0-9" {
		t.Fatalf("range after restart: %q", r.Header.Get("Range"))
	}
	e2.expect(e2.do("PUT", loc+"?digest="+d.String(), data[10:], "Content-Range", fmt.Sprintf("10-%d", len(data)-1)), 201, "")
	e2.expect(e2.do("HEAD", "/v2/r/blobs/"+d.String(), nil), 200, "")
}

// mustOld backdates a file so that a purge treats it as stale.
func mustOld(t *testing.T, p string) {
	t.Helper()
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

func TestMount(t *testing.T) {
	e := newEnv(t, "")
	d := e.pushBlob("src", []byte("shared layer"))
	r := e.do("POST", "/v2/dst/blobs/uploads/?mount="+d.String()+"&from=src", nil)
	e.expect(r, 201, "")
	if r.Header.Get("Location") != "/v2/dst/blobs/"+d.String() {
		t.Fatalf("mount location %q", r.Header.Get("Location"))
	}
	e.expect(e.do("HEAD", "/v2/dst/blobs/"+d.String(), nil), 200, "")
	// Anonymous mount: any repository holding it.
	e.expect(e.do("POST", "/v2/anon/blobs/uploads/?mount="+d.String(), nil), 201, "")
	// A blob the source does not hold: a new upload session instead.
	missing := digest.FromString("missing")
	r = e.do("POST", "/v2/dst/blobs/uploads/?mount="+missing.String()+"&from=src", nil)
	e.expect(r, 202, "")
	if !strings.Contains(r.Header.Get("Location"), "/v2/dst/blobs/uploads/") {
		t.Fatalf("fallback location %q", r.Header.Get("Location"))
	}
	e.expect(e.do("POST", "/v2/nothere/blobs/uploads/?mount="+d.String()+"&from=nosuchrepo", nil), 202, "")
}

func TestManifestPushPullAndErrors(t *testing.T) {
	e := newEnv(t, "")
	m := e.pushImage("app", nil)
	d := digest.FromBytes(m)

	r := e.putManifest("app", "v1", m, ocispec.MediaTypeImageManifest)
	e.expect(r, 201, "")
	if r.Header.Get("Docker-Content-Digest") != d.String() || r.Header.Get("Location") != "/v2/app/manifests/"+d.String() {
		t.Fatalf("put headers %v", r.Header)
	}
	for _, ref := range []string{"v1", d.String()} {
		r = e.do("GET", "/v2/app/manifests/"+ref, nil)
		e.expect(r, 200, "")
		if !bytes.Equal(r.body, m) || r.Header.Get("Content-Type") != ocispec.MediaTypeImageManifest || r.Header.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("get %s: %v", ref, r.Header)
		}
		r = e.do("HEAD", "/v2/app/manifests/"+ref, nil)
		if r.StatusCode != 200 || r.ContentLength != int64(len(m)) {
			t.Fatalf("head %s: %d", ref, r.StatusCode)
		}
	}
	// By digest, with sha512.
	d512 := digest.SHA512.FromBytes(m)
	e.expect(e.putManifest("app", d512.String(), m, ocispec.MediaTypeImageManifest), 201, "")
	r = e.do("GET", "/v2/app/manifests/"+d512.String(), nil)
	if r.StatusCode != 200 || r.Header.Get("Docker-Content-Digest") != d512.String() {
		t.Fatalf("sha512 get: %d %v", r.StatusCode, r.Header)
	}

	// Errors.
	e.expect(e.putManifest("app", digest.FromString("x").String(), m, ocispec.MediaTypeImageManifest), 400, CodeDigestInvalid)
	e.expect(e.putManifest("app", "sha256:baddigeststring", m, ocispec.MediaTypeImageManifest), 400, CodeDigestInvalid)
	e.expect(e.putManifest("app", "bad:tag", m, ocispec.MediaTypeImageManifest), 400, CodeDigestInvalid)
	e.expect(e.putManifest("app", "-bad", m, ocispec.MediaTypeImageManifest), 400, codeTagInvalid)
	e.expect(e.putManifest("app", "v2", []byte("{not json"), ocispec.MediaTypeImageManifest), 400, CodeManifestInvalid)
	e.expect(e.putManifest("app", "v2", []byte(`{"schemaVersion":1}`), ocispec.MediaTypeImageManifest), 400, CodeManifestInvalid)
	e.expect(e.putManifest("app", "v2", m, "application/vnd.example.unknown+json"), 400, CodeManifestInvalid)
	e.expect(e.putManifest("app", "v2", m, ocispec.MediaTypeImageIndex), 400, CodeManifestInvalid) // mediaType field disagrees
	missing := e.pushImage("app", func(m *ocispec.Manifest) {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("never pushed"), Size: 12})
	})
	r = e.putManifest("app", "v2", missing, ocispec.MediaTypeImageManifest)
	e.expect(r, 400, CodeManifestBlobUnknown)
	if !strings.Contains(string(r.body), digest.FromString("never pushed").String()) {
		t.Fatalf("error does not name the missing blob: %s", r.body)
	}
	// Non-distributable layers need not be pushed.
	nd := e.pushImage("app", func(m *ocispec.Manifest) {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Digest: digest.FromString("foreign"), Size: 7, URLs: []string{"https://example.com/x"}})
	})
	e.expect(e.putManifest("app", "nd", nd, ocispec.MediaTypeImageManifest), 201, "")
	// Data fields are checked.
	bad := e.pushImage("app", func(m *ocispec.Manifest) { m.Config.Data = []byte("not it") })
	e.expect(e.putManifest("app", "data", bad, ocispec.MediaTypeImageManifest), 400, CodeManifestInvalid)
	// An index must name manifests the repository holds.
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("nope"), Size: 3}}}
	idx.SchemaVersion = 2
	ib, _ := json.Marshal(idx)
	e.expect(e.putManifest("app", "idx", ib, ocispec.MediaTypeImageIndex), 400, CodeManifestBlobUnknown)
	idx.Manifests[0] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(m))}
	ib, _ = json.Marshal(idx)
	e.expect(e.putManifest("app", "idx", ib, ocispec.MediaTypeImageIndex), 201, "")

	e.expect(e.do("GET", "/v2/app/manifests/nosuchtag", nil), 404, CodeManifestUnknown)
	e.expect(e.do("GET", "/v2/app/manifests/"+digest.FromString("x").String(), nil), 404, CodeManifestUnknown)
	e.expect(e.do("GET", "/v2/nosuchrepo/manifests/latest", nil), 404, CodeNameUnknown)
	e.expect(e.do("GET", "/v2/app/manifests/sha256:baddigeststring", nil), 400, CodeDigestInvalid)

	// Too large.
	e.s.opts.MaxManifestSize = 10
	e.expect(e.putManifest("app", "big", m, ocispec.MediaTypeImageManifest), 413, CodeSizeInvalid)
}

func TestManifestAndTagDelete(t *testing.T) {
	e := newEnv(t, "")
	m := e.pushImage("app", nil)
	d := digest.FromBytes(m)
	e.expect(e.putManifest("app", "a", m, ocispec.MediaTypeImageManifest), 201, "")
	e.expect(e.putManifest("app", "b", m, ocispec.MediaTypeImageManifest), 201, "")
	e.expect(e.do("DELETE", "/v2/app/manifests/a", nil), 202, "")
	e.expect(e.do("HEAD", "/v2/app/manifests/a", nil), 404, "")
	e.expect(e.do("HEAD", "/v2/app/manifests/b", nil), 200, "")
	e.expect(e.do("DELETE", "/v2/app/manifests/a", nil), 404, CodeManifestUnknown)
	e.expect(e.do("DELETE", "/v2/app/manifests/"+d.String(), nil), 202, "")
	e.expect(e.do("HEAD", "/v2/app/manifests/b", nil), 404, "") // its tags go with it
	e.expect(e.do("HEAD", "/v2/app/manifests/"+d.String(), nil), 404, "")
	e.expect(e.do("DELETE", "/v2/app/manifests/"+d.String(), nil), 404, CodeManifestUnknown)
	e.expect(e.do("DELETE", "/v2/none/manifests/x", nil), 404, CodeNameUnknown)
}

func TestTagsListPagination(t *testing.T) {
	e := newEnv(t, "")
	m := e.pushImage("app", nil)
	for _, tag := range []string{"c", "a", "e", "b", "d"} {
		e.expect(e.putManifest("app", tag, m, ocispec.MediaTypeImageManifest), 201, "")
	}
	type tagList struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	get := func(q string) (tagList, resp) {
		r := e.do("GET", "/v2/app/tags/list"+q, nil)
		e.expect(r, 200, "")
		var tl tagList
		json.Unmarshal(r.body, &tl)
		return tl, r
	}
	tl, _ := get("")
	if strings.Join(tl.Tags, ",") != "a,b,c,d,e" || tl.Name != "app" {
		t.Fatalf("all: %+v", tl)
	}
	tl, r := get("?n=2")
	if strings.Join(tl.Tags, ",") != "a,b" || r.Header.Get("Link") != `</v2/app/tags/list?last=b&n=2>; rel="next"` {
		t.Fatalf("n=2: %+v %q", tl, r.Header.Get("Link"))
	}
	tl, r = get("?n=2&last=d")
	if strings.Join(tl.Tags, ",") != "e" || r.Header.Get("Link") != "" {
		t.Fatalf("last=d: %+v %q", tl, r.Header.Get("Link"))
	}
	tl, _ = get("?last=bb")
	if strings.Join(tl.Tags, ",") != "c,d,e" {
		t.Fatalf("last=bb: %+v", tl)
	}
	tl, _ = get("?n=0")
	if tl.Tags == nil || len(tl.Tags) != 0 {
		t.Fatalf("n=0: %+v", tl)
	}
	e.expect(e.do("GET", "/v2/app/tags/list?n=-1", nil), 400, CodeUnsupported)
	e.expect(e.do("GET", "/v2/none/tags/list", nil), 404, CodeNameUnknown)

	r = e.do("GET", "/v2/_catalog", nil)
	if !strings.Contains(string(r.body), `"app"`) {
		t.Fatalf("catalog: %s", r.body)
	}
}

func TestReferrers(t *testing.T) {
	e := newEnv(t, "")
	subj := e.pushImage("app", nil)
	sd := digest.FromBytes(subj)
	e.expect(e.putManifest("app", "v1", subj, ocispec.MediaTypeImageManifest), 201, "")
	empty := e.pushBlob("app", []byte("{}"))
	art := func(at, note string) []byte {
		m := ocispec.Manifest{
			MediaType:    ocispec.MediaTypeImageManifest,
			ArtifactType: at,
			Config:       ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: empty, Size: 2},
			Layers:       []ocispec.Descriptor{},
			Subject:      &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: sd, Size: int64(len(subj))},
			Annotations:  map[string]string{"note": note},
		}
		m.SchemaVersion = 2
		b, _ := json.Marshal(m)
		return b
	}
	sig, sbom := art("application/vnd.example.sig", "s"), art("application/vnd.example.sbom", "b")
	for _, b := range [][]byte{sig, sbom} {
		r := e.putManifest("app", digest.FromBytes(b).String(), b, ocispec.MediaTypeImageManifest)
		e.expect(r, 201, "")
		if r.Header.Get("OCI-Subject") != sd.String() {
			t.Fatalf("no OCI-Subject: %v", r.Header)
		}
	}
	list := func(q string) (ocispec.Index, resp) {
		r := e.do("GET", "/v2/app/referrers/"+sd.String()+q, nil)
		e.expect(r, 200, "")
		if r.Header.Get("Content-Type") != ocispec.MediaTypeImageIndex {
			t.Fatalf("content type %q", r.Header.Get("Content-Type"))
		}
		var idx ocispec.Index
		json.Unmarshal(r.body, &idx)
		return idx, r
	}
	idx, _ := list("")
	if len(idx.Manifests) != 2 || idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("referrers: %+v", idx)
	}
	idx, r := list("?artifactType=application/vnd.example.sbom")
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.FromBytes(sbom) || idx.Manifests[0].Annotations["note"] != "b" ||
		idx.Manifests[0].Size != int64(len(sbom)) || r.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered: %+v %v", idx, r.Header)
	}
	// A subject that does not exist (yet) has an empty list, not a 404.
	r = e.do("GET", "/v2/app/referrers/"+digest.FromString("nothing").String(), nil)
	e.expect(r, 200, "")
	if !strings.Contains(string(r.body), `"manifests":[]`) {
		t.Fatalf("empty referrers: %s", r.body)
	}
	e.expect(e.do("GET", "/v2/app/referrers/sha256:bad", nil), 400, CodeDigestInvalid)
	e.expect(e.do("DELETE", "/v2/app/manifests/"+digest.FromBytes(sig).String(), nil), 202, "")
	if idx, _ = list(""); len(idx.Manifests) != 1 {
		t.Fatalf("after delete: %+v", idx)
	}
}

func TestGC(t *testing.T) {
	e := newEnv(t, "")
	m := e.pushImage("app", nil)
	e.expect(e.putManifest("app", "v1", m, ocispec.MediaTypeImageManifest), 201, "")
	var manifest ocispec.Manifest
	json.Unmarshal(m, &manifest)
	loose := e.pushBlob("app", []byte("a blob nothing will reference"))
	kept := e.pushBlob("app", []byte("a blob still linked"))
	// Unlinking a layer that the manifest names does not lose it.
	e.expect(e.do("DELETE", "/v2/app/blobs/"+manifest.Layers[0].Digest.String(), nil), 202, "")
	e.expect(e.do("DELETE", "/v2/app/blobs/"+loose.String(), nil), 202, "")
	// A stale upload.
	r := e.do("POST", "/v2/app/blobs/uploads/", nil)
	id := r.Header.Get("Docker-Upload-UUID")
	mustOld(t, filepath.Join(e.s.uploads, id))

	st, err := e.s.GC(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 1 || st.Uploads != 1 {
		t.Fatalf("gc: %+v", st)
	}
	if e.s.content.Exists(loose) {
		t.Fatal("unreferenced blob kept")
	}
	for _, d := range []digest.Digest{kept, manifest.Config.Digest, manifest.Layers[0].Digest, digest.FromBytes(m)} {
		if !e.s.content.Exists(d) {
			t.Fatalf("referenced blob %s removed", d)
		}
	}
	e.expect(e.do("GET", "/v2/app/manifests/v1", nil), 200, "")
	// Deleting the manifest makes what only it kept collectable (the
	// manifest and the unlinked layer; the config is still linked).
	e.expect(e.do("DELETE", "/v2/app/manifests/v1", nil), 202, "")
	e.expect(e.do("DELETE", "/v2/app/manifests/"+digest.FromBytes(m).String(), nil), 202, "")
	if st, err = e.s.GC(context.Background()); err != nil || st.Blobs != 2 || e.s.content.Exists(manifest.Layers[0].Digest) {
		t.Fatalf("gc after delete: %+v %v", st, err)
	}
}

func TestBasicAuth(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(pw, []byte("# users\nalice:$2y$05$fakehashfortests\n"), 0o600)
	real := filepath.Join(t.TempDir(), "htpasswd-bcrypt")
	hash, _ := bcrypt.GenerateFromPassword([]byte("secret"), 4)
	os.WriteFile(real, []byte("bob:"+string(hash)+"\n"), 0o600)
	if hp, err := LoadHtpasswd(real, nil); err != nil {
		t.Fatalf("load a bcrypt htpasswd: %v", err)
	} else if hp.verify([]byte(hp.users["bob"]), []byte("secret")) != nil || hp.verify([]byte(hp.users["bob"]), []byte("wrong")) == nil {
		t.Error("bcrypt verification does not tell the right password from a wrong one")
	}
	fake := func(hash, password []byte) error {
		if string(password) == "secret" {
			return nil
		}
		return ErrNoCredentials
	}
	h, err := LoadHtpasswd(pw, fake)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pw, []byte("bob:{SHA}abc\n"), 0o600)
	if _, err := LoadHtpasswd(pw, fake); err == nil {
		t.Fatal("non-bcrypt hash accepted")
	}
	e := newEnv(t, "", func(o *Options) { o.Auth = h })
	r := e.do("GET", "/v2/", nil)
	e.expect(r, 401, CodeUnauthorized)
	if r.Header.Get("WWW-Authenticate") != `Basic realm="berth registry"` {
		t.Fatalf("challenge %q", r.Header.Get("WWW-Authenticate"))
	}
	u := strings.Replace(e.srv.URL, "http://", "http://alice:wrong@", 1)
	e.expect(e.do("GET", u+"/v2/", nil), 401, CodeUnauthorized)
	u = strings.Replace(e.srv.URL, "http://", "http://alice:secret@", 1)
	e.expect(e.do("GET", u+"/v2/", nil), 200, "")
	if !strings.Contains(e.log.String(), "user=alice") {
		t.Fatal("access log does not name the user")
	}
}
