// Package image owns berth's images: the records that name them (tags and
// digests), the OCI and Docker documents that describe them, and every
// operation on them that the daemon offers: import, load, save, commit,
// export, tag, remove, list, history, disk usage, prune and garbage
// collection.
//
// It is built on internal/content (blobs by digest), internal/snapshot
// (layers unpacked once per chain ID, overlay snapshots for containers) and
// internal/archive (tar streams). Records live in a bbolt database: an image
// becomes visible in one transaction, after its blobs and layers are
// complete and durable, so an interrupted operation leaves nothing that a
// reader could see and nothing that the next garbage collection keeps.
//
// The package knows nothing of the Docker API's wire shapes or of
// containers beyond leases: a container holds a lease naming its image and
// its snapshot, which keeps both from being collected or removed.
package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"berth/internal/content"
	"berth/internal/errdefs"
	"berth/internal/snapshot"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketImages = []byte("image.images") // image ID -> record
	bucketRefs   = []byte("image.refs")   // normalized reference -> image ID
	bucketLeases = []byte("image.leases") // lease ID -> Lease
)

// Store is berth's image store. One process owns a store root at a time
// (the database is locked while open).
type Store struct {
	root    string
	Content *content.Store
	Snaps   *snapshot.Store
	db      *bolt.DB
	ownDB   bool

	// opMu: operations that add content or layers hold it shared for
	// their whole run; garbage collection holds it exclusively, so it
	// never sweeps what an operation has written but not yet recorded.
	opMu sync.RWMutex
	// flushMu guards the background flush of unpacked layers (flush.go).
	flushMu                      sync.Mutex
	flushDone                    *sync.Cond // on flushMu: flushing ended
	flushing, flushAgain, closed bool
	// stagedTrees are the staged layers that split blobs stored by
	// running operations are rebuilt from until the layers are
	// committed (splitTrees).
	stagedMu    sync.Mutex
	stagedTrees map[digest.Digest][]string
}

// Options tunes Open.
type Options struct {
	// DB is a database to keep records in (the daemon's). Open opens
	// <root>/images.db when nil.
	DB *bolt.DB
}

// Open opens (creating if needed) the store under root: content in
// root/content, snapshots in root/snapshots.
func Open(root string, opts Options) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	s := &Store{root: root, db: opts.DB}
	s.flushDone = sync.NewCond(&s.flushMu)
	if s.db == nil {
		db, err := bolt.Open(filepath.Join(root, "images.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("image store: open %s: %w (is another process using it?)", filepath.Join(root, "images.db"), err)
		}
		s.db, s.ownDB = db, true
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketImages, bucketRefs, bucketLeases, bucketBuildCache} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = removeViews(root)
	}
	if err == nil {
		s.Content, err = content.Open(filepath.Join(root, "content"))
	}
	if err == nil {
		s.Snaps, err = snapshot.Open(filepath.Join(root, "snapshots"))
	}
	if err == nil {
		s.Content.SetTrees(s.splitTrees)
		err = s.recoverLayers()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("image store: %w", err)
	}
	return s, nil
}

// Close closes the database if Open opened it. A background flush of
// unpacked layers stops touching the store (see commitLayers).
func (s *Store) Close() error {
	s.flushMu.Lock()
	s.closed = true
	s.flushMu.Unlock()
	if s.ownDB && s.db != nil {
		return s.db.Close()
	}
	return nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// record is what the database keeps per image.
type record struct {
	// Target is the image's manifest (a single-platform manifest, OCI or
	// Docker schema2).
	Target ocispec.Descriptor `json:"target"`
	// Index is the index or manifest list the manifest was chosen from,
	// when there was one (kept so that save writes it back).
	Index *ocispec.Descriptor `json:"index,omitempty"`
	// Parent is the image this one was committed or built on.
	Parent digest.Digest `json:"parent,omitempty"`
	Added  time.Time     `json:"added"`
}

// Image is an image as callers see it.
type Image struct {
	// ID is the digest of the image's config (Docker's image ID).
	ID     digest.Digest
	Target ocispec.Descriptor
	Index  *ocispec.Descriptor
	// RepoTags and RepoDigests are normalized references
	// ("docker.io/library/busybox:latest"); reference.FamiliarString gives
	// the short form.
	RepoTags    []string
	RepoDigests []string
	Parent      digest.Digest
	Added       time.Time
	Manifest    ocispec.Manifest
	Config      ocispec.Image
	// ConfigExt are Docker's extensions of the config (healthcheck, onbuild, shell), read
	// with it.
	ConfigExt dockerspec.DockerOCIImageConfigExt
	// ChainIDs of the image's layers, bottom first.
	ChainIDs []digest.Digest
	// Size is the bytes of regular files in all of the image's layers.
	Size int64
}

// TopLayer is the chain ID of the image's top layer (empty for an image
// without layers): the parent of a container's snapshot.
func (im *Image) TopLayer() digest.Digest {
	if len(im.ChainIDs) == 0 {
		return ""
	}
	return im.ChainIDs[len(im.ChainIDs)-1]
}

// Lease keeps an image and a snapshot in use (a container).
type Lease struct {
	ID       string        `json:"id"`
	Image    digest.Digest `json:"image,omitempty"`
	Snapshot string        `json:"snapshot,omitempty"`
	Created  time.Time     `json:"created"`
}

// AddLease records a lease; an existing lease of the same ID is replaced.
func (s *Store) AddLease(l Lease) error {
	if l.ID == "" {
		return errdefs.Invalid("lease without ID")
	}
	if l.Created.IsZero() {
		l.Created = time.Now().UTC()
	}
	b, _ := json.Marshal(l)
	return s.db.Update(func(tx *bolt.Tx) error {
		if l.Image != "" && tx.Bucket(bucketImages).Get([]byte(l.Image)) == nil {
			return errdefs.NotFound("no such image: %s", l.Image)
		}
		return tx.Bucket(bucketLeases).Put([]byte(l.ID), b)
	})
}

// RemoveLease drops a lease; a missing lease is not an error.
func (s *Store) RemoveLease(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLeases).Delete([]byte(id)) })
}

