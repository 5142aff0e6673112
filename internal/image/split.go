package image

import (
	"context"
	"log/slog"
	"slices"

	"berth/internal/snapshot"

	"github.com/opencontainers/go-digest"
)

// Layer blobs kept as splits.
//
// A load keeps the uncompressed layer blobs it unpacks as splits
// (content.Store.PutSplit): the unpacked layer holds the files, and the
// blob is rebuilt from them when it is read (save, push, system check,
// unpacking it under another parent). The layer's files are then the only
// copy of the blob, so:
//   - a split blob exists while a layer with it as diff ID does
//     (splitTrees); the collector makes a blob plain before it removes the
//     last such layer while something still needs the blob (keepSplits);
//   - after a crash of the system, a layer committed unsynced is unpacked
//     again from its blob (recoverLayers), which for a split blob is
//     rebuilt from that same layer and checked against its digest: files
//     lost with the page cache make it fail, and the layer is dropped as
//     before (loading the image again brings it back).

// splitTrees names the unpacked layers with diff ID d, committed ones
// first, then (with staged) those staged by running operations.
func (s *Store) splitTrees(d digest.Digest, staged bool) []string {
	var out []string
	// A base layer's chain ID is its diff ID.
	if l, err := s.Snaps.Layer(d); err == nil && l.DiffID == d {
		if fs, err := s.Snaps.LayerFS(d); err == nil {
			out = append(out, fs)
		}
	}
	if ls, err := s.Snaps.Layers(); err == nil {
		for _, l := range ls {
			if l.DiffID == d && l.ChainID != d {
				if fs, err := s.Snaps.LayerFS(l.ChainID); err == nil {
					out = append(out, fs)
				}
			}
		}
	}
	if staged {
		s.stagedMu.Lock()
		out = append(out, s.stagedTrees[d]...)
		s.stagedMu.Unlock()
	}
	return out
}

// stageTree makes the staged layer dir a tree of split blob d until the
// returned function is called (once the layer is committed or dropped).
func (s *Store) stageTree(d digest.Digest, dir string) func() {
	s.stagedMu.Lock()
	defer s.stagedMu.Unlock()
	if s.stagedTrees == nil {
		s.stagedTrees = map[digest.Digest][]string{}
	}
	s.stagedTrees[d] = append(s.stagedTrees[d], dir)
	return func() {
		s.stagedMu.Lock()
		defer s.stagedMu.Unlock()
		ts := slices.DeleteFunc(s.stagedTrees[d], func(t string) bool { return t == dir })
		if len(ts) == 0 {
			delete(s.stagedTrees, d)
		} else {
			s.stagedTrees[d] = ts
		}
	}
}

// keepSplits makes plain, before the layers gone are removed, every split
// blob in blobs (those still needed) that no layer kept holds. A blob that
// cannot be made plain (its files changed) keeps its layers: they leave
// gone, and the failure is logged, not the collection's.
func (s *Store) keepSplits(ctx context.Context, blobs map[digest.Digest]bool, all []snapshot.Layer, gone map[digest.Digest]bool) error {
	kept := map[digest.Digest]bool{}
	for _, l := range all {
		if !gone[l.ChainID] {
			kept[l.DiffID] = true
		}
	}
	done := map[digest.Digest]bool{}
	for _, l := range all {
		d := l.DiffID
		if !gone[l.ChainID] || kept[d] || !blobs[d] || done[d] {
			continue
		}
		done[d] = true
		if info, err := s.Content.Info(d); err != nil || !info.Split {
			continue
		}
		if err := s.Content.Materialize(ctx, d); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			slog.Error("image store: a blob kept as the split of layers the collector would remove cannot be made plain; the layers are kept", "blob", d, "err", err)
			for _, k := range all {
				if k.DiffID == d {
					delete(gone, k.ChainID)
				}
			}
		}
	}
	return nil
}
