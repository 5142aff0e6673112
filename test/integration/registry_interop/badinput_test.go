package registryinterop_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
)

// serverManifest is the manifest repo:ref as the server has it.
func serverManifest(t *testing.T, s *server, repo, ref string) ociManifest {
	t.Helper()
	r := s.Do("GET", "/v2/"+repo+"/manifests/"+ref, nil, "Accept", manifestAccept)
	var m ociManifest
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &m) != nil {
		t.Fatalf("GET manifest %s:%s: %s", repo, ref, r)
	}
	return m
}

// uploadBlob stores b in repo with a monolithic upload (POST ?digest=) and returns its
// digest.
func uploadBlob(t *testing.T, s *server, repo string, b []byte) string {
	t.Helper()
	d := sha256Digest(b)
	if r := s.Do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d, b, "Content-Type", "application/octet-stream"); r.Status != http.StatusCreated {
		t.Fatalf("upload blob %s to %s: %s", d, repo, r)
	}
	return d
}

// wantError checks that r is a spec error answer with status and code.
func wantError(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	if r.Status != status || !slices.Equal(r.Codes(), []string{code}) {
		t.Errorf("%s: %s, want %d %s", what, r, status, code)
	}
}

// unchanged checks that berthd's images and image store are as they were (before), and
// that the store holds no unfinished write.
func unchanged(t *testing.T, d *berthtest.Daemon, imagesBefore string, before storeState) {
	t.Helper()
	if got := images(d); got != imagesBefore {
		t.Errorf("berthd's images changed:\nbefore:\n%s\nafter:\n%s", imagesBefore, got)
	}
	after := berthStore(d)
	if !slices.Equal(after.Blobs, before.Blobs) {
		t.Errorf("berthd's content store changed:\nbefore: %v\nafter:  %v", before.Blobs, after.Blobs)
	}
	if len(after.Ingest) > 0 {
		t.Errorf("berthd's content store keeps unfinished writes: %v", after.Ingest)
	}
}

// largestBlob is the digest and size of the largest blob in berthd's content store.
func largestBlob(d *berthtest.Daemon) (string, int64) {
	var best string
	var size int64
	for name, n := range dirSizes(filepath.Join(d.DataRoot, "image", "content", "blobs", "sha256")) {
		if n > size {
			best, size = "sha256:"+name, n
		}
	}
	return best, size
}

// startPush starts `docker push ref` (bounded by two minutes) with its output in buffers.
func startPush(t *testing.T, d *berthtest.Daemon, ref string) (*exec.Cmd, *bytes.Buffer, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := d.Cmd(ctx, "push", ref)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	return cmd, &out, cancel
}

// awaitIngest waits until the server is writing a blob and has at least n bytes of it.
func awaitIngest(t *testing.T, s *server, n int64, exited func() bool) {
	t.Helper()
	ok := waitFor(60*time.Second, func() bool {
		for _, size := range s.Ingest() {
			if size >= n {
				return true
			}
		}
		return exited()
	})
	if !ok || exited() {
		t.Fatalf("the push never reached %d bytes of a blob on the server (exited: %v)", n, exited())
	}
}

