package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"berth/internal/errdefs"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of the manifests a pull understands, and Docker's schema 1,
// which it refuses.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeSchema1            = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeSchema1Signed      = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// ManifestAccept is the Accept header of a manifest GET: OCI index and
// manifest, Docker manifest list and schema2 (schema 1 is not asked for, so
// registries that can convert do).
var ManifestAccept = strings.Join([]string{ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList, ocispec.MediaTypeImageManifest, MediaTypeDockerManifest}, ", ")

// maxManifest bounds a manifest's size (distribution's limit is 4 MiB).
const maxManifest = 8 << 20

// ErrSchema1 is the error of an image that the registry has only in
// Docker's schema 1.
var ErrSchema1 = errdefs.Invalid("the image's manifest is Docker image manifest schema 1, which berth does not support (deprecated since 2017, removed from Docker 28): push the image again with a newer tool to convert it")

// Manifest fetches the manifest that ref (a tag, or a digest: "latest",
// "sha256:...") names: its descriptor and its bytes, verified against the
// digest when ref is one, and against the registry's Docker-Content-Digest.
func (r *Repository) Manifest(ctx context.Context, ref string) (ocispec.Descriptor, []byte, error) {
	base, err := r.base(ctx)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	what := "manifest for " + r.display(ref)
	var want digest.Digest
	if strings.Contains(ref, ":") {
		if want, err = digest.Parse(ref); err != nil {
			return ocispec.Descriptor{}, nil, errdefs.InvalidWrap(err, "%s", what)
		}
	}
	var resp *http.Response
	for attempt := 0; ; attempt++ {
		resp, err = r.do(ctx, request{method: http.MethodGet, url: base + "/manifests/" + ref, header: http.Header{"Accept": {ManifestAccept}}, scope: r.pullScope()})
		if err == nil && !retryStatus(resp.StatusCode) {
			break
		}
		if err == nil {
			err = responseError(resp, what)
			drain(resp)
		}
		if attempt >= 2 || ctx.Err() != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", what, err)
		}
		if serr := r.c.sleep(ctx, attempt); serr != nil {
			return ocispec.Descriptor{}, nil, serr
		}
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, nil, responseError(resp, what)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(b) > maxManifest {
		return ocispec.Descriptor{}, nil, errdefs.Invalid("%s: larger than %d bytes", what, maxManifest)
	}
	mt, err := manifestType(resp.Header.Get("Content-Type"), b)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", what, err)
	}
	desc := ocispec.Descriptor{MediaType: mt, Size: int64(len(b))}
	switch {
	case want != "":
		if !want.Algorithm().Available() {
			return ocispec.Descriptor{}, nil, errdefs.Invalid("%s: unsupported digest algorithm", what)
		}
		if got := want.Algorithm().FromBytes(b); got != want {
			return ocispec.Descriptor{}, nil, errdefs.Corrupt("%s: the registry sent a manifest with digest %s", what, got)
		}
		desc.Digest = want
	default:
		desc.Digest = digest.FromBytes(b)
		if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
			if hd, err := digest.Parse(h); err == nil && hd.Algorithm().Available() && hd.Algorithm().FromBytes(b) != hd {
				return ocispec.Descriptor{}, nil, errdefs.Corrupt("%s: the manifest does not have the digest %s the registry says", what, hd)
			}
		}
	}
	return desc, b, nil
}

// display names ref in this repository for messages ("busybox:latest").
func (r *Repository) display(ref string) string {
	name := reference.FamiliarName(r.Ref)
	if strings.Contains(ref, ":") {
		return name + "@" + ref
	}
	return name + ":" + ref
}

// manifestType is a manifest's media type from the response's
// Content-Type, or from the document itself when the registry sends a
// generic one.
func manifestType(ct string, b []byte) (string, error) {
	if t, _, err := mime.ParseMediaType(ct); err == nil {
		ct = t
	}
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     json.RawMessage   `json:"manifests"`
		Config        json.RawMessage   `json:"config"`
		FSLayers      []json.RawMessage `json:"fsLayers"`
	}
	jerr := json.Unmarshal(b, &probe)
	switch ct {
	case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList, ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
		if jerr != nil {
			return "", errdefs.Corrupt("not a JSON document: %v", jerr)
		}
		return ct, nil
	case mediaTypeSchema1, mediaTypeSchema1Signed:
		return "", ErrSchema1
	}
	if jerr != nil {
		return "", errdefs.Corrupt("not a JSON document: %v", jerr)
	}
	switch probe.MediaType {
	case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList, ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
		return probe.MediaType, nil
	case mediaTypeSchema1, mediaTypeSchema1Signed:
		return "", ErrSchema1
	}
	switch {
	case probe.SchemaVersion == 1 || probe.FSLayers != nil:
		return "", ErrSchema1
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex, nil
	case probe.Config != nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", errdefs.Invalid("unknown manifest type %q", ct)
}

// retryStatus: statuses worth another attempt.
func retryStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
}

