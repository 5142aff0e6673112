package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// bucketBuildCache maps a build step's cache key to the state it produced (see BuildState).
var bucketBuildCache = []byte("image.buildcache")

// BuildState is what a build step leaves behind: an image config and the layers under it.
// It is not an image: it has no config blob, no manifest and no record until a build
// ends with it (CreateFromState). The build cache keeps states by key; they keep their
// layers (blobs and unpacked trees) from garbage collection, as image records do.
type BuildState struct {
	Config ocispec.Image                      `json:"config"`
	Ext    dockerspec.DockerOCIImageConfigExt `json:"ext"`
	Layers []ocispec.Descriptor               `json:"layers"`
	// Base is the image the state's stage started from (empty for scratch): the parent of
	// the image a build makes.
	Base digest.Digest `json:"base,omitempty"`
}

// TopLayer is the chain ID of the state's top layer (empty without layers).
func (st *BuildState) TopLayer() digest.Digest {
	ids := snapshot.ChainIDs(st.Config.RootFS.DiffIDs)
	if len(ids) == 0 {
		return ""
	}
	return ids[len(ids)-1]
}

// Clone is a deep enough copy of st to change its config and layers.
func (st *BuildState) Clone() *BuildState {
	b, err := json.Marshal(st)
	if err != nil {
		panic(err) // only plain data
	}
	var c BuildState
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

// StateOf is the build state of an image (a build's FROM).
func StateOf(im *Image) *BuildState {
	st := &BuildState{Config: im.Config, Ext: im.ConfigExt, Layers: im.Manifest.Layers, Base: im.ID}
	return st.Clone()
}

type cacheEntry struct {
	State   BuildState `json:"state"`
	Created time.Time  `json:"created"`
	Used    time.Time  `json:"used"`
}

// CachedStep returns the state a build step with this key left, if the cache has it and
// its layers are all still there.
func (s *Store) CachedStep(key digest.Digest) (*BuildState, bool, error) {
	var e cacheEntry
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBuildCache).Get([]byte(key))
		if b == nil {
			return nil
		}
		found = true
		return json.Unmarshal(b, &e)
	})
	if err != nil || !found {
		return nil, false, err
	}
	for _, c := range snapshot.ChainIDs(e.State.Config.RootFS.DiffIDs) {
		if !s.Snaps.HasLayer(c) {
			return nil, false, nil
		}
	}
	for _, l := range e.State.Layers {
		if !s.Content.Exists(l.Digest) {
			return nil, false, nil
		}
	}
	return &e.State, true, nil
}

// PutStep records the state a build step left under its key (a step that adds no layer,
// or one whose layers exist already).
func (s *Store) PutStep(ctx context.Context, key digest.Digest, st *BuildState) error {
	return s.withOp(ctx, func() error { return s.putStep(key, st) })
}

func (s *Store) putStep(key digest.Digest, st *BuildState) error {
	now := time.Now().UTC()
	b, err := json.Marshal(cacheEntry{State: *st, Created: now, Used: now})
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBuildCache).Put([]byte(key), b)
	})
}

// CommitStep writes a snapshot's upper directory as a new layer on top of st (a RUN,
// COPY or ADD step), appends history to its config and records the result under key,
// in one operation (garbage collection cannot sweep the new layer in between). st is
// not changed; the new state is returned.
func (s *Store) CommitStep(ctx context.Context, key digest.Digest, snapshotKey string, st *BuildState, h ocispec.History) (*BuildState, error) {
	sn, err := s.Snaps.Snapshot(snapshotKey)
	if err != nil {
		return nil, err
	}
	if sn.Parent != st.TopLayer() {
		return nil, errdefs.Invalid("build: snapshot %s is not based on the step's layers", snapshotKey)
	}
	upper, err := s.Snaps.UpperDir(snapshotKey)
	if err != nil {
		return nil, err
	}
	next := st.Clone()
	err = s.run(ctx, func(o *op) error {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(archive.WriteDiff(ctx, pw, upper)) }()
		layer, diffID, err := o.layerFromTar(ctx, pr, sn.Parent, true)
		pr.CloseWithError(err)
		if err != nil {
			return fmt.Errorf("commit build step: %w", err)
		}
		next.Config.RootFS.Type = "layers"
		next.Config.RootFS.DiffIDs = append(next.Config.RootFS.DiffIDs, diffID)
		next.Layers = append(next.Layers, layer)
		next.Config.History = append(next.Config.History, h)
		if err := s.Content.Sync(); err != nil {
			return err
		}
		return s.putStep(key, next)
	})
	if err != nil {
		return nil, err
	}
	return next, nil
}

