package image

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"berth/internal/content"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Filters selects images as `docker images --filter` does. Zero values
// select everything.
type Filters struct {
	// All includes intermediate images (untagged images that are the
	// parent of another image), hidden by default.
	All bool
	// Dangling: nil for either; true for untagged images only; false for
	// tagged images only.
	Dangling *bool
	// Labels: "key" (present) or "key=value"; all must match.
	Labels []string
	// References: patterns matched against each familiar reference
	// (path.Match, "busybox", "busybox:1.*", "*/app"); any may match.
	References []string
	// Before and Since name images; only images created before / after
	// that one are kept.
	Before, Since string
}

// Select lists the images that pass f, newest first.
func (s *Store) Select(f Filters) ([]*Image, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	var before, since time.Time
	for _, b := range []struct {
		name string
		t    *time.Time
	}{{f.Before, &before}, {f.Since, &since}} {
		if b.name == "" {
			continue
		}
		im, err := s.Resolve(b.name)
		if err != nil {
			return nil, err
		}
		*b.t = created(im)
	}
	parents := map[digest.Digest]bool{}
	for _, im := range all {
		if im.Parent != "" {
			parents[im.Parent] = true
		}
	}
	var out []*Image
	for _, im := range all {
		dangling := len(im.RepoTags) == 0
		switch {
		case !f.All && dangling && parents[im.ID]:
			continue
		case f.Dangling != nil && *f.Dangling != dangling:
			continue
		case !before.IsZero() && !created(im).Before(before):
			continue
		case !since.IsZero() && !created(im).After(since):
			continue
		case !matchLabels(im.Config.Config.Labels, f.Labels):
			continue
		case len(f.References) > 0 && !matchRefs(im, f.References):
			continue
		}
		out = append(out, im)
	}
	sort.Slice(out, func(i, j int) bool { return created(out[i]).After(created(out[j])) })
	return out, nil
}

func created(im *Image) time.Time {
	if im.Config.Created != nil {
		return *im.Config.Created
	}
	return im.Added
}

