package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"berth/internal/content"
	"berth/internal/errdefs"
	"berth/internal/snapshot"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// GCResult says what a collection removed.
type GCResult struct {
	Blobs     int
	Layers    int
	Snapshots int
	// Bytes is the space freed: blob sizes plus layer sizes.
	Bytes int64
}

// GC removes every blob, layer and snapshot that no image record and no
// lease reaches: blobs from records' manifests (and indexes) to configs and
// layers, layers by the chain IDs of records' configs and of leased
// snapshots' parents. It waits for running operations to finish and blocks
// new ones while it sweeps.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	var res GCResult
	blobs, layers, snaps, err := s.mark()
	if err != nil {
		return res, fmt.Errorf("garbage collection: %w", err)
	}
	// Snapshots first: they keep layers.
	all, err := s.Snaps.Snapshots()
	if err != nil {
		return res, err
	}
	for _, sn := range all {
		if !snaps[sn.Key] {
			if err := s.Snaps.Remove(sn.Key); err != nil {
				return res, err
			}
			res.Snapshots++
		}
	}
	ls, err := s.Snaps.Layers()
	if err != nil {
		return res, err
	}
	gone := map[digest.Digest]bool{}
	for _, l := range ls {
		if !layers[l.ChainID] {
			gone[l.ChainID] = true
		}
	}
	// A split blob still needed outlives the last layer that holds it.
	if err := s.keepSplits(ctx, blobs, ls, gone); err != nil {
		return res, err
	}
	for _, l := range ls {
		if gone[l.ChainID] {
			if err := s.Snaps.RemoveLayer(l.ChainID); err != nil {
				return res, err
			}
			res.Layers++
			res.Bytes += l.Size
		}
	}
	err = s.Content.Walk(func(i content.Info) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !blobs[i.Digest] {
			if err := s.Content.Delete(i.Digest); err != nil {
				return err
			}
			res.Blobs++
			res.Bytes += i.Stored
		}
		return nil
	})
	return res, err
}

// mark returns what is reachable.
func (s *Store) mark() (blobs map[digest.Digest]bool, layers map[digest.Digest]bool, snaps map[string]bool, err error) {
	blobs, layers, snaps = map[digest.Digest]bool{}, map[digest.Digest]bool{}, map[string]bool{}
	err = s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			r, _, err := getRecord(tx, digest.Digest(k))
			if err != nil {
				return err
			}
			if r.Index != nil {
				blobs[r.Index.Digest] = true
			}
			return s.markManifest(r.Target.Digest, blobs, layers)
		})
		if err != nil {
			return err
		}
		if err := markBuildCache(tx, blobs, layers); err != nil {
			return err
		}
		return tx.Bucket(bucketLeases).ForEach(func(k, v []byte) error {
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("lease %s: %w", k, err)
			}
			if l.Snapshot != "" {
				snaps[l.Snapshot] = true
				if sn, err := s.Snaps.Snapshot(l.Snapshot); err == nil {
					s.markChain(sn.Parent, layers)
				}
			}
			return nil
		})
	})
	return blobs, layers, snaps, err
}

// markChain marks layer top and every layer below it.
func (s *Store) markChain(top digest.Digest, layers map[digest.Digest]bool) {
	for c := top; c != "" && !layers[c]; {
		layers[c] = true
		l, err := s.Snaps.Layer(c)
		if err != nil {
			return
		}
		c = l.Parent
	}
}

// markManifest marks a manifest, its config and layers, and the chain IDs
// of its config. A missing document is not an error here (Check reports
// it): the collector keeps what it can reach.
func (s *Store) markManifest(m digest.Digest, blobs, layers map[digest.Digest]bool) error {
	blobs[m] = true
	var man ocispec.Manifest
	if err := s.readJSON(m, &man); err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		return err
	}
	blobs[man.Config.Digest] = true
	for _, l := range man.Layers {
		blobs[l.Digest] = true
	}
	var cfg ocispec.Image
	if err := s.readJSON(man.Config.Digest, &cfg); err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		return err
	}
	for _, c := range snapshot.ChainIDs(cfg.RootFS.DiffIDs) {
		layers[c] = true
	}
	return nil
}

// Problem is one inconsistency found by Check.
type Problem struct {
	What string
}

// Check verifies the whole store (`berth system check`): every blob matches
// its digest; every record's manifest, config and layer blobs exist; every
// layer of every image is unpacked with the diff ID its config names;
// every reference and lease points at something that exists; nothing is
// left in the store's temporary directories. It returns the problems found.
func (s *Store) Check(ctx context.Context) ([]Problem, error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	var ps []Problem
	add := func(format string, a ...any) { ps = append(ps, Problem{What: fmt.Sprintf(format, a...)}) }
	err := s.Content.Walk(func(i content.Info) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i.Split && !s.Content.Exists(i.Digest) {
			// No layer holds its files: garbage for the collector, or
			// a missing layer blob the images' pass below reports.
			return nil
		}
		if err := s.Content.Verify(i.Digest); err != nil {
			add("blob %s: %v", i.Digest, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n, err := s.Content.IngestCount(); err != nil || n > 0 {
		add("content ingest holds %d unfinished writes (%v)", n, err)
	}
	if n, err := s.Snaps.TempCount(); err != nil || n > 0 {
		add("snapshot tmp holds %d entries (%v)", n, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
			if tx.Bucket(bucketImages).Get(v) == nil {
				add("reference %s points at missing image %s", k, v)
			}
			return nil
		})
		tx.Bucket(bucketLeases).ForEach(func(k, v []byte) error {
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil {
				add("lease %s: %v", k, err)
				return nil
			}
			if l.Image != "" && tx.Bucket(bucketImages).Get([]byte(l.Image)) == nil {
				add("lease %s: image %s missing", k, l.Image)
			}
			if l.Snapshot != "" {
				if _, err := s.Snaps.Snapshot(l.Snapshot); err != nil {
					add("lease %s: %v", k, err)
				}
			}
			return nil
		})
		return tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			im, err := s.get(tx, digest.Digest(k))
			if err != nil {
				add("image %s: %v", k, err)
				return nil
			}
			for _, l := range im.Manifest.Layers {
				if !s.Content.Exists(l.Digest) {
					add("image %s: layer blob %s missing", k, l.Digest)
				}
			}
			for i, c := range im.ChainIDs {
				l, err := s.Snaps.Layer(c)
				if err != nil {
					add("image %s: layer %d: %v", k, i, err)
				} else if l.DiffID != im.Config.RootFS.DiffIDs[i] {
					add("image %s: layer %s has diff ID %s, config says %s", k, c, l.DiffID, im.Config.RootFS.DiffIDs[i])
				}
			}
			return nil
		})
	})
	return ps, err
}
