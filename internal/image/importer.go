package image

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"berth/internal/archive"
	"berth/internal/errdefs"
	"berth/internal/snapshot"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOptions tunes Import.
type ImportOptions struct {
	// Ref names the new image ("app:1"); empty leaves it untagged.
	Ref string
	// Changes are Dockerfile instructions applied to the config.
	Changes []string
	// Message is the history comment (default "Imported from -").
	Message string
}

// Import makes a one-layer image from a root filesystem tarball
// (`docker import`): the tarball (gzip, zstd or plain) is stored
// uncompressed as the layer and unpacked in the same pass.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*Image, error) {
	refs, err := newImageRefs(opts.Ref)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	cfg := ocispec.ImageConfig{}
	if err := ApplyChanges(&cfg, opts.Changes); err != nil {
		return nil, err
	}
	msg := opts.Message
	if msg == "" {
		msg = "Imported from -"
	}
	var im *Image
	err = s.run(ctx, func(o *op) error {
		layer, diffID, err := o.layerFromTar(ctx, r, "", false)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		p := &pending{config: ocispec.Image{
			Created:  &now,
			Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
			Config:   cfg,
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
			History:  []ocispec.History{{Created: &now, Comment: msg}},
		}}
		p.refs = refs
		im, err = o.finishOne(ctx, p, []ocispec.Descriptor{layer})
		return err
	})
	return im, err
}

// finish stores p's config and a manifest for it over layers (whose top
// one may already be unpacked, see layerFromTar).
func (o *op) finish(ctx context.Context, p *pending, layers []ocispec.Descriptor) error {
	var doc any = p.config
	if p.ext != nil {
		doc = dockerspec.DockerOCIImage{Image: p.config, Config: dockerspec.DockerOCIImageConfig{ImageConfig: p.config.Config, DockerOCIImageConfigExt: *p.ext}}
	}
	cfg, err := o.storeJSON(ctx, ocispec.MediaTypeImageConfig, doc)
	if err != nil {
		return err
	}
	if err := o.synthesize(ctx, p, cfg, layers); err != nil {
		return err
	}
	return o.unpack(ctx, []*pending{p})
}

// finishOne finishes one new image (finish) and records it.
func (o *op) finishOne(ctx context.Context, p *pending, layers []ocispec.Descriptor) (*Image, error) {
	if err := o.finish(ctx, p, layers); err != nil {
		return nil, err
	}
	ims, err := o.record([]*pending{p})
	if err != nil {
		return nil, err
	}
	return ims[0], nil
}

// layerFromTar stores a tar stream, decompressed, as a layer blob while
// unpacking it, and commits the unpacked layer over the layer parent (a
// chain ID, empty for a base layer). Returns the blob's descriptor and the
// layer's diff ID. own is for a diff berth wrote of a container's changes
// (commit, build): its symlinks may point anywhere, as the container made
// them; an imported tarball's may not climb out of the root.
func (o *op) layerFromTar(ctx context.Context, r io.Reader, parent digest.Digest, own bool) (ocispec.Descriptor, digest.Digest, error) {
	dr, _, err := archive.DecompressStream(r)
	if err != nil {
		return ocispec.Descriptor{}, "", errdefs.InvalidWrap(err, "read tarball")
	}
	defer dr.Close()
	w, err := o.s.Content.Writer(ctx)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer w.Close()
	st, err := o.s.Snaps.NewLayer(ctx)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	stats, err := archive.Unpack(ctx, io.TeeReader(dr, w), st.Dir, archive.UnpackOptions{AnySymlinkTarget: own})
	if err != nil {
		st.Abort()
		return ocispec.Descriptor{}, "", unpackError(err, "unpack tarball")
	}
	had := o.s.Content.Exists(stats.DiffID)
	info, err := w.Commit(stats.DiffID, -1)
	if err != nil {
		st.Abort()
		return ocispec.Descriptor{}, "", err
	}
	o.ingested(info.Digest, !had)
	chain := stats.DiffID
	if parent != "" {
		chain = snapshot.ChainIDs([]digest.Digest{parent, stats.DiffID})[1]
	}
	if err := o.s.commitLayers([]*snapshot.Staging{st}, []snapshot.Layer{{ChainID: chain, DiffID: stats.DiffID, Parent: parent, Size: stats.Bytes}}); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("import: %w", err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: info.Digest, Size: info.Size}
	return desc, stats.DiffID, nil
}
