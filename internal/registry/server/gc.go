package server

import (
	"context"
	"fmt"

	"berth/internal/content"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// GCStats is what a garbage collection did.
type GCStats struct {
	Blobs   int   // blobs removed
	Bytes   int64 // their size
	Uploads int   // stale uploads removed
}

// GC removes the blobs no repository references (no blob link, no
// manifest, not named by a manifest) and the uploads idle for longer than
// the UploadTTL. It runs while the server serves: requests that store a
// blob hold the GC lock shared from the blob's commit to its link, GC holds
// it exclusively, so a blob being pushed is never swept.
func (s *Server) GC(ctx context.Context) (GCStats, error) {
	var st GCStats
	n, err := s.PurgeUploads(ctx, s.opts.UploadTTL)
	st.Uploads = n
	if err != nil {
		return st, err
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	live := map[digest.Digest]bool{}
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktRepos).ForEachBucket(func(name []byte) error {
			rb := tx.Bucket(bktRepos).Bucket(name)
			rb.Bucket(bktBlobs).ForEach(func(k, _ []byte) error {
				live[digest.Digest(k)] = true
				return nil
			})
			return rb.Bucket(bktManifests).ForEach(func(k, v []byte) error {
				live[digest.Digest(k)] = true
				var rec manifestRecord
				if getJSON(rb.Bucket(bktManifests), string(k), &rec) {
					for _, d := range rec.Refs {
						live[d] = true
					}
				}
				return nil
			})
		})
	})
	if err != nil {
		return st, fmt.Errorf("registry gc: %w", err)
	}
	var dead []content.Info
	if err := s.content.Walk(func(i content.Info) error {
		if !live[i.Digest] {
			dead = append(dead, i)
		}
		return ctx.Err()
	}); err != nil {
		return st, fmt.Errorf("registry gc: %w", err)
	}
	for _, i := range dead {
		if err := s.content.Delete(i.Digest); err != nil {
			return st, fmt.Errorf("registry gc: %w", err)
		}
		st.Blobs++
		st.Bytes += i.Size
	}
	if st.Blobs > 0 || st.Uploads > 0 {
		s.log.Info("registry gc", "blobs", st.Blobs, "bytes", st.Bytes, "uploads", st.Uploads)
	}
	return st, nil
}
