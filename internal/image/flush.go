package image

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"

	"berth/internal/archive"
	"berth/internal/errdefs"
	"berth/internal/snapshot"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Unpacked layers are made durable after they are committed, not before.
//
// Every layer is unpacked from a blob that is durable before any record
// names it (content.Writer.Commit fsyncs it), so a layer's files are a copy
// that can be made again. commitLayers therefore commits layers without
// waiting for their files to reach the disk; each is marked with the boot ID
// of the system (snapshot.Layer.Unsynced), and a flush in the background
// syncs the file system and clears the marks. When the store is opened, the
// marks left by this boot of the system are cleared after one syncfs (the
// files are in the page cache: only the process ended), and the layers
// marked by an earlier boot, whose files may have been lost with the page
// cache, are unpacked again from their blobs (recoverLayers). A load, pull
// or import thus waits for the durability of what it cannot make again, and
// no longer for a syncfs of everything it unpacked.

// commitLayers commits staged layers. Without a boot ID to mark them with,
// it syncs their files first. On failure the layers not committed yet are
// dropped.
func (s *Store) commitLayers(sts []*snapshot.Staging, ls []snapshot.Layer) error {
	boot := snapshot.BootID()
	var err error
	if boot == "" {
		err = s.Snaps.Sync()
	}
	committed := false
	for i, st := range sts {
		if err != nil {
			st.Abort()
			continue
		}
		ls[i].Unsynced = boot
		if err = st.Commit(ls[i]); err == nil {
			committed = true
		}
	}
	if committed && boot != "" {
		s.flushLater()
	}
	return err
}

// flushLater starts the background flush, or has the running one go once
// more (for layers committed after its syncfs began).
func (s *Store) flushLater() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	switch {
	case s.closed:
	case s.flushing:
		s.flushAgain = true
	default:
		s.flushing = true
		go s.flush()
	}
}

// Flush makes the layers committed so far durable and clears their marks
// now, after waiting for a background flush in progress: what the
// background flush would do, for callers that need it done (tests comparing
// the store's files, a shutdown that wants no work left for the next Open).
// It must not be called inside an operation (it takes the operation lock).
func (s *Store) Flush() error {
	s.flushMu.Lock()
	for s.flushing {
		s.flushDone.Wait()
	}
	s.flushing = true
	s.flushAgain = false
	s.flushMu.Unlock()
	err := s.flushOnce()
	s.flushMu.Lock()
	s.flushing = false
	s.flushDone.Broadcast()
	s.flushMu.Unlock()
	return err
}

// flush runs flushOnce until no layer was committed meanwhile.
func (s *Store) flush() {
	for {
		if err := s.flushOnce(); err != nil {
			slog.Warn("image store: sync unpacked layers", "err", err)
		}
		s.flushMu.Lock()
		if s.closed || !s.flushAgain {
			s.flushing = false
			s.flushDone.Broadcast()
			s.flushMu.Unlock()
			return
		}
		s.flushAgain = false
		s.flushMu.Unlock()
	}
}

