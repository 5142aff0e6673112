package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"berth/internal/content"
	"berth/internal/errdefs"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Pusher is one repository of a registry, as a push writes it
// (internal/registry's Repository is one).
type Pusher interface {
	// BlobExists tells whether the repository has the blob.
	BlobExists(ctx context.Context, d digest.Digest) (bool, error)
	// PushBlob uploads desc's bytes, read from r. When from is set (a
	// repository of the same registry that is known to have the blob) it
	// first asks for a cross-repository mount and reports whether the
	// registry granted it; progress is told the bytes sent so far.
	PushBlob(ctx context.Context, desc ocispec.Descriptor, from string, r io.ReaderAt, progress func(n int64)) (mounted bool, err error)
	// PutManifest stores a manifest under ref (a tag or a digest) and
	// returns its digest.
	PutManifest(ctx context.Context, ref, mediaType string, b []byte) (digest.Digest, error)
}

// Pushed is the outcome of a push.
type Pushed struct {
	// Tag is the tag pushed (empty for a push by digest).
	Tag    string
	Digest digest.Digest
	// Size is the manifest's length.
	Size int64
}

// pushConcurrency is how many layers upload at once (dockerd's
// max-concurrent-uploads default).
const pushConcurrency = 5

// Push uploads the image that ref (a tagged or digest reference of this
// store, "localhost:5000/app:1") names to p: its layers and config, those
// the repository lacks only, then its manifest as it is stored, under
// ref's tag. A layer another repository of the same registry holds (as
// this store knows from the RepoDigests of its images) is mounted from
// there rather than uploaded. progress gets Docker's push steps per layer:
// "Preparing", "Waiting", "Pushing" (Current, Total), "Pushed", "Layer
// already exists", "Mounted from <repository>". The image gains the
// reference name@digest (RepoDigests) once the manifest is stored.
func (s *Store) Push(ctx context.Context, p Pusher, ref reference.Named, progress func(PullProgress)) (*Pushed, error) {
	im, err := s.Resolve(ref.String())
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, errdefs.NotFound("An image does not exist locally with the tag: %s", reference.FamiliarString(ref))
		}
		return nil, err
	}
	manifest, err := s.Content.ReadAll(im.Target.Digest, maxDocument)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", reference.FamiliarString(ref), err)
	}
	var mu sync.Mutex
	report := func(pp PullProgress) {
		if progress != nil {
			mu.Lock()
			defer mu.Unlock()
			progress(pp)
		}
	}
	// The blobs are opened first: a removal of the image while it is being
	// pushed (and the GC after it) then cannot take them away.
	blobs, err := s.openBlobs(im)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, b := range blobs {
			b.f.Close()
		}
	}()
	mounts := s.mountSources(ref)
	for _, b := range blobs {
		if b.layer {
			report(PullProgress{ID: shortDigest(b.desc.Digest), Status: "Preparing"})
		}
	}
	err = runBounded(ctx, len(blobs), pushConcurrency, func(i int) {
		if blobs[i].layer {
			report(PullProgress{ID: shortDigest(blobs[i].desc.Digest), Status: "Waiting"})
		}
	}, func(ctx context.Context, i int) error {
		return pushBlob(ctx, p, blobs[i], mounts[blobs[i].desc.Digest], report)
	})
	if err != nil {
		return nil, err
	}
	out := &Pushed{Size: int64(len(manifest))}
	tag := im.Target.Digest.String()
	switch r := ref.(type) {
	case reference.Canonical:
		tag = r.Digest().String()
	case reference.Tagged:
		tag, out.Tag = r.Tag(), r.Tag()
	}
	if out.Digest, err = p.PutManifest(ctx, tag, im.Target.MediaType, manifest); err != nil {
		return nil, err
	}
	if err := s.addRepoDigest(im.ID, ref, out.Digest); err != nil {
		return nil, err
	}
	return out, nil
}

