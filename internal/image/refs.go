package image

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"berth/internal/errdefs"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// ParseRef parses a user's image reference with Docker's defaults:
// "busybox" is docker.io/library/busybox:latest; a digest reference keeps
// its digest and drops any tag.
func ParseRef(s string) (reference.Named, error) {
	if s == "" {
		return nil, errdefs.Invalid("empty image reference")
	}
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, errdefs.InvalidWrap(err, "invalid reference format %q", s)
	}
	if c, ok := n.(reference.Canonical); ok {
		return reference.WithDigest(reference.TrimNamed(n), c.Digest())
	}
	return reference.TagNameOnly(n), nil
}

func isDigestRef(s string) bool { return strings.Contains(s, "@") }

// Familiar is the short form of a stored reference ("busybox:latest").
func Familiar(ref string) string {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarString(n)
}

var (
	fullID  = regexp.MustCompile(`^(sha256:)?([a-f0-9]{64})$`)
	shortID = regexp.MustCompile(`^(sha256:)?([a-f0-9]{1,63})$`)
)

// Resolve finds an image by ID ("sha256:<hex>", or the hex alone), by
// reference ("busybox", "busybox:1.36", "name@sha256:...") or by a unique
// prefix of its ID, in that order (Docker's order).
func (s *Store) Resolve(name string) (*Image, error) {
	var im *Image
	err := s.db.View(func(tx *bolt.Tx) error {
		id, err := resolveID(tx, name)
		if err != nil {
			return err
		}
		im, err = s.get(tx, id)
		return err
	})
	return im, err
}

func resolveID(tx *bolt.Tx, name string) (digest.Digest, error) {
	images := tx.Bucket(bucketImages)
	if m := fullID.FindStringSubmatch(name); m != nil {
		id := digest.NewDigestFromEncoded(digest.SHA256, m[2])
		if images.Get([]byte(id)) != nil {
			return id, nil
		}
	}
	if ref, err := ParseRef(name); err == nil {
		if v := tx.Bucket(bucketRefs).Get([]byte(ref.String())); v != nil {
			return digest.Digest(v), nil
		}
		// name@<digest> also finds an image by its manifest digest or ID
		// under that name.
		if c, ok := ref.(reference.Canonical); ok {
			var found digest.Digest
			images.ForEach(func(k, v []byte) error {
				r, _, _ := getRecord(tx, digest.Digest(k))
				if digest.Digest(k) == c.Digest() || r.Target.Digest == c.Digest() || (r.Index != nil && r.Index.Digest == c.Digest()) {
					found = digest.Digest(k)
					return errStop
				}
				return nil
			})
			if found != "" {
				return found, nil
			}
		}
	}
	if m := shortID.FindStringSubmatch(name); m != nil {
		var found []digest.Digest
		images.ForEach(func(k, _ []byte) error {
			if strings.HasPrefix(digest.Digest(k).Encoded(), m[2]) {
				found = append(found, digest.Digest(k))
			}
			return nil
		})
		if len(found) == 1 {
			return found[0], nil
		}
		if len(found) > 1 {
			return "", errdefs.Invalid("image ID prefix %q is ambiguous (%d images)", name, len(found))
		}
	}
	return "", errdefs.NotFound("No such image: %s", name)
}

// Tag points ref at the image that source resolves to. An image that loses
// the tag stays, untagged (dangling).
func (s *Store) Tag(source, ref string) error {
	n, err := ParseRef(ref)
	if err != nil {
		return err
	}
	if _, ok := n.(reference.Canonical); ok {
		return errdefs.Invalid("refusing to create a tag with a digest reference: %s", ref)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		id, err := resolveID(tx, source)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRefs).Put([]byte(n.String()), []byte(id))
	})
}

// Untag removes one reference; the image stays.
func (s *Store) Untag(ref string) error {
	n, err := ParseRef(ref)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRefs)
		if b.Get([]byte(n.String())) == nil {
			return errdefs.NotFound("No such image: %s", ref)
		}
		return b.Delete([]byte(n.String()))
	})
}

// Deleted is one line of what Remove did, as `docker rmi` prints it.
type Deleted struct {
	Untagged string `json:",omitempty"`
	Deleted  string `json:",omitempty"`
}

// RemoveOptions tunes Remove.
type RemoveOptions struct {
	// Force removes an image used by containers (their snapshots keep the
	// layers) or referenced by several names.
	Force bool
	// NoPrune keeps untagged parents.
	NoPrune bool
	// ContainerRunning, when set, says whether the container of a lease runs: a refusal then
	// names a running user first and says "running" or "stopped", as dockerd's does.
	ContainerRunning func(id string) bool
}

