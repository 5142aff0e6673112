package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"berth/internal/archive"
	"berth/internal/errdefs"
	"berth/internal/snapshot"

	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// pending is an image whose documents and layer blobs are stored, ready to
// be unpacked and recorded.
type pending struct {
	target   ocispec.Descriptor
	index    *ocispec.Descriptor
	manifest ocispec.Manifest
	config   ocispec.Image
	// ext are Docker's extensions of the config (healthcheck, onbuild, shell), written
	// with it when set (commit).
	ext    *dockerspec.DockerOCIImageConfigExt
	parent digest.Digest
	refs   []reference.Named
}

func (p *pending) id() digest.Digest { return p.manifest.Config.Digest }

// op is one operation that adds content: it remembers the blobs it created
// so that a failure can take them back.
type op struct {
	s *Store
	// mu guards created: an operation may store blobs from several
	// goroutines (pull, load).
	mu      sync.Mutex
	created []digest.Digest
	// early, during a load, unpacks layer blobs as they arrive.
	early *early
}

// ingested notes a blob the operation stored; new says whether it was
// absent before.
func (o *op) ingested(d digest.Digest, new bool) {
	if new {
		o.mu.Lock()
		o.created = append(o.created, d)
		o.mu.Unlock()
	}
}

// storeJSON stores a document (manifest, config) and describes it.
func (o *op) storeJSON(ctx context.Context, mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("encode %s: %w", mediaType, err)
	}
	d, err := o.storeDoc(ctx, b)
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}, err
}

// storeDoc stores a small document held in memory.
func (o *op) storeDoc(ctx context.Context, b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	if o.s.Content.Exists(d) {
		return d, nil
	}
	if _, err := o.s.Content.Ingest(ctx, bytes.NewReader(b), d, int64(len(b))); err != nil {
		return "", err
	}
	o.ingested(d, true)
	return d, nil
}

// run runs fn as an operation; when fn fails, the blobs it created and
// nothing else references are removed again, so that bad input leaves the
// store as it was.
func (s *Store) run(ctx context.Context, fn func(o *op) error) error {
	o := &op{s: s}
	err := s.withOp(ctx, func() error { return fn(o) })
	if err != nil && len(o.created) > 0 {
		if cerr := s.collectBlobs(o.created); cerr != nil {
			return errors.Join(err, fmt.Errorf("clean up after the failure: %w", cerr))
		}
	}
	return err
}

// collectBlobs deletes those of ds that nothing references.
func (s *Store) collectBlobs(ds []digest.Digest) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	blobs, _, _, err := s.mark()
	if err != nil {
		return err
	}
	for _, d := range ds {
		if !blobs[d] {
			if err := s.Content.Delete(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkImage validates what an image's documents say against each other.
func checkImage(p *pending) error {
	if p.config.RootFS.Type != "layers" && p.config.RootFS.Type != "" {
		return errdefs.Corrupt("image config %s: rootfs type %q, want \"layers\"", p.id(), p.config.RootFS.Type)
	}
	if n, m := len(p.config.RootFS.DiffIDs), len(p.manifest.Layers); n != m {
		return errdefs.Corrupt("image %s: the config lists %d layers, the manifest %d", p.id(), n, m)
	}
	for _, d := range p.config.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return errdefs.Corrupt("image config %s: diff ID %q: %v", p.id(), string(d), err)
		}
	}
	return nil
}

type unpackJob struct {
	chain, parent, diffID digest.Digest
	blob                  ocispec.Descriptor
	staging               *snapshot.Staging
	size                  int64
	err                   error
}

// unpack makes sure every layer of every pending image is unpacked: the
// missing ones are unpacked in parallel into staging directories, their
// diff IDs checked, and only then committed (commitLayers), so a failure
// commits nothing.
func (o *op) unpack(ctx context.Context, ps []*pending) error {
	var jobs []*unpackJob
	seen := map[digest.Digest]bool{}
	for _, p := range ps {
		if err := checkImage(p); err != nil {
			return err
		}
		chains := snapshot.ChainIDs(p.config.RootFS.DiffIDs)
		for i, c := range chains {
			if !seen[c] && o.s.Snaps.HasLayer(c) {
				// Unpacked already; a blob this operation brought must
				// still be the layer the config names.
				if err := o.verifyLayerBlob(ctx, p.manifest.Layers[i], p.config.RootFS.DiffIDs[i]); err != nil {
					return err
				}
			}
			if seen[c] || o.s.Snaps.HasLayer(c) {
				continue
			}
			seen[c] = true
			j := &unpackJob{chain: c, diffID: p.config.RootFS.DiffIDs[i], blob: p.manifest.Layers[i]}
			if i > 0 {
				j.parent = chains[i-1]
			}
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *unpackJob)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if j.err = o.unpackOne(ctx, j); j.err != nil {
					cancel()
				}
			}
		}()
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()

	if err := firstCause(jobErrors(jobs)); err != nil {
		for _, j := range jobs {
			if j.staging != nil {
				j.staging.Abort()
			}
		}
		return err
	}
	sts := make([]*snapshot.Staging, len(jobs))
	ls := make([]snapshot.Layer, len(jobs))
	for i, j := range jobs {
		sts[i] = j.staging
		ls[i] = snapshot.Layer{ChainID: j.chain, DiffID: j.diffID, Parent: j.parent, Size: j.size}
	}
	return o.s.commitLayers(sts, ls)
}

