package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"berth/internal/archive"
	"berth/internal/errdefs"
	"berth/internal/snapshot"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CommitOptions describes `docker commit`.
type CommitOptions struct {
	// Snapshot is the container's snapshot key.
	Snapshot string
	// Image is the container's image (empty for a container made from no
	// image); its config and layers are the base of the new image.
	Image digest.Digest
	// Config, when not nil, replaces the base image's runtime config (the
	// daemon passes the container's own: its Cmd, Env, ...).
	Config *ocispec.ImageConfig
	// Healthcheck, when not nil, is the new image's HEALTHCHECK (the container's); else the
	// base image's is kept. The base image's ONBUILD and SHELL are kept.
	Healthcheck *dockerspec.HealthcheckConfig
	// Changes are Dockerfile instructions applied after Config.
	Changes []string
	Author  string
	Message string
	// CreatedBy is the history line (default empty, as docker commit).
	CreatedBy string
	// Ref names the new image; empty leaves it untagged.
	Ref string
}

// Commit makes a new image from a container's snapshot: the upper
// directory, written as a layer (whiteouts back in their .wh. form), over
// the base image's layers. The container may be running (its upper
// directory is read as it is; pause it first for a consistent copy).
func (s *Store) Commit(ctx context.Context, opts CommitOptions) (*Image, error) {
	refs, err := newImageRefs(opts.Ref)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	sn, err := s.Snaps.Snapshot(opts.Snapshot)
	if err != nil {
		return nil, err
	}
	var base *Image
	var ext *dockerspec.DockerOCIImageConfigExt
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}, RootFS: ocispec.RootFS{Type: "layers"}}
	var layers []ocispec.Descriptor
	if opts.Image != "" {
		if base, err = s.Get(opts.Image); err != nil {
			return nil, err
		}
		if base.TopLayer() != sn.Parent {
			return nil, errdefs.Invalid("commit: snapshot %s is not based on image %s", opts.Snapshot, opts.Image)
		}
		cfg = base.Config
		e := base.ConfigExt
		ext = &e
		cfg.RootFS.DiffIDs = append([]digest.Digest(nil), cfg.RootFS.DiffIDs...)
		cfg.History = append([]ocispec.History(nil), cfg.History...)
		layers = append(layers, base.Manifest.Layers...)
	}
	if opts.Config != nil {
		cfg.Config = *opts.Config
	}
	if err := ApplyChanges(&cfg.Config, opts.Changes); err != nil {
		return nil, err
	}
	if opts.Healthcheck != nil {
		if ext == nil {
			ext = &dockerspec.DockerOCIImageConfigExt{}
		}
		h := *opts.Healthcheck
		ext.Healthcheck = &h
	}
	if ext != nil && ext.Healthcheck == nil && len(ext.OnBuild) == 0 && len(ext.Shell) == 0 {
		ext = nil
	}
	upper, _ := s.Snaps.UpperDir(opts.Snapshot)
	var im *Image
	err = s.run(ctx, func(o *op) error {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(archive.WriteDiff(ctx, pw, upper)) }()
		layer, diffID, err := o.layerFromTar(ctx, pr, sn.Parent, true)
		pr.CloseWithError(err)
		if err != nil {
			return fmt.Errorf("commit %s: %w", opts.Snapshot, err)
		}
		now := time.Now().UTC()
		cfg.Created = &now
		cfg.Author = opts.Author
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		cfg.History = append(cfg.History, ocispec.History{Created: &now, Author: opts.Author, Comment: opts.Message, CreatedBy: opts.CreatedBy})
		p := &pending{config: cfg, ext: ext}
		if base != nil {
			p.parent = base.ID
		}
		p.refs = refs
		im, err = o.finishOne(ctx, p, append(layers, layer))
		return err
	})
	return im, err
}

// Export writes a container's whole filesystem (its image's layers and its
// own changes, merged) to w as a tar (`docker export`). It mounts a
// read-only view of its own, so the container may be running.
func (s *Store) Export(ctx context.Context, w io.Writer, snapshotKey string) error {
	return s.view(snapshotKey, "", func(dir string) error { return archive.WriteTree(ctx, w, dir) })
}

// ExportImage writes an image's merged filesystem to w as a tar.
func (s *Store) ExportImage(ctx context.Context, w io.Writer, name string) error {
	im, err := s.Resolve(name)
	if err != nil {
		return err
	}
	return s.view("", im.TopLayer(), func(dir string) error { return archive.WriteTree(ctx, w, dir) })
}

// view mounts a read-only view (see snapshot.MountView) in a temporary
// directory for the duration of fn.
func (s *Store) view(key string, chain digest.Digest, fn func(dir string) error) error {
	dir, err := os.MkdirTemp(filepath.Join(s.root), "view-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if key == "" && chain == "" {
		return fn(dir)
	}
	if err := s.Snaps.MountView(key, chain, dir); err != nil {
		return err
	}
	defer snapshot.Unmount(dir)
	return fn(dir)
}
