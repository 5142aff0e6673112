package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// The database (<root>/registry.db):
//
//	repositories/<name>/blobs/<digest>              -> blobLink (JSON)
//	repositories/<name>/manifests/<digest>          -> manifestRecord (JSON)
//	repositories/<name>/tags/<tag>                  -> digest
//	repositories/<name>/referrers/<subject>/<digest> -> "" (the referrer's record is in manifests/)
//	uploads/<id>                                    -> uploadRecord (JSON)
//
// A repository exists while it holds a blob, a manifest or a tag; the
// request that removes its last one removes its bucket.
var (
	bktRepos     = []byte("repositories")
	bktUploads   = []byte("uploads")
	bktBlobs     = []byte("blobs")
	bktManifests = []byte("manifests")
	bktTags      = []byte("tags")
	bktReferrers = []byte("referrers")
)

type blobLink struct {
	Size int64 `json:"size"`
}

// manifestRecord is what the registry remembers of a manifest besides its
// bytes (which are in the content store under its digest).
type manifestRecord struct {
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Subject      digest.Digest     `json:"subject,omitempty"`
	// Refs are the blobs and manifests it names (kept by GC while it exists).
	Refs []digest.Digest `json:"refs,omitempty"`
}

type uploadRecord struct {
	Repo    string    `json:"repo"`
	Started time.Time `json:"started"`
}

// repo is the repository's bucket, or nil.
func repo(tx *bolt.Tx, name string) *bolt.Bucket {
	return tx.Bucket(bktRepos).Bucket([]byte(name))
}

// repoSub is a sub-bucket of a repository, or nil when either is missing.
func repoSub(tx *bolt.Tx, name string, sub []byte) *bolt.Bucket {
	r := repo(tx, name)
	if r == nil {
		return nil
	}
	return r.Bucket(sub)
}

// repoCreate returns the repository's bucket, creating it and its sub-buckets.
func repoCreate(tx *bolt.Tx, name string) (*bolt.Bucket, error) {
	r, err := tx.Bucket(bktRepos).CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, err
	}
	for _, b := range [][]byte{bktBlobs, bktManifests, bktTags, bktReferrers} {
		if _, err := r.CreateBucketIfNotExists(b); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// repoPrune removes the repository's bucket when it holds nothing any more.
func repoPrune(tx *bolt.Tx, name string) error {
	r := repo(tx, name)
	if r == nil {
		return nil
	}
	for _, b := range [][]byte{bktBlobs, bktManifests, bktTags} {
		if k, _ := r.Bucket(b).Cursor().First(); k != nil {
			return nil
		}
	}
	return tx.Bucket(bktRepos).DeleteBucket([]byte(name))
}

func getJSON(b *bolt.Bucket, key string, v any) bool {
	if b == nil {
		return false
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return false
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false
	}
	return true
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// linkBlob records that repository name holds the blob.
func linkBlob(tx *bolt.Tx, name string, dgst digest.Digest, size int64) error {
	r, err := repoCreate(tx, name)
	if err != nil {
		return err
	}
	return putJSON(r.Bucket(bktBlobs), dgst.String(), blobLink{Size: size})
}

// blobLinked reports whether the repository holds the blob.
func blobLinked(tx *bolt.Tx, name string, dgst digest.Digest) (blobLink, bool) {
	var l blobLink
	ok := getJSON(repoSub(tx, name, bktBlobs), dgst.String(), &l)
	return l, ok
}

// blobLinkedAnywhere reports whether any repository holds the blob (the
// condition for an anonymous cross-repository mount).
func blobLinkedAnywhere(tx *bolt.Tx, dgst digest.Digest) (blobLink, bool) {
	var l blobLink
	found := false
	tx.Bucket(bktRepos).ForEachBucket(func(k []byte) error {
		if getJSON(repoSub(tx, string(k), bktBlobs), dgst.String(), &l) {
			found = true
			return errStop
		}
		return nil
	})
	return l, found
}

var errStop = errors.New("stop")

func initDB(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktRepos, bktUploads} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("registry database: %w", err)
			}
		}
		return nil
	})
}