func matchLabels(labels map[string]string, want []string) bool {
	for _, w := range want {
		k, v, hasValue := strings.Cut(w, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

func matchRefs(im *Image, patterns []string) bool {
	for _, r := range append(append([]string(nil), im.RepoTags...), im.RepoDigests...) {
		n, err := reference.ParseNormalizedNamed(r)
		if err != nil {
			continue
		}
		for _, p := range patterns {
			if ok, _ := reference.FamiliarMatch(p, n); ok {
				return true
			}
			// A full pattern ("docker.io/library/busybox:*") matches the
			// full form too.
			if ok, _ := path.Match(p, r); ok {
				return true
			}
		}
	}
	return false
}

// HistoryEntry is one line of `docker history`.
type HistoryEntry struct {
	// ID is the image's ID on the top line, empty ("<missing>") below.
	ID         digest.Digest
	Created    time.Time
	CreatedBy  string
	Comment    string
	Size       int64
	EmptyLayer bool
	Tags       []string
}

// History lists the steps that made the image, newest first, with the size
// each added.
func (s *Store) History(name string) ([]HistoryEntry, error) {
	im, err := s.Resolve(name)
	if err != nil {
		return nil, err
	}
	var out []HistoryEntry
	layer := 0
	for _, h := range im.Config.History {
		e := HistoryEntry{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if h.Created != nil {
			e.Created = *h.Created
		}
		if !h.EmptyLayer && layer < len(im.ChainIDs) {
			if l, err := s.Snaps.Layer(im.ChainIDs[layer]); err == nil {
				e.Size = l.Size
			}
			layer++
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		out = append(out, HistoryEntry{Created: created(im), Size: im.Size})
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	out[0].ID, out[0].Tags = im.ID, im.RepoTags
	return out, nil
}

// ImageUsage is one image's disk use, as `docker system df -v` shows it.
type ImageUsage struct {
	ID digest.Digest
	// Size is the bytes of all the image's layers; SharedSize those of its
	// layers that other images use too; Size-SharedSize is its own.
	Size, SharedSize int64
	// Containers counts leases on the image.
	Containers int
}

// Usage is the store's disk use.
type Usage struct {
	Images []ImageUsage
	// LayersSize is the bytes of all unpacked layers, each counted once.
	LayersSize int64
	// BlobsSize is the bytes of the content store (manifests, configs and
	// layer tarballs).
	BlobsSize int64
}

// DiskUsage computes Usage.
func (s *Store) DiskUsage() (Usage, error) {
	var u Usage
	all, err := s.List()
	if err != nil {
		return u, err
	}
	users := map[digest.Digest]int{}
	for _, im := range all {
		for _, c := range im.ChainIDs {
			users[c]++
		}
	}
	leases, err := s.Leases()
	if err != nil {
		return u, err
	}
	for _, im := range all {
		iu := ImageUsage{ID: im.ID, Size: im.Size}
		for _, c := range im.ChainIDs {
			if users[c] > 1 {
				if l, err := s.Snaps.Layer(c); err == nil {
					iu.SharedSize += l.Size
				}
			}
		}
		for _, l := range leases {
			if l.Image == im.ID {
				iu.Containers++
			}
		}
		u.Images = append(u.Images, iu)
	}
	ls, err := s.Snaps.Layers()
	if err != nil {
		return u, err
	}
	for _, l := range ls {
		u.LayersSize += l.Size
	}
	err = s.Content.Walk(func(i content.Info) error { u.BlobsSize += i.Stored; return nil })
	return u, err
}

// PruneResult is what Prune removed.
type PruneResult struct {
	Deleted        []Deleted
	SpaceReclaimed int64
}

// Prune removes dangling images (all unused images with all) that no
// container uses and that pass the label filters, then collects garbage
// (`docker image prune`).
func (s *Store) Prune(ctx context.Context, all bool, labels []string) (PruneResult, error) {
	return s.PruneWith(ctx, PruneOptions{All: all, Labels: labels})
}

// PruneOptions select what PruneWith removes.
type PruneOptions struct {
	// All: every unused image, not only dangling ones.
	All bool
	// Labels must all match ("key", "key=value"); NotLabels must not ("label!" filters).
	Labels, NotLabels []string
	// Until: only images created before it (zero: any).
	Until time.Time
}

// PruneWith is Prune with docker image prune's filters.
func (s *Store) PruneWith(ctx context.Context, o PruneOptions) (PruneResult, error) {
	var res PruneResult
	ims, err := s.List()
	if err != nil {
		return res, err
	}
	all := o.All
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, im := range ims {
			if (!all && len(im.RepoTags) > 0) || len(usedBy(tx, im.ID)) > 0 || !matchLabels(im.Config.Config.Labels, o.Labels) || hasChildren(tx, im.ID) && !all {
				continue
			}
			if len(o.NotLabels) > 0 && anyLabel(im.Config.Config.Labels, o.NotLabels) {
				continue
			}
			if !o.Until.IsZero() {
				created := im.Added
				if im.Config.Created != nil {
					created = *im.Config.Created
				}
				if !created.Before(o.Until) {
					continue
				}
			}
			for _, r := range append(im.RepoTags, im.RepoDigests...) {
				if err := tx.Bucket(bucketRefs).Delete([]byte(r)); err != nil {
					return err
				}
				res.Deleted = append(res.Deleted, Deleted{Untagged: Familiar(r)})
			}
			if err := tx.Bucket(bucketImages).Delete([]byte(im.ID)); err != nil {
				return err
			}
			res.Deleted = append(res.Deleted, Deleted{Deleted: im.ID.String()})
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	gc, err := s.GC(ctx)
	res.SpaceReclaimed = gc.Bytes
	if err != nil {
		return res, fmt.Errorf("prune: garbage collection: %w", err)
	}
	return res, nil
}

// anyLabel: one of the "key" or "key=value" filters matches the labels.
func anyLabel(labels map[string]string, filters []string) bool {
	for _, f := range filters {
		if matchLabels(labels, []string{f}) {
			return true
		}
	}
	return false
}
