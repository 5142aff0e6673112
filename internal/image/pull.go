package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"berth/internal/archive"
	"berth/internal/errdefs"
	"berth/internal/snapshot"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Fetcher is one repository of a registry, as a pull reads it
// (internal/registry's Repository is one).
type Fetcher interface {
	// Manifest returns the manifest or index that ref (a tag or a digest)
	// names, its bytes verified against the digest when ref is one.
	Manifest(ctx context.Context, ref string) (ocispec.Descriptor, []byte, error)
	// Blob opens a blob. The stream must end with an error, not io.EOF,
	// when its bytes do not have desc's digest and size; progress is told
	// the bytes read so far.
	Blob(ctx context.Context, desc ocispec.Descriptor, progress func(n int64)) (io.ReadCloser, error)
}

// PullProgress is one step of a pull for one layer, in the words of
// Docker's JSON progress stream: "Pulling fs layer", "Waiting",
// "Downloading" (with Current and Total), "Verifying Checksum", "Download
// complete", "Pull complete", "Already exists".
type PullProgress struct {
	// ID is the layer's short digest (12 hex digits).
	ID             string
	Status         string
	Current, Total int64
}

// Pulled is the outcome of a pull.
type Pulled struct {
	Image *Image
	// Digest is the digest of what the reference named: the index, or the
	// manifest when there was no index.
	Digest digest.Digest
	// Updated is false when the reference already named this image.
	Updated bool
}

// pullConcurrency is how many layers download at once (dockerd's
// max-concurrent-downloads default).
const pullConcurrency = 3

// Pull fetches the image ref names (a tag or a digest) through f,
// choosing this platform's manifest from an index, and records it under
// ref (and under its digest, name@sha256:..., as Docker's RepoDigests).
// Layers download in parallel, each verified against its digest as it
// arrives and unpacked while it streams in; as with Load, nothing is
// visible until everything is stored, and on error the store is as it was.
func (s *Store) Pull(ctx context.Context, f Fetcher, ref reference.Named, progress func(PullProgress)) (*Pulled, error) {
	tag := "latest"
	switch r := ref.(type) {
	case reference.Canonical:
		tag = r.Digest().String()
	case reference.Tagged:
		tag = r.Tag()
	}
	var prev digest.Digest
	if im, err := s.Resolve(ref.String()); err == nil {
		prev = im.ID
	}
	var mu sync.Mutex
	report := func(p PullProgress) {
		if progress != nil {
			mu.Lock()
			defer mu.Unlock()
			progress(p)
		}
	}
	out := &Pulled{}
	err := s.run(ctx, func(o *op) error {
		o.early = newEarly(ctx, s)
		defer o.early.close()
		top, b, err := f.Manifest(ctx, tag)
		if err != nil {
			return err
		}
		out.Digest = top.Digest
		p := &pending{target: top}
		for depth := 0; ; depth++ {
			kind, err := classify(b, p.target.MediaType)
			if err != nil {
				return fmt.Errorf("manifest %s: %w", p.target.Digest, err)
			}
			if _, err := o.storeDoc(ctx, b); err != nil {
				return err
			}
			if kind == kindManifest {
				break
			}
			if depth > 4 {
				return errdefs.Corrupt("%s: indexes nested too deep", reference.FamiliarString(ref))
			}
			var idx ocispec.Index
			if err := json.Unmarshal(b, &idx); err != nil {
				return errdefs.Corrupt("index %s: %v", p.target.Digest, err)
			}
			choice, err := choosePlatform(idx)
			if err != nil {
				return fmt.Errorf("%s: %w", reference.FamiliarString(ref), err)
			}
			parent := p.target
			if p.index == nil {
				p.index = &parent
			}
			var got ocispec.Descriptor
			if got, b, err = f.Manifest(ctx, choice.Digest.String()); err != nil {
				return err
			}
			if got.Digest != choice.Digest || (choice.Size > 0 && got.Size != choice.Size) {
				return errdefs.Corrupt("manifest %s: the registry sent %s (%d bytes)", choice.Digest, got.Digest, got.Size)
			}
			if choice.MediaType == "" {
				choice.MediaType = got.MediaType
			}
			p.target = ocispec.Descriptor{MediaType: choice.MediaType, Digest: choice.Digest, Size: int64(len(b)), Platform: choice.Platform}
		}
		if err := json.Unmarshal(b, &p.manifest); err != nil {
			return errdefs.Corrupt("manifest %s: %v", p.target.Digest, err)
		}
		if err := checkMediaTypes(p.manifest); err != nil {
			return fmt.Errorf("%s: %w", reference.FamiliarString(ref), err)
		}
		if err := p.manifest.Config.Digest.Validate(); err != nil {
			return errdefs.Corrupt("manifest %s: config: %v", p.target.Digest, err)
		}
		if err := o.fetch(ctx, f, p.manifest.Config, nil); err != nil {
			return fmt.Errorf("config %s: %w", p.manifest.Config.Digest, err)
		}
		if err := o.s.readJSON(p.manifest.Config.Digest, &p.config); err != nil {
			return fmt.Errorf("config %s: %w", p.manifest.Config.Digest, err)
		}
		if err := checkImage(p); err != nil {
			return err
		}
		p.refs = append(p.refs, ref)
		if _, ok := ref.(reference.Canonical); !ok {
			c, err := reference.WithDigest(reference.TrimNamed(ref), top.Digest)
			if err != nil {
				return errdefs.InvalidWrap(err, "reference")
			}
			p.refs = append(p.refs, c)
		}
		if err := o.fetchLayers(ctx, f, p, report); err != nil {
			return err
		}
		if err := o.unpack(ctx, []*pending{p}); err != nil {
			return err
		}
		ims, err := o.record([]*pending{p})
		if err != nil {
			return err
		}
		out.Image = ims[0]
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.Updated = prev != out.Image.ID
	return out, nil
}

// fetch stores blob desc unless it is stored already.
func (o *op) fetch(ctx context.Context, f Fetcher, desc ocispec.Descriptor, progress func(int64)) error {
	if o.s.Content.Exists(desc.Digest) {
		return nil
	}
	rc, err := f.Blob(ctx, desc, progress)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := o.s.Content.Ingest(ctx, rc, desc.Digest, desc.Size); err != nil {
		return err
	}
	o.ingested(desc.Digest, true)
	return nil
}

// fetchLayers downloads the layer blobs that are not stored, a few at a
// time; those whose layer is not unpacked yet are unpacked as they stream
// in, and op.unpack takes the results over (see early).
func (o *op) fetchLayers(ctx context.Context, f Fetcher, p *pending, report func(PullProgress)) error {
	chains := snapshot.ChainIDs(p.config.RootFS.DiffIDs)
	type job struct {
		desc   ocispec.Descriptor
		diffID digest.Digest
		unpack bool
	}
	var jobs []*job
	seen := map[digest.Digest]bool{}
	for i, l := range p.manifest.Layers {
		if err := l.Digest.Validate(); err != nil {
			return errdefs.Corrupt("manifest %s: layer %d: %v", p.target.Digest, i, err)
		}
		id := shortDigest(l.Digest)
		if seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		if o.s.Content.Exists(l.Digest) {
			report(PullProgress{ID: id, Status: "Already exists"})
			continue
		}
		report(PullProgress{ID: id, Status: "Pulling fs layer"})
		jobs = append(jobs, &job{desc: l, diffID: p.config.RootFS.DiffIDs[i], unpack: !o.s.Snaps.HasLayer(chains[i])})
	}
	if len(jobs) == 0 {
		return nil
	}
	return runBounded(ctx, len(jobs), pullConcurrency, func(i int) {
		report(PullProgress{ID: shortDigest(jobs[i].desc.Digest), Status: "Waiting"})
	}, func(ctx context.Context, i int) error {
		j := jobs[i]
		return o.fetchLayer(ctx, f, j.desc, j.diffID, j.unpack, report)
	})
}

// runBounded runs do for jobs 0..n-1, limit at a time, each in its own goroutine;
// waiting(i) is told when job i has to wait for a slot. The first failure cancels
// the others' context; it returns that failure (firstCause).
func runBounded(ctx context.Context, n, limit int, waiting func(i int), do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, limit)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			default:
				waiting(i)
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					errs[i] = ctx.Err()
					return
				}
			}
			defer func() { <-sem }()
			if errs[i] = do(ctx, i); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return firstCause(errs)
}