// Remove is `docker rmi`: removing one of several tags only untags; removing
// the last tag, or the ID, deletes the image (refused when a container uses
// it or, for an ID, when it has several names, unless forced), then its
// untagged parents, then collects what nothing references any more.
func (s *Store) Remove(ctx context.Context, name string, opts RemoveOptions) ([]Deleted, error) {
	var out []Deleted
	err := s.db.Update(func(tx *bolt.Tx) error {
		id, err := resolveID(tx, name)
		if err != nil {
			return err
		}
		refs := tx.Bucket(bucketRefs)
		tags, digests := refsOf(tx, id)
		byRef := false
		if n, err := ParseRef(name); err == nil && refs.Get([]byte(n.String())) != nil && !fullID.MatchString(name) {
			byRef = true
			if left := repoDigestsToDrop(n, tags, digests); len(tags)+len(digests) > 1+len(left) {
				for _, r := range append([]string{n.String()}, left...) {
					out = append(out, Deleted{Untagged: Familiar(r)})
					if err := refs.Delete([]byte(r)); err != nil {
						return err
					}
				}
				return nil
			}
		}
		if users := usedBy(tx, id); len(users) > 0 && !opts.Force {
			subject := short(id)
			if byRef {
				subject = name
			}
			user, state := users[0], ""
			if opts.ContainerRunning != nil {
				state = "stopped "
				for _, u := range users {
					if opts.ContainerRunning(u) {
						user, state = u, "running "
						break
					}
				}
			}
			return errdefs.Conflict("conflict: unable to delete %s (must be forced) - image is being used by %scontainer %s", subject, state, shortID12(user))
		}
		if !byRef && len(tags) > 1 && !opts.Force {
			return errdefs.Conflict("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", short(id))
		}
		for id != "" {
			all := append(tags, digests...)
			sort.Strings(all)
			for _, r := range all {
				out = append(out, Deleted{Untagged: Familiar(r)})
				if err := refs.Delete([]byte(r)); err != nil {
					return err
				}
			}
			r, _, err := getRecord(tx, id)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketImages).Delete([]byte(id)); err != nil {
				return err
			}
			out = append(out, Deleted{Deleted: id.String()})
			// The parent goes too when nothing else names or uses it.
			id = ""
			if p := r.Parent; p != "" && !opts.NoPrune {
				if _, ok, _ := getRecord(tx, p); ok && len(usedBy(tx, p)) == 0 && !hasChildren(tx, p) {
					if t, d := refsOf(tx, p); len(t)+len(d) == 0 {
						id, tags, digests = p, nil, nil
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.GC(ctx); err != nil {
		return out, fmt.Errorf("image removed, but garbage collection failed: %w", err)
	}
	return out, nil
}

// repoDigestsToDrop: removing tag n also removes its repository's digest
// references (name@sha256:...) when no other tag of that repository names
// the image, as dockerd does; these are they.
func repoDigestsToDrop(n reference.Named, tags, digests []string) []string {
	if _, ok := n.(reference.Canonical); ok {
		return nil
	}
	for _, t := range tags {
		if t != n.String() && strings.HasPrefix(t, n.Name()+":") {
			return nil
		}
	}
	var out []string
	for _, d := range digests {
		if strings.HasPrefix(d, n.Name()+"@") {
			out = append(out, d)
		}
	}
	return out
}

func hasChildren(tx *bolt.Tx, id digest.Digest) bool {
	found := false
	tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
		r, _, _ := getRecord(tx, digest.Digest(k))
		if r.Parent == id {
			found = true
			return errStop
		}
		return nil
	})
	return found
}

func short(d digest.Digest) string { return shortID12(d.Encoded()) }

func shortID12(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// setRefs points each reference at id in tx (the references were parsed
// by the caller).
func setRefs(tx *bolt.Tx, id digest.Digest, refs []reference.Named) error {
	for _, r := range refs {
		if err := tx.Bucket(bucketRefs).Put([]byte(r.String()), []byte(id)); err != nil {
			return fmt.Errorf("tag %s: %w", r, err)
		}
	}
	return nil
}

// newImageRefs parses the name given to a new image (import, commit): none
// or one tag, never a digest.
func newImageRefs(name string) ([]reference.Named, error) {
	if name == "" {
		return nil, nil
	}
	ref, err := ParseRef(name)
	if err != nil {
		return nil, err
	}
	if isDigestRef(ref.String()) {
		return nil, errdefs.Invalid("a digest reference cannot name a new image: %s", name)
	}
	return []reference.Named{ref}, nil
}