// TestBadInput: what goes wrong between berthd and a registry gets the spec's error codes
// and clear messages, and leaves nothing half-written visible on either side.
func TestBadInput(t *testing.T) {
	requireTools(t)
	d := berthtest.Start(t, berthtest.Options{})
	s := startServer(t, d, 5004, "")

	// A layer the server no longer has: the pull fails naming it, berthd keeps nothing.
	t.Run("MissingBlob", func(t *testing.T) {
		ref := s.Addr + "/bad/missing:v1"
		importImage(t, d, ref, tarFile{Name: "missing", Data: []byte("a layer that goes missing\n")})
		push(t, d, ref)
		layer := serverManifest(t, s, "bad/missing", "v1").Layers[0].Digest
		d.Must("rmi", ref)
		imgs, store := images(d), berthStore(d)
		if slices.Contains(store.Blobs, layer) {
			t.Fatalf("rmi kept the layer blob %s: the pull would not fetch it", layer)
		}
		if r := s.Do("DELETE", "/v2/bad/missing/blobs/"+layer, nil); r.Status != http.StatusAccepted {
			t.Fatalf("DELETE blob: %s", r)
		}
		wantError(t, "GET the deleted blob", s.Do("GET", "/v2/bad/missing/blobs/"+layer, nil), http.StatusNotFound, "BLOB_UNKNOWN")
		_, errOut, code := d.Docker("pull", ref)
		t.Logf("pull with a missing blob: exit %d: %s", code, strings.TrimSpace(errOut))
		if code != 1 || !strings.Contains(errOut, "blob unknown") || !strings.Contains(errOut, layer) {
			t.Errorf("pull: exit %d, want 1 and \"blob unknown\" naming %s:\n%s", code, layer, errOut)
		}
		unchanged(t, d, imgs, store)
	})

	// A config blob changed on the server's disk (same size): berthd's digest check
	// refuses it and keeps nothing.
	t.Run("CorruptBlob", func(t *testing.T) {
		ref := s.Addr + "/bad/corrupt:v1"
		importImage(t, d, ref, tarFile{Name: "corrupt", Data: []byte("a config that gets corrupted\n")})
		push(t, d, ref)
		config := serverManifest(t, s, "bad/corrupt", "v1").Config.Digest
		d.Must("rmi", ref)
		imgs, store := images(d), berthStore(d)
		path := filepath.Join(s.Root, "content", "blobs", "sha256", strings.TrimPrefix(config, "sha256:"))
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Contains(b, []byte(`["sh"]`)) {
			t.Fatalf("the server's config blob: %v\n%s", err, b)
		}
		if err := os.WriteFile(path, bytes.Replace(b, []byte(`["sh"]`), []byte(`["sx"]`), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := d.Docker("pull", ref)
		t.Logf("pull with a corrupted config: exit %d: %s", code, strings.TrimSpace(errOut))
		if code != 1 || !strings.Contains(errOut, config) || !strings.Contains(errOut, "digest") {
			t.Errorf("pull of a corrupted config: exit %d, want 1 and a digest error naming %s:\n%s", code, config, errOut)
		}
		unchanged(t, d, imgs, store)
	})

	// Uploads whose bytes do not match the digest: 400 DIGEST_INVALID, nothing visible.
	t.Run("DigestMismatchOnUpload", func(t *testing.T) {
		data := []byte("the bytes that were sent\n")
		other := sha256Digest([]byte("the bytes that were announced\n"))
		actual := sha256Digest(data)
		before := s.Ingest()

		// Monolithic: POST ?digest=.
		wantError(t, "POST ?digest= with other bytes", s.Do("POST", "/v2/bad/upload/blobs/uploads/?digest="+other, data), http.StatusBadRequest, "DIGEST_INVALID")

		// A session: POST, PATCH, PUT ?digest=.
		r := s.Do("POST", "/v2/bad/upload/blobs/uploads/", nil)
		loc := r.Header.Get("Location")
		if r.Status != http.StatusAccepted || loc == "" {
			t.Fatalf("POST upload: %s", r)
		}
		if r := s.Do("PATCH", loc, data, "Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("0-%d", len(data)-1)); r.Status != http.StatusAccepted {
			t.Fatalf("PATCH: %s", r)
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		wantError(t, "PUT ?digest= of other bytes", s.Do("PUT", loc+sep+"digest="+other, nil), http.StatusBadRequest, "DIGEST_INVALID")
		// The session is closed: what was sent is not kept for another try.
		wantError(t, "GET the upload after the mismatch", s.Do("GET", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")

		// A malformed digest.
		r = s.Do("POST", "/v2/bad/upload/blobs/uploads/", nil)
		wantError(t, "PUT ?digest=sha256:xyz", s.Do("PUT", r.Header.Get("Location")+sep+"digest=sha256:xyz", data), http.StatusBadRequest, "DIGEST_INVALID")
		s.Do("DELETE", r.Header.Get("Location"), nil)

		for _, dg := range []string{other, actual} {
			if s.HasBlob("bad/upload", dg) || s.BlobStored(dg) {
				t.Errorf("blob %s is visible or stored after a refused upload", dg)
			}
		}
		if got := s.Ingest(); len(got) > len(before) {
			t.Errorf("the server keeps unfinished writes: %v", got)
		}
	})

	// A manifest naming blobs the repository lacks: 400 MANIFEST_BLOB_UNKNOWN naming the
	// blob; nothing is tagged.
	t.Run("ManifestNamesMissingBlob", func(t *testing.T) {
		cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + sha256Digest([]byte("layer")) + `"]}}`)
		config := uploadBlob(t, s, "bad/manifest", cfg)
		missing := sha256Digest([]byte("a layer never uploaded"))
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":22}]}`,
			config, len(cfg), missing)
		r := s.Do("PUT", "/v2/bad/manifest/manifests/v1", []byte(m), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
		wantError(t, "PUT a manifest naming a missing layer", r, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
		if !strings.Contains(string(r.Body), missing) {
			t.Errorf("the error does not name the missing blob %s: %s", missing, r)
		}
		wantError(t, "GET the refused manifest's tag", s.Do("GET", "/v2/bad/manifest/manifests/v1", nil, "Accept", manifestAccept), http.StatusNotFound, "MANIFEST_UNKNOWN")
		wantError(t, "GET the refused manifest by digest", s.Do("GET", "/v2/bad/manifest/manifests/"+sha256Digest([]byte(m)), nil, "Accept", manifestAccept), http.StatusNotFound, "MANIFEST_UNKNOWN")
	})

	// Unknown media types. The server refuses a manifest of a type it does not know (400
	// MANIFEST_INVALID, the spec's code for a manifest that fails its checks) and accepts an
	// OCI manifest whose config and layers are of unknown types (an artifact, as the spec
	// asks); berthd refuses to pull that artifact as an image, naming the type, and keeps
	// nothing.
	t.Run("UnknownMediaType", func(t *testing.T) {
		const unknownManifest = "application/vnd.example.manifest.v1+json"
		cfg := []byte(`{"kind":"example"}`)
		data := []byte("not a tar: an artifact's payload\n")
		cd, ld := uploadBlob(t, s, "bad/artifact", cfg), uploadBlob(t, s, "bad/artifact", data)
		desc := fmt.Sprintf(`"config":{"mediaType":%%q,"digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.example.data.v1","digest":%q,"size":%d}]`, cd, len(cfg), ld, len(data))
		odd := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,`+desc+`}`, unknownManifest, "application/vnd.oci.image.config.v1+json")
		r := s.Do("PUT", "/v2/bad/artifact/manifests/odd", []byte(odd), "Content-Type", unknownManifest)
		wantError(t, "PUT a manifest of an unknown media type", r, http.StatusBadRequest, "MANIFEST_INVALID")
		if !strings.Contains(string(r.Body), unknownManifest) {
			t.Errorf("the error does not name the media type: %s", r)
		}
		// Content-Type and mediaType disagree.
		r = s.Do("PUT", "/v2/bad/artifact/manifests/odd", []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+desc+`}`, "application/vnd.oci.image.config.v1+json")),
			"Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
		wantError(t, "PUT a manifest whose mediaType is not its Content-Type", r, http.StatusBadRequest, "MANIFEST_INVALID")
		wantError(t, "GET the refused manifest", s.Do("GET", "/v2/bad/artifact/manifests/odd", nil, "Accept", manifestAccept), http.StatusNotFound, "MANIFEST_UNKNOWN")

		const artifactConfig = "application/vnd.example.config.v1+json"
		artifact := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+desc+`}`, artifactConfig)
		if r := s.Do("PUT", "/v2/bad/artifact/manifests/v1", []byte(artifact), "Content-Type", "application/vnd.oci.image.manifest.v1+json"); r.Status != http.StatusCreated {
			t.Fatalf("PUT an artifact manifest: %s, want 201", r)
		}
		imgs, store := images(d), berthStore(d)
		_, errOut, code := d.Docker("pull", s.Addr+"/bad/artifact:v1")
		if code != 1 || !strings.Contains(errOut, artifactConfig) {
			t.Errorf("pull of an artifact: exit %d, want 1 and an error naming %s (dockerd: \"unsupported media type ...\"):\n%s", code, artifactConfig, errOut)
		}
		unchanged(t, d, imgs, store)

		// An artifact whose blobs happen to look like an image's (a config with the layer's
		// diff ID, a tar): the media types still say it is not an image.
		var layerTar bytes.Buffer
		tw := tar.NewWriter(&layerTar)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "payload", Mode: 0o644, Size: 4})
		tw.Write([]byte("data"))
		tw.Close()
		imgCfg := []byte(fmt.Sprintf(`{"architecture":%q,"os":"linux","config":{"Cmd":["cat","/payload"]},"rootfs":{"type":"layers","diff_ids":[%q]}}`, runtime.GOARCH, sha256Digest(layerTar.Bytes())))
		const artifactLayer = "application/vnd.example.data.v1.tar"
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
			artifactConfig, uploadBlob(t, s, "bad/artifact", imgCfg), len(imgCfg), artifactLayer, uploadBlob(t, s, "bad/artifact", layerTar.Bytes()), layerTar.Len())
		if r := s.Do("PUT", "/v2/bad/artifact/manifests/v2", []byte(m), "Content-Type", "application/vnd.oci.image.manifest.v1+json"); r.Status != http.StatusCreated {
			t.Fatalf("PUT an image-shaped artifact manifest: %s, want 201", r)
		}
		out, errOut, code := d.Docker("pull", s.Addr+"/bad/artifact:v2")
		if code != 1 || !strings.Contains(errOut, artifactConfig) {
			t.Errorf("pull of an image-shaped artifact: exit %d, want 1 and an error naming %s (dockerd: \"unsupported media type ...\"):\n%s%s", code, artifactConfig, out, errOut)
		}
		if code == 0 {
			d.Must("rmi", s.Addr+"/bad/artifact:v2")
		}
	})

	// Uploads abandoned at the protocol level: a chunk cut short is not kept (the upload
	// stays where it was and can be finished), a cancelled session is gone.
	t.Run("AbortedUpload", func(t *testing.T) {
		data := randomBytes(64<<10, 3)
		const first = 16 << 10
		r := s.Do("POST", "/v2/bad/chunks/blobs/uploads/", nil)
		loc := r.Header.Get("Location")
		if r.Status != http.StatusAccepted || loc == "" {
			t.Fatalf("POST upload: %s", r)
		}
		id := loc[strings.LastIndex(loc, "/")+1:]
		if r := s.Do("PATCH", loc, data[:first], "Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("0-%d", first-1)); r.Status != http.StatusAccepted {
			t.Fatalf("PATCH the first chunk: %s", r)
		}
		// The second chunk announces 48 KiB, sends 8 KiB, and the client goes away.
		c, err := dialIn(d.NetNS)(context.Background(), "tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nContent-Range: %d-%d\r\n\r\n",
			loc, s.Addr, len(data)-first, first, len(data)-1)
		c.Write(data[first : first+8<<10])
		time.Sleep(100 * time.Millisecond)
		c.Close()
		if !waitFor(10*time.Second, func() bool {
			for _, l := range strings.Split(s.LogTail(20), "\n") {
				if strings.Contains(l, "method=PATCH") && strings.Contains(l, id) && strings.Contains(l, "status=400") {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("the server did not answer the cut chunk with 400:\n%s", s.LogTail(6))
		}
		if got := dirSizes(filepath.Join(s.Root, "uploads"))[id]; got != first {
			t.Errorf("the upload holds %d bytes after a cut chunk, want %d", got, first)
		}
		if r := s.Do("GET", loc, nil); r.Status != http.StatusNoContent || r.Header.Get("Range") != fmt.Sprintf("0-%d", first-1) {
			t.Errorf("upload status after a cut chunk: %d Range %q, want 204 0-%d", r.Status, r.Header.Get("Range"), first-1)
		}
		dg := sha256Digest(data)
		if s.HasBlob("bad/chunks", dg) {
			t.Errorf("the blob is visible before its upload is finished")
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		if r := s.Do("PUT", loc+sep+"digest="+dg, data[first:], "Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", first, len(data)-1)); r.Status != http.StatusCreated {
			t.Errorf("finish the upload after the cut chunk: %s", r)
		}
		if r := s.Do("HEAD", "/v2/bad/chunks/blobs/"+dg, nil); r.Status != http.StatusOK || r.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
			t.Errorf("HEAD of the finished blob: %d, Content-Length %s", r.Status, r.Header.Get("Content-Length"))
		}

		// A session cancelled by the client (DELETE): gone, with its bytes.
		r = s.Do("POST", "/v2/bad/chunks/blobs/uploads/", nil)
		loc = r.Header.Get("Location")
		id = loc[strings.LastIndex(loc, "/")+1:]
		s.Do("PATCH", loc, data[:first], "Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("0-%d", first-1))
		if r := s.Do("DELETE", loc, nil); r.Status != http.StatusNoContent {
			t.Errorf("DELETE the upload: %s, want 204", r)
		}
		wantError(t, "GET a cancelled upload", s.Do("GET", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		// A small body: the server answers 404 without reading it, and a big one could meet
		// the closed connection before the client reads the answer.
		wantError(t, "PATCH a cancelled upload", s.Do("PATCH", loc, data[first:first+16], "Content-Type", "application/octet-stream"), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		if _, ok := dirSizes(filepath.Join(s.Root, "uploads"))[id]; ok {
			t.Errorf("the cancelled upload's bytes are still on disk")
		}
	})

	// A big image for the interrupted pushes: busybox and 32 MiB that do not compress.
	bigRef := "bad/big:v1"
	const bigSize = 32 << 20
	importImage(t, d, bigRef, tarFile{Name: "big", Data: randomBytes(bigSize, 1)})
	layer, layerSize := largestBlob(d)
	if layerSize < bigSize {
		t.Fatalf("the big image's layer blob not found in berthd's store (largest: %s, %d bytes)", layer, layerSize)
	}

	// The docker CLI killed in the middle of a layer: berthd's request is cancelled, its
	// upload stops, the server drops what it had; a second push completes.
	t.Run("AbortedPush", func(t *testing.T) {
		p := startProxy(t, d, 5005, s.Addr)
		p.rate.Store(4 << 20) // 8 s for the layer
		ref := p.Addr + "/bad/big:v1"
		d.Must("tag", bigRef, ref)
		imgs, store := images(d), berthStore(d)
		cmd, out, cancel := startPush(t, d, ref)
		defer cancel()
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		isDone := func() bool {
			select {
			case <-exited:
				return true
			default:
				return false
			}
		}
		awaitIngest(t, s, 1<<20, isDone)
		cmd.Process.Kill() // the docker CLI, by its PID
		<-exited
		if !waitFor(20*time.Second, func() bool { return len(s.Ingest()) == 0 }) {
			t.Errorf("20 s after the push was aborted the server still writes %v (berthd did not stop the upload?)\ndocker push: %s", s.Ingest(), out)
		}
		if s.HasBlob("bad/big", layer) || s.BlobStored(layer) {
			t.Errorf("the aborted layer %s is visible or stored on the server", layer)
		}
		wantError(t, "GET the aborted push's tag", s.Do("GET", "/v2/bad/big/manifests/v1", nil, "Accept", manifestAccept), http.StatusNotFound, "MANIFEST_UNKNOWN")
		unchanged(t, d, imgs, store)
		if got := inspectImage(t, d, ref).RepoDigests; len(got) > 0 {
			t.Errorf("the aborted push left RepoDigests %v", got)
		}

		p.rate.Store(0)
		o := push(t, d, ref)
		dgst := pushed(o, "v1")
		if dgst == "" || dgst != s.ManifestDigest("bad/big", "v1") {
			t.Errorf("second push: digest %q, the server has %q:\n%s", dgst, s.ManifestDigest("bad/big", "v1"), o)
		}
		if r := s.Do("HEAD", "/v2/bad/big/blobs/"+layer, nil); r.Status != http.StatusOK || r.Header.Get("Content-Length") != strconv.FormatInt(layerSize, 10) {
			t.Errorf("HEAD of the layer after the second push: %d, Content-Length %s, want 200 and %d", r.Status, r.Header.Get("Content-Length"), layerSize)
		}
		d.Must("rmi", ref)
	})

	// The server SIGKILLed in the middle of a layer: the push fails promptly with a clear
	// error; after a restart on the same root the layer and the tag do not exist; berthd's
	// image is untouched; a new push completes.
	t.Run("ServerKilledMidPush", func(t *testing.T) {
		s2 := startServer(t, d, 5006, "")
		p := startProxy(t, d, 5007, s2.Addr)
		p.rate.Store(4 << 20)
		ref := p.Addr + "/bad/big:v1"
		d.Must("tag", bigRef, ref)
		imgs, store := images(d), berthStore(d)
		cmd, out, cancel := startPush(t, d, ref)
		defer cancel()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		isDone := func() bool {
			select {
			case err = <-exited:
				exited <- err
				return true
			default:
				return false
			}
		}
		awaitIngest(t, s2, 1<<20, isDone)
		killed := time.Now()
		s2.Kill()
		select {
		case err = <-exited:
		case <-time.After(90 * time.Second):
			t.Fatalf("docker push still runs 90 s after the server was killed:\n%s", out)
		}
		t.Logf("docker push ended %v after the server was killed: %v\n%s", time.Since(killed).Round(time.Millisecond), err, out)
		if err == nil || !strings.Contains(out.String(), layer) {
			t.Errorf("docker push: %v, want a failure naming the layer %s:\n%s", err, layer, out)
		}

		s2.Start()
		if got := s2.Ingest(); len(got) > 0 {
			t.Errorf("the restarted server keeps unfinished writes: %v", got)
		}
		if s2.HasBlob("bad/big", layer) || s2.BlobStored(layer) {
			t.Errorf("the half-pushed layer %s is visible or stored after the restart", layer)
		}
		wantError(t, "GET the tag after the restart", s2.Do("GET", "/v2/bad/big/manifests/v1", nil, "Accept", manifestAccept), http.StatusNotFound, "MANIFEST_UNKNOWN")
		unchanged(t, d, imgs, store)
		for _, rd := range inspectImage(t, d, ref).RepoDigests {
			if strings.HasPrefix(rd, p.Addr+"/") {
				t.Errorf("the failed push left the RepoDigest %s", rd)
			}
		}
		if got := d.Must("run", "--rm", bigRef, "sh", "-c", "wc -c < /big"); got != strconv.Itoa(bigSize) {
			t.Errorf("berthd's image after the failed push: /big has %q bytes", got)
		}

		p.rate.Store(0)
		o := push(t, d, ref)
		if dgst := pushed(o, "v1"); dgst == "" || dgst != s2.ManifestDigest("bad/big", "v1") {
			t.Errorf("push after the restart: digest %q, the server has %q:\n%s", dgst, s2.ManifestDigest("bad/big", "v1"), o)
		}
		if !s2.HasBlob("bad/big", layer) {
			t.Errorf("the layer is not on the server after the new push")
		}
		d.Must("rmi", ref)
	})
	d.Must("rmi", bigRef)
}