// verifyLayerBlob checks that a layer blob stored by this operation
// decompresses to diffID (blobs stored before were checked when they came).
func (o *op) verifyLayerBlob(ctx context.Context, blob ocispec.Descriptor, diffID digest.Digest) error {
	if blob.Digest == diffID || !slices.Contains(o.created, blob.Digest) {
		return nil
	}
	f, err := o.s.Content.Open(blob.Digest)
	if err != nil {
		return fmt.Errorf("layer %s: %w", blob.Digest, err)
	}
	defer f.Close()
	dr, _, err := archive.DecompressStream(f)
	if err != nil {
		return errdefs.Corrupt("layer %s: %v", blob.Digest, err)
	}
	defer dr.Close()
	v := diffID.Verifier()
	if _, err := io.Copy(v, dr); err != nil {
		return errdefs.Corrupt("layer %s: %v", blob.Digest, err)
	}
	if !v.Verified() {
		return errdefs.Corrupt("layer %s: its content does not have the diff ID %s that the image config says", blob.Digest, diffID)
	}
	return ctx.Err()
}

// jobErrors lists the jobs' errors, for firstCause.
func jobErrors(jobs []*unpackJob) []error {
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		errs[i] = j.err
	}
	return errs
}

func (o *op) unpackOne(ctx context.Context, j *unpackJob) error {
	if r := o.early.take(j.blob.Digest); r != nil {
		j.staging = r.staging
		if r.err != nil {
			return unpackError(r.err, "unpack layer %s", j.blob.Digest)
		}
		return j.check(r.stats)
	}
	f, err := o.s.Content.Open(j.blob.Digest)
	if err != nil {
		return fmt.Errorf("layer %s: %w", j.blob.Digest, err)
	}
	defer f.Close()
	if j.staging, err = o.s.Snaps.NewLayer(ctx); err != nil {
		return err
	}
	st, err := archive.Unpack(ctx, f, j.staging.Dir, archive.UnpackOptions{Digest: j.blob.Digest})
	if err != nil {
		return unpackError(err, "unpack layer %s", j.blob.Digest)
	}
	return j.check(st)
}

// check compares what unpacking found with what the config says.
func (j *unpackJob) check(st archive.UnpackStats) error {
	if st.DiffID != j.diffID {
		return errdefs.Corrupt("layer %s: its content has diff ID %s, the image config says %s", j.blob.Digest, st.DiffID, j.diffID)
	}
	j.size = st.Bytes
	return nil
}

// record makes the pending images visible, with their references, in one
// transaction, and returns them. References that pointed elsewhere move
// (the image they leave stays, untagged).
func (o *op) record(ps []*pending) ([]*Image, error) {
	if err := o.s.Content.Sync(); err != nil {
		return nil, fmt.Errorf("sync content: %w", err)
	}
	var out []*Image
	err := o.s.db.Update(func(tx *bolt.Tx) error {
		for _, p := range ps {
			r, ok, err := getRecord(tx, p.id())
			if err != nil {
				return err
			}
			if !ok {
				r.Added = time.Now().UTC()
			}
			r.Target, r.Index = p.target, p.index
			if p.parent != "" {
				r.Parent = p.parent
			}
			if err := putRecord(tx, p.id(), r); err != nil {
				return err
			}
			if err := setRefs(tx, p.id(), p.refs); err != nil {
				return err
			}
		}
		for _, p := range ps {
			im, err := o.s.get(tx, p.id())
			if err != nil {
				return err
			}
			out = append(out, im)
		}
		return nil
	})
	return out, err
}

// unpackError marks what an archive refused (bad entries, broken tar) as
// invalid input; failures of the host (ENOSPC, EIO: errnos) and
// cancellation keep their kind.
func unpackError(err error, format string, a ...any) error {
	var errno syscall.Errno
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.As(err, &errno) {
		return fmt.Errorf(format+": %w", append(a, err)...)
	}
	return errdefs.InvalidWrap(err, format, a...)
}
