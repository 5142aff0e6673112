package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"berth/internal/errdefs"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BlobExists tells whether the repository has blob d (HEAD).
func (r *Repository) BlobExists(ctx context.Context, d digest.Digest) (bool, error) {
	base, err := r.base(ctx)
	if err != nil {
		return false, err
	}
	resp, err := r.do(ctx, request{method: http.MethodHead, url: base + "/blobs/" + d.String(), scope: r.pushScope()})
	if err != nil {
		return false, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, responseError(resp, "blob "+d.String())
}

// Upload is an upload session the registry opened (POST .../blobs/uploads/).
type Upload struct {
	r   *Repository
	loc *url.URL
	// Mounted: the registry mounted the blob from the other repository;
	// there is nothing to upload.
	Mounted bool
}

// StartUpload opens an upload session; with from set (a repository of the
// same registry, "library/busybox"), it first asks for a cross-repository
// mount of d, which the registry may grant (Upload.Mounted) or answer with
// a session for an ordinary upload.
func (r *Repository) StartUpload(ctx context.Context, d digest.Digest, from string) (*Upload, error) {
	base, err := r.base(ctx)
	if err != nil {
		return nil, err
	}
	u := base + "/blobs/uploads/"
	scope := r.pushScope()
	if from != "" && from != r.Name {
		u += "?" + url.Values{"mount": {d.String()}, "from": {from}}.Encode()
		scope += " repository:" + from + ":pull"
	}
	resp, err := r.do(ctx, request{method: http.MethodPost, url: u, scope: scope, body: emptyBody, size: 0})
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		return &Upload{r: r, Mounted: true}, nil
	case http.StatusAccepted:
		loc, err := resolve(resp.Request.URL, resp.Header.Get("Location"))
		if err != nil {
			return nil, err
		}
		return &Upload{r: r, loc: loc}, nil
	}
	return nil, responseError(resp, "start upload of blob "+d.String()+" to "+reference.FamiliarName(r.Ref))
}

func emptyBody() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(nil)), nil }

// Finish uploads the whole blob in one PUT (monolithic upload). open
// returns the blob's bytes; it is called again when the request must be
// repeated (a renewed token).
func (u *Upload) Finish(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	if u.Mounted {
		return nil
	}
	return u.put(ctx, desc, open, desc.Size)
}

func (u *Upload) put(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error), size int64) error {
	loc := *u.loc
	q := loc.Query()
	q.Set("digest", desc.Digest.String())
	loc.RawQuery = q.Encode()
	if open == nil {
		open = emptyBody
	}
	resp, err := u.r.do(ctx, request{method: http.MethodPut, url: loc.String(), scope: u.r.pushScope(), body: open, size: size,
		header: http.Header{"Content-Type": {"application/octet-stream"}}})
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated {
		return responseError(resp, "upload blob "+desc.Digest.String())
	}
	return nil
}

// FinishChunked uploads the blob in PATCH requests of chunk bytes each,
// then closes the session with an empty PUT (chunked upload).
func (u *Upload) FinishChunked(ctx context.Context, desc ocispec.Descriptor, ra io.ReaderAt, chunk int64) error {
	if u.Mounted {
		return nil
	}
	if chunk <= 0 {
		return errdefs.Invalid("chunk size %d", chunk)
	}
	for off := int64(0); off < desc.Size; {
		n := min(chunk, desc.Size-off)
		start := off
		resp, err := u.r.do(ctx, request{method: http.MethodPatch, url: u.loc.String(), scope: u.r.pushScope(), size: n,
			body: func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(ra, start, n)), nil },
			header: http.Header{
				"Content-Type":  {"application/octet-stream"},
				"Content-Range": {strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(start+n-1, 10)},
			}})
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusAccepted {
			err := responseError(resp, fmt.Sprintf("upload blob %s bytes %d-%d", desc.Digest, start, start+n-1))
			drain(resp)
			return err
		}
		loc, err := resolve(resp.Request.URL, resp.Header.Get("Location"))
		drain(resp)
		if err != nil {
			return err
		}
		u.loc = loc
		off += n
	}
	return u.put(ctx, desc, nil, 0)
}

// PutManifest stores a manifest or index under ref (a tag or its digest)
// and returns its digest.
func (r *Repository) PutManifest(ctx context.Context, ref, mediaType string, b []byte) (digest.Digest, error) {
	base, err := r.base(ctx)
	if err != nil {
		return "", err
	}
	resp, err := r.do(ctx, request{method: http.MethodPut, url: base + "/manifests/" + ref, scope: r.pushScope(), size: int64(len(b)),
		body:   func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		header: http.Header{"Content-Type": {mediaType}}})
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", responseError(resp, "push manifest "+r.display(ref))
	}
	d := digest.FromBytes(b)
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != d.String() {
		return "", errdefs.Corrupt("push manifest %s: the registry stored it as %s, berth computed %s", r.display(ref), h, d)
	}
	return d, nil
}

// PushBlob uploads desc's bytes, read from ra, unless from (another
// repository of this registry) is given and the registry mounts the blob
// from there; it reports whether it did. progress is told the bytes sent.
func (r *Repository) PushBlob(ctx context.Context, desc ocispec.Descriptor, from string, ra io.ReaderAt, progress func(n int64)) (bool, error) {
	up, err := r.StartUpload(ctx, desc.Digest, from)
	if err != nil {
		return false, err
	}
	if up.Mounted {
		return true, nil
	}
	return false, up.Finish(ctx, desc, func() (io.ReadCloser, error) {
		return io.NopCloser(&countingReader{r: io.NewSectionReader(ra, 0, desc.Size), progress: progress}), nil
	})
}

// countingReader tells progress how many bytes were read.
type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n)
	}
	return n, err
}