// firstCause picks the error of parallel jobs that stopped the others: the first that
// is not a cancellation (which the cancel after it caused), else the first.
func firstCause(errs []error) error {
	var first error
	for _, err := range errs {
		switch {
		case err == nil:
		case !errors.Is(err, context.Canceled):
			return err
		case first == nil:
			first = err
		}
	}
	return first
}

// fetchLayer downloads one layer blob into the content store and, when
// unpack is set, into a staging layer at the same time.
func (o *op) fetchLayer(ctx context.Context, f Fetcher, desc ocispec.Descriptor, diffID digest.Digest, unpack bool, report func(PullProgress)) error {
	id := shortDigest(desc.Digest)
	var last time.Time
	progress := func(n int64) {
		if now := time.Now(); now.Sub(last) >= 100*time.Millisecond || n == desc.Size {
			last = now
			report(PullProgress{ID: id, Status: "Downloading", Current: n, Total: desc.Size})
		}
	}
	rc, err := f.Blob(ctx, desc, progress)
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	w, err := o.s.Content.Writer(ctx)
	if err != nil {
		return err
	}
	defer w.Close()

	var dst io.Writer = w
	var pw *io.PipeWriter
	var r *earlyResult
	if unpack {
		r = &earlyResult{done: make(chan struct{})}
		if r.staging, err = o.s.Snaps.NewLayer(ctx); err != nil {
			return err
		}
		o.early.add(desc.Digest, r)
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		defer pw.Close()
		go func() {
			defer close(r.done)
			r.stats, r.err = archive.Unpack(ctx, pr, r.staging.Dir, archive.UnpackOptions{Digest: desc.Digest})
			if r.err == nil && r.stats.DiffID != diffID {
				r.err = errdefs.Corrupt("layer %s: its content has diff ID %s, the image config says %s", desc.Digest, r.stats.DiffID, diffID)
			}
			// A failed unpack stops the download; a finished one has read
			// to the end of the stream.
			pr.CloseWithError(errUnpackStopped(r.err))
		}()
		dst = io.MultiWriter(w, pw)
	}
	_, err = io.CopyBuffer(dst, rc, make([]byte, 1<<20))
	if err == nil {
		report(PullProgress{ID: id, Status: "Verifying Checksum"})
		if _, err = w.Commit(desc.Digest, desc.Size); err == nil {
			o.ingested(desc.Digest, true)
		}
	}
	if pw != nil {
		pw.CloseWithError(err)
		<-r.done
		if r.err != nil && (err == nil || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, errUnpackFailed)) {
			err = unpackError(r.err, "unpack layer %s", desc.Digest)
		}
	}
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	report(PullProgress{ID: id, Status: "Download complete"})
	report(PullProgress{ID: id, Status: "Pull complete"})
	return nil
}

var errUnpackFailed = errors.New("unpacking the layer failed")

func errUnpackStopped(err error) error {
	if err != nil {
		return errUnpackFailed
	}
	return io.ErrClosedPipe
}

// shortDigest is the 12 hex digits Docker's progress shows for a layer.
func shortDigest(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}