// Leases lists the leases.
func (s *Store) Leases() ([]Lease, error) {
	var out []Lease
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLeases).ForEach(func(k, v []byte) error {
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("lease %s: %w", k, err)
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

func getRecord(tx *bolt.Tx, id digest.Digest) (record, bool, error) {
	v := tx.Bucket(bucketImages).Get([]byte(id))
	if v == nil {
		return record{}, false, nil
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return record{}, false, fmt.Errorf("image record %s: %w", id, err)
	}
	return r, true, nil
}

func putRecord(tx *bolt.Tx, id digest.Digest, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketImages).Put([]byte(id), b)
}

// refsOf returns the references pointing at id, tags and digests apart.
func refsOf(tx *bolt.Tx, id digest.Digest) (tags, digests []string) {
	tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
		if digest.Digest(v) == id {
			if isDigestRef(string(k)) {
				digests = append(digests, string(k))
			} else {
				tags = append(tags, string(k))
			}
		}
		return nil
	})
	return tags, digests
}

// get assembles an Image from its record, documents and layers.
func (s *Store) get(tx *bolt.Tx, id digest.Digest) (*Image, error) {
	r, ok, err := getRecord(tx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errdefs.NotFound("no such image: %s", id)
	}
	im := &Image{ID: id, Target: r.Target, Index: r.Index, Parent: r.Parent, Added: r.Added}
	im.RepoTags, im.RepoDigests = refsOf(tx, id)
	if err := s.readJSON(r.Target.Digest, &im.Manifest); err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", id, err)
	}
	// One read for the OCI config and Docker's extensions (DockerOCIImage's Config shadows
	// the OCI one).
	var doc dockerspec.DockerOCIImage
	if err := s.readJSON(id, &doc); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", id, err)
	}
	im.Config = doc.Image
	im.Config.Config = doc.Config.ImageConfig
	im.ConfigExt = doc.Config.DockerOCIImageConfigExt
	im.ChainIDs = snapshot.ChainIDs(im.Config.RootFS.DiffIDs)
	for _, c := range im.ChainIDs {
		if l, err := s.Snaps.Layer(c); err == nil {
			im.Size += l.Size
		}
	}
	return im, nil
}

// maxDocument bounds the JSON documents berth reads (manifests, configs,
// indexes): distribution's limit for manifests is 4 MiB.
const maxDocument = 8 << 20

func (s *Store) readJSON(dgst digest.Digest, v any) error {
	b, err := s.Content.ReadAll(dgst, maxDocument)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errdefs.Corrupt("%s: %v", dgst, err)
	}
	return nil
}

// Get returns the image with the given ID.
func (s *Store) Get(id digest.Digest) (*Image, error) {
	var im *Image
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		im, err = s.get(tx, id)
		return err
	})
	return im, err
}

// List returns every image, in no particular order.
func (s *Store) List() ([]*Image, error) {
	var out []*Image
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			im, err := s.get(tx, digest.Digest(k))
			if err != nil {
				return err
			}
			out = append(out, im)
			return nil
		})
	})
	return out, err
}

// usedBy returns the IDs of the leases (containers) that use image id.
func usedBy(tx *bolt.Tx, id digest.Digest) []string {
	var out []string
	tx.Bucket(bucketLeases).ForEach(func(k, v []byte) error {
		var l Lease
		if json.Unmarshal(v, &l) == nil && l.Image == id {
			out = append(out, l.ID)
		}
		return nil
	})
	return out
}

var errStop = errors.New("stop")

// withOp runs fn as an operation that adds content (see opMu).
func (s *Store) withOp(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.opMu.RLock()
	defer s.opMu.RUnlock()
	return fn()
}

// removeViews unmounts and removes the read-only views (Export) that a
// crashed process left behind.
func removeViews(root string) error {
	views, _ := filepath.Glob(filepath.Join(root, "view-*"))
	mnts, _ := filepath.Glob(filepath.Join(root, "build-mnt-*"))
	tmps, _ := filepath.Glob(filepath.Join(root, "build-tmp-*"))
	for _, t := range tmps {
		if err := os.RemoveAll(t); err != nil {
			return fmt.Errorf("remove leftover build directory %s: %w", t, err)
		}
	}
	for _, v := range append(views, mnts...) {
		snapshot.Unmount(v)
		if err := os.Remove(v); err != nil {
			return fmt.Errorf("remove leftover view %s: %w", v, err)
		}
	}
	return nil
}