// sleep waits before attempt+1 (RetryDelay, doubled each time, at most
// 30 s).
func (c *Client) sleep(ctx context.Context, attempt int) error {
	d := c.opts.RetryDelay << attempt
	if d > 30*time.Second || d <= 0 {
		d = 30 * time.Second
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Blob opens the blob desc names. The stream resumes by itself where it
// broke (a Range request; a registry that ignores Range is read past what
// was already delivered), up to the client's retry count, and ends with an
// error of kind corrupt instead of io.EOF when the bytes do not have
// desc's digest and size. progress, when set, is told the bytes delivered
// so far.
func (r *Repository) Blob(ctx context.Context, desc ocispec.Descriptor, progress func(n int64)) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, errdefs.Corrupt("blob %q: %v", desc.Digest, err)
	}
	base, err := r.base(ctx)
	if err != nil {
		return nil, err
	}
	b := &blobReader{r: r, ctx: ctx, url: base + "/blobs/" + desc.Digest.String(), desc: desc, verifier: desc.Digest.Verifier(), progress: progress}
	if err := b.open(); err != nil {
		return nil, err
	}
	return b, nil
}

// blobReader is a verified, resuming blob download.
type blobReader struct {
	r        *Repository
	ctx      context.Context
	url      string
	desc     ocispec.Descriptor
	verifier digest.Verifier
	progress func(int64)

	body     io.ReadCloser
	skip     int64 // bytes of the current body to drop (a restart from 0)
	n        int64 // bytes delivered
	failures int
	done     bool
}

// open (re)starts the download at b.n, retrying what is worth it.
func (b *blobReader) open() error {
	what := "blob " + b.desc.Digest.String()
	for {
		err := b.try()
		if err == nil {
			return nil
		}
		var re *Error
		if errors.As(err, &re) && !retryStatus(re.StatusCode) || b.ctx.Err() != nil {
			return err
		}
		if b.failures >= b.r.c.opts.Retries {
			return fmt.Errorf("%s: giving up after %d attempts: %w", what, b.failures+1, err)
		}
		if serr := b.r.c.sleep(b.ctx, b.failures); serr != nil {
			return serr
		}
		b.failures++
	}
}

func (b *blobReader) try() error {
	h := http.Header{}
	if b.n > 0 {
		h.Set("Range", "bytes="+strconv.FormatInt(b.n, 10)+"-")
	}
	resp, err := b.r.do(b.ctx, request{method: http.MethodGet, url: b.url, header: h, scope: b.r.pullScope()})
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		b.skip = b.n
	case resp.StatusCode == http.StatusPartialContent && b.n > 0:
		start, ok := rangeStart(resp.Header.Get("Content-Range"))
		if !ok || start > b.n {
			drain(resp)
			return errdefs.Corrupt("blob %s: the registry resumed at a range we did not ask for (%q)", b.desc.Digest, resp.Header.Get("Content-Range"))
		}
		b.skip = b.n - start
	default:
		err := responseError(resp, "blob "+b.desc.Digest.String())
		drain(resp)
		return err
	}
	b.body = resp.Body
	return nil
}

// rangeStart parses "bytes 100-199/200".
func rangeStart(cr string) (int64, bool) {
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok = strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	for {
		if b.body == nil {
			if err := b.open(); err != nil {
				return 0, err
			}
		}
		if b.skip > 0 {
			if _, err := io.CopyN(io.Discard, b.body, b.skip); err != nil {
				b.broken()
				continue
			}
			b.skip = 0
		}
		if b.desc.Size > 0 && int64(len(p)) > b.desc.Size-b.n {
			// Never more than the descriptor says: a registry sending
			// too much is caught below, not buffered.
			p = p[:max(b.desc.Size-b.n, 1)]
		}
		n, err := b.body.Read(p)
		if n > 0 {
			b.verifier.Write(p[:n])
			b.n += int64(n)
			if b.desc.Size > 0 && b.n > b.desc.Size {
				return 0, errdefs.Corrupt("blob %s: the registry sent more than its %d bytes", b.desc.Digest, b.desc.Size)
			}
			if b.progress != nil {
				b.progress(b.n)
			}
		}
		switch {
		case err == io.EOF && (b.desc.Size <= 0 || b.n == b.desc.Size):
			return n, b.finish()
		case err == io.EOF, err != nil && b.ctx.Err() == nil:
			// Cut short: resume where it stopped.
			b.broken()
			b.failures++
			if b.failures > b.r.c.opts.Retries {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n, fmt.Errorf("blob %s: giving up after %d attempts: %w", b.desc.Digest, b.failures, err)
			}
			if n > 0 {
				return n, nil
			}
			if serr := b.r.c.sleep(b.ctx, b.failures-1); serr != nil {
				return 0, serr
			}
			continue
		case err != nil:
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// broken drops the current response.
func (b *blobReader) broken() {
	if b.body != nil {
		b.body.Close()
		b.body = nil
	}
}

// finish checks the digest and size at the end of the stream.
func (b *blobReader) finish() error {
	b.done = true
	b.broken()
	if b.desc.Size > 0 && b.n != b.desc.Size {
		return errdefs.Corrupt("blob %s: got %d bytes, the manifest says %d", b.desc.Digest, b.n, b.desc.Size)
	}
	if !b.verifier.Verified() {
		return errdefs.Corrupt("blob %s: the registry sent data with another digest", b.desc.Digest)
	}
	return io.EOF
}

func (b *blobReader) Close() error {
	b.done = true
	b.broken()
	return nil
}