// pushBlob uploads one blob unless the repository has it.
func pushBlob(ctx context.Context, p Pusher, b pushedBlob, from string, report func(PullProgress)) error {
	id := shortDigest(b.desc.Digest)
	say := func(status string) {
		if b.layer {
			report(PullProgress{ID: id, Status: status})
		}
	}
	what := "config"
	if b.layer {
		what = "layer"
	}
	if isForeign(b.desc.MediaType) {
		say("Skipped foreign layer")
		return nil
	}
	ok, err := p.BlobExists(ctx, b.desc.Digest)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, b.desc.Digest, err)
	}
	if ok {
		say("Layer already exists")
		return nil
	}
	var last time.Time
	progress := func(n int64) {
		if now := time.Now(); b.layer && (now.Sub(last) >= 100*time.Millisecond || n == b.desc.Size) {
			last = now
			report(PullProgress{ID: id, Status: "Pushing", Current: n, Total: b.desc.Size})
		}
	}
	mounted, err := p.PushBlob(ctx, b.desc, from, b.f, progress)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, b.desc.Digest, err)
	}
	if mounted {
		say("Mounted from " + from)
	} else {
		say("Pushed")
	}
	return nil
}

type pushedBlob struct {
	desc  ocispec.Descriptor
	f     content.Blob
	layer bool
}

// openBlobs opens an image's config and layer blobs (each once), top layer
// first as dockerd lists them, the config last.
func (s *Store) openBlobs(im *Image) (out []pushedBlob, err error) {
	defer func() {
		if err != nil {
			for _, b := range out {
				b.f.Close()
			}
		}
	}()
	seen := map[digest.Digest]bool{}
	add := func(d ocispec.Descriptor, layer bool) error {
		if seen[d.Digest] {
			return nil
		}
		seen[d.Digest] = true
		if layer && isForeign(d.MediaType) {
			out = append(out, pushedBlob{desc: d, layer: true})
			return nil
		}
		f, err := s.Content.Open(d.Digest)
		if err != nil {
			what := "config"
			if layer {
				what = "layer"
			}
			return fmt.Errorf("%s %s of image %s: %w", what, d.Digest, short(im.ID), err)
		}
		out = append(out, pushedBlob{desc: d, f: f, layer: layer})
		return nil
	}
	for _, l := range slices.Backward(im.Manifest.Layers) {
		if err := add(l, true); err != nil {
			return out, err
		}
	}
	return out, add(im.Manifest.Config, false)
}

// isForeign tells whether a layer is one registries need not hold (Windows
// base layers): it is not pushed.
func isForeign(mediaType string) bool {
	return strings.Contains(mediaType, "foreign") || strings.Contains(mediaType, "nondistributable")
}

// mountSources maps blobs to a repository of ref's registry, other than
// ref's, that holds them: the repositories the store's images were pulled
// from or pushed to (their RepoDigests), newest image first.
func (s *Store) mountSources(ref reference.Named) map[digest.Digest]string {
	out := map[digest.Digest]string{}
	ims, err := s.List()
	if err != nil {
		return out
	}
	slices.SortFunc(ims, func(a, b *Image) int { return b.Added.Compare(a.Added) })
	for _, im := range ims {
		for _, rd := range im.RepoDigests {
			n, err := reference.ParseNormalizedNamed(rd)
			if err != nil || reference.Domain(n) != reference.Domain(ref) || reference.Path(n) == reference.Path(ref) {
				continue
			}
			for _, l := range im.Manifest.Layers {
				if _, ok := out[l.Digest]; !ok {
					out[l.Digest] = reference.Path(n)
				}
			}
		}
	}
	return out
}

// addRepoDigest records repo@dgst for image id, unless the image has gone
// meanwhile.
func (s *Store) addRepoDigest(id digest.Digest, ref reference.Named, dgst digest.Digest) error {
	c, err := reference.WithDigest(reference.TrimNamed(ref), dgst)
	if err != nil {
		return errdefs.InvalidWrap(err, "reference")
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, ok, err := getRecord(tx, id); err != nil || !ok {
			return err
		}
		return setRefs(tx, id, []reference.Named{c})
	})
}