// CreateFromState makes an image of a build's final state and gives it the references
// (none, or several tags). The image's parent is the state's base image.
func (s *Store) CreateFromState(ctx context.Context, st *BuildState, names []string) (*Image, error) {
	var refs []reference.Named
	for _, n := range names {
		r, err := newImageRefs(n)
		if err != nil {
			return nil, err
		}
		refs = append(refs, r...)
	}
	var im *Image
	err := s.run(ctx, func(o *op) error {
		cfg := st.Clone()
		if cfg.Config.RootFS.Type == "" {
			cfg.Config.RootFS.Type = "layers"
		}
		if cfg.Config.RootFS.DiffIDs == nil {
			cfg.Config.RootFS.DiffIDs = []digest.Digest{}
		}
		p := &pending{config: cfg.Config, parent: st.Base, refs: refs}
		ext := cfg.Ext
		if ext.Healthcheck != nil || len(ext.OnBuild) > 0 || len(ext.Shell) > 0 {
			p.ext = &ext
		}
		var err error
		im, err = o.finishOne(ctx, p, cfg.Layers)
		return err
	})
	return im, err
}

// PruneBuildCache drops build cache entries (all of them, or those not used for longer
// than keepFor) and collects what only they kept.
func (s *Store) PruneBuildCache(ctx context.Context, keepFor time.Duration) ([]string, GCResult, error) {
	deleted := []string{}
	cutoff := time.Now().Add(-keepFor)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBuildCache)
		var drop [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			var e cacheEntry
			if keepFor > 0 && json.Unmarshal(v, &e) == nil && e.Used.After(cutoff) {
				return nil
			}
			drop = append(drop, append([]byte(nil), k...))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		for _, k := range drop {
			deleted = append(deleted, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, GCResult{}, fmt.Errorf("prune build cache: %w", err)
	}
	res, err := s.GC(ctx)
	return deleted, res, err
}

// markBuildCache marks the layers of every cached build state.
func markBuildCache(tx *bolt.Tx, blobs, layers map[digest.Digest]bool) error {
	return tx.Bucket(bucketBuildCache).ForEach(func(k, v []byte) error {
		var e cacheEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("build cache entry %s: %w", k, err)
		}
		for _, l := range e.State.Layers {
			blobs[l.Digest] = true
		}
		for _, c := range snapshot.ChainIDs(e.State.Config.RootFS.DiffIDs) {
			layers[c] = true
		}
		return nil
	})
}

// BuildHistoryComment is the comment of the history entries of build steps.
const BuildHistoryComment = "berth build"

// CacheRecord is a layer that the build cache holds (system df's build cache).
type CacheRecord struct {
	ID          string
	Description string
	Size        int64
	// Shared is whether an image uses the layer too.
	Shared     bool
	Created    time.Time
	LastUsed   time.Time
	UsageCount int
}

// BuildCacheRecords lists the layers that build steps made, one record per layer.
func (s *Store) BuildCacheRecords() ([]CacheRecord, error) {
	s.opMu.RLock()
	defer s.opMu.RUnlock()
	inImages := map[digest.Digest]bool{}
	byChain := map[digest.Digest]*CacheRecord{}
	var order []digest.Digest
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			if im, err := s.get(tx, digest.Digest(k)); err == nil {
				for _, c := range im.ChainIDs {
					inImages[c] = true
				}
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketBuildCache).ForEach(func(_, v []byte) error {
			var e cacheEntry
			if json.Unmarshal(v, &e) != nil {
				return nil
			}
			top := e.State.TopLayer()
			// The top layer is a build's when the last history entry with a layer is.
			var made *ocispec.History
			for i := len(e.State.Config.History) - 1; i >= 0; i-- {
				if h := &e.State.Config.History[i]; !h.EmptyLayer {
					made = h
					break
				}
			}
			if top == "" || made == nil || made.Comment != BuildHistoryComment {
				return nil
			}
			if r, ok := byChain[top]; ok {
				r.UsageCount++
				if e.Created.Before(r.Created) {
					r.Created = e.Created
				}
				return nil
			}
			byChain[top] = &CacheRecord{ID: top.Encoded()[:25], Description: made.CreatedBy, Created: e.Created, LastUsed: e.Used, UsageCount: 1}
			order = append(order, top)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	var out []CacheRecord
	for _, c := range order {
		r := byChain[c]
		r.Shared = inImages[c]
		if l, err := s.Snaps.Layer(c); err == nil {
			r.Size = l.Size
		} else {
			continue // the layer of an image that was a build's base
		}
		out = append(out, *r)
	}
	return out, nil
}