// flushOnce lists the layers committed unsynced, syncs the file system and
// clears their marks. It holds the operation lock shared, so the collector
// cannot remove a listed layer (and an operation commit it again, unsynced)
// before its mark is cleared. Once the store is closed it touches no record
// (a syncfs in progress still ends on its own): the next Open clears the
// marks.
func (s *Store) flushOnce() error {
	s.opMu.RLock()
	defer s.opMu.RUnlock()
	ls, _, err := s.Snaps.UnsyncedLayers()
	if err != nil || len(ls) == 0 {
		return err
	}
	if err := s.Snaps.Sync(); err != nil {
		return err
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.closed {
		return nil
	}
	return s.Snaps.MarkSynced(ls)
}

// recoverLayers, when the store opens, makes the layers committed unsynced
// durable: those of this boot by a syncfs, those of an earlier boot by
// unpacking them again from their blobs. A layer that cannot be unpacked
// again (no blob names it any more, the blob is bad, the disk is full) is
// removed, so that the next load or pull of its image unpacks it anew; one
// that a container's snapshot stands on is kept, marked, and tried again
// at the next Open. None of this keeps the store from opening.
func (s *Store) recoverLayers() error {
	current, earlier, err := s.Snaps.UnsyncedLayers()
	if err != nil {
		return err
	}
	if err := s.Snaps.SyncLayers(current); err != nil {
		return err
	}
	if len(earlier) == 0 {
		return nil
	}
	blobs, err := s.layerBlobs()
	if err != nil {
		return err
	}
	var used map[digest.Digest]bool
	// lost are split blobs whose last tree was a layer removed here.
	lost := map[digest.Digest]bool{}
	for _, l := range earlier {
		err := errors.New("no image or build cache entry names a blob of it")
		for _, blob := range blobs[l.ChainID] {
			if err = s.reunpack(l, blob); err == nil {
				break
			}
		}
		if err == nil {
			continue
		}
		if used == nil {
			used = s.layersInUse()
		}
		split := s.Content.IsSplit(l.DiffID)
		if split && !errors.Is(err, errdefs.ErrCorrupt) && !errors.Is(err, errdefs.ErrNotFound) {
			// The layer holds its blob: removing it would lose the blob
			// for a failure (a full disk) that says nothing of its files.
			slog.Error("image store: a layer unpacked before the system restarted may have lost files, and cannot be checked now; it holds its own blob, so it is kept, and tried again at the next start", "layer", l.ChainID, "err", err)
			continue
		}
		if used[l.ChainID] {
			slog.Error("image store: a layer unpacked before the system restarted may have lost files, and cannot be unpacked again; a container stands on it, so it is kept", "layer", l.ChainID, "err", err)
			continue
		}
		slog.Warn("image store: a layer unpacked before the system restarted may have lost files, and cannot be unpacked again: removed (loading or pulling its image unpacks it anew)", "layer", l.ChainID, "err", err)
		if err := s.Snaps.RemoveLayer(l.ChainID); err != nil {
			slog.Error("image store: remove layer", "layer", l.ChainID, "err", err)
		}
		if split && !s.Content.Exists(l.DiffID) {
			lost[l.DiffID] = true
		}
	}
	if err := s.dropLostImages(lost); err != nil {
		slog.Error("image store: remove the images whose layer files were lost", "err", err)
	}
	return nil
}

// dropLostImages removes the records of the images with a layer blob in
// lost: split blobs whose files were lost with a crash of the system, soon
// after the load that brought them. Such an image is gone, not broken;
// loading it again brings it back.
func (s *Store) dropLostImages(lost map[digest.Digest]bool) error {
	if len(lost) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		var ids []digest.Digest
		tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			ids = append(ids, digest.Digest(k))
			return nil
		})
		for _, id := range ids {
			im, err := s.get(tx, id)
			if err != nil || !slices.ContainsFunc(im.Manifest.Layers, func(l ocispec.Descriptor) bool { return lost[l.Digest] }) {
				continue
			}
			for _, r := range append(im.RepoTags, im.RepoDigests...) {
				if err := tx.Bucket(bucketRefs).Delete([]byte(r)); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bucketImages).Delete([]byte(id)); err != nil {
				return err
			}
			slog.Warn("image store: an image loaded just before the system restarted lost layer files with the crash, and is removed: load it again", "image", id, "tags", im.RepoTags)
		}
		for d := range lost {
			if err := s.Content.Delete(d); err != nil {
				return err
			}
		}
		return nil
	})
}

// layersInUse are the layers below containers' snapshots.
func (s *Store) layersInUse() map[digest.Digest]bool {
	used := map[digest.Digest]bool{}
	sns, _ := s.Snaps.Snapshots()
	for _, sn := range sns {
		s.markChain(sn.Parent, used)
	}
	return used
}

// reunpack unpacks layer l again from its blob and puts the files in place.
// Symbolic links are kept whatever their targets, as a committed or built
// layer was unpacked (the layer was accepted once; paths are still resolved
// inside the directory).
func (s *Store) reunpack(l snapshot.Layer, blob ocispec.Descriptor) error {
	f, err := s.Content.Open(blob.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := s.Snaps.NewLayer(context.Background())
	if err != nil {
		return err
	}
	stats, err := archive.Unpack(context.Background(), f, st.Dir, archive.UnpackOptions{Digest: blob.Digest, AnySymlinkTarget: true})
	if err == nil && stats.DiffID != l.DiffID {
		err = errdefs.Corrupt("blob %s has diff ID %s, the layer %s", blob.Digest, stats.DiffID, l.DiffID)
	}
	if err != nil {
		st.Abort()
		return err
	}
	return s.Snaps.ReplaceLayerFS(st, l)
}

// layerBlobs maps the chain ID of every layer that an image or the build
// cache names to the blobs it is unpacked from.
func (s *Store) layerBlobs() (map[digest.Digest][]ocispec.Descriptor, error) {
	out := map[digest.Digest][]ocispec.Descriptor{}
	add := func(diffIDs []digest.Digest, layers []ocispec.Descriptor) {
		for i, c := range snapshot.ChainIDs(diffIDs) {
			if i < len(layers) && !slices.ContainsFunc(out[c], func(d ocispec.Descriptor) bool { return d.Digest == layers[i].Digest }) {
				out[c] = append(out[c], layers[i])
			}
		}
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			r, _, err := getRecord(tx, digest.Digest(k))
			if err != nil {
				return err
			}
			var man ocispec.Manifest
			var cfg ocispec.Image
			if s.readJSON(r.Target.Digest, &man) == nil && s.readJSON(man.Config.Digest, &cfg) == nil {
				add(cfg.RootFS.DiffIDs, man.Layers)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketBuildCache).ForEach(func(k, v []byte) error {
			var e cacheEntry
			if json.Unmarshal(v, &e) == nil {
				add(e.State.Config.RootFS.DiffIDs, e.State.Layers)
			}
			return nil
		})
	})
	return out, err
}
