package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"berth/internal/errdefs"
	"berth/internal/pagewrite"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// saved is one image to write, with the tags to write it under.
type saved struct {
	im   *Image
	tags []reference.Named
}

// Save writes the named images to w as `docker save` (docker 25+) does: an
// OCI image layout (blobs/, index.json, oci-layout) that is also a classic
// docker save archive (manifest.json, repositories), so docker, podman and
// skopeo of any age read it. A repository name without a tag saves all of
// that repository's tags; an image ID saves the image without a name.
func (s *Store) Save(ctx context.Context, w io.Writer, names []string) error {
	if len(names) == 0 {
		return errdefs.Invalid("save: no images named")
	}
	var list []*saved
	byID := map[digest.Digest]*saved{}
	add := func(im *Image, tag reference.Named) {
		sv, ok := byID[im.ID]
		if !ok {
			sv = &saved{im: im}
			byID[im.ID] = sv
			list = append(list, sv)
		}
		if tag != nil {
			for _, t := range sv.tags {
				if t.String() == tag.String() {
					return
				}
			}
			sv.tags = append(sv.tags, tag)
		}
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range names {
			if n, err := reference.ParseNormalizedNamed(name); err == nil && reference.IsNameOnly(n) && !fullID.MatchString(name) {
				found := false
				c := tx.Bucket(bucketRefs).Cursor()
				prefix := []byte(n.Name() + ":")
				for k, v := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
					im, err := s.get(tx, digest.Digest(v))
					if err != nil {
						return err
					}
					tag, _ := ParseRef(string(k))
					add(im, tag)
					found = true
				}
				if found {
					continue
				}
			}
			id, err := resolveID(tx, name)
			if err != nil {
				return err
			}
			im, err := s.get(tx, id)
			if err != nil {
				return err
			}
			var tag reference.Named
			if ref, err := ParseRef(name); err == nil && !isDigestRef(ref.String()) && tx.Bucket(bucketRefs).Get([]byte(ref.String())) != nil {
				tag = ref
			}
			add(im, tag)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.writeArchive(ctx, w, list)
}

func (s *Store) writeArchive(ctx context.Context, w io.Writer, list []*saved) error {
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	written := map[digest.Digest]bool{}
	blob := func(d digest.Digest) error {
		if written[d] {
			return nil
		}
		written[d] = true
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := s.Content.Open(d)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		defer f.Close()
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: blobName(d), Mode: 0o644, Size: f.Size(), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		var r io.Reader = f
		if file, ok := f.(fdReader); ok {
			r = &readAhead{f: file}
		}
		if _, err := io.CopyBuffer(tw, r, make([]byte, pagewrite.Max)); err != nil {
			return fmt.Errorf("save blob %s: %w", d, err)
		}
		return nil
	}

	type manifestEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var entries []manifestEntry
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	repos := map[string]map[string]string{}
	for _, sv := range list {
		im := sv.im
		for _, l := range im.Manifest.Layers {
			if err := blob(l.Digest); err != nil {
				return err
			}
		}
		if err := blob(im.Manifest.Config.Digest); err != nil {
			return err
		}
		if err := blob(im.Target.Digest); err != nil {
			return err
		}
		e := manifestEntry{Config: blobName(im.Manifest.Config.Digest), RepoTags: []string{}}
		for _, l := range im.Manifest.Layers {
			e.Layers = append(e.Layers, blobName(l.Digest))
		}
		sort.Slice(sv.tags, func(i, j int) bool { return sv.tags[i].String() < sv.tags[j].String() })
		desc := ocispec.Descriptor{MediaType: im.Target.MediaType, Digest: im.Target.Digest, Size: im.Target.Size}
		if len(sv.tags) == 0 {
			idx.Manifests = append(idx.Manifests, desc)
		}
		for _, t := range sv.tags {
			e.RepoTags = append(e.RepoTags, reference.FamiliarString(t))
			d := desc
			tag := "latest"
			if tg, ok := t.(reference.Tagged); ok {
				tag = tg.Tag()
			}
			d.Annotations = map[string]string{"io.containerd.image.name": t.String(), ocispec.AnnotationRefName: tag}
			idx.Manifests = append(idx.Manifests, d)
			if n := len(im.Manifest.Layers); n > 0 {
				fam := reference.FamiliarName(t)
				if repos[fam] == nil {
					repos[fam] = map[string]string{}
				}
				repos[fam][tag] = im.Manifest.Layers[n-1].Digest.Encoded()
			}
		}
		entries = append(entries, e)
	}
	docs := []struct {
		name string
		v    any
	}{{"index.json", idx}, {"manifest.json", entries}, {"oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}}}
	if len(repos) > 0 {
		docs = append(docs, struct {
			name string
			v    any
		}{"repositories", repos})
	}
	for _, d := range docs {
		b, err := json.Marshal(d.v)
		if err != nil {
			return err
		}
		if err := file(d.name, b); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

func blobName(d digest.Digest) string {
	return "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()
}

// saveAhead is how far ahead of a blob's copy the kernel is asked to read.
const saveAhead = 32 << 20

// fdReader is a blob stored as a file.
type fdReader interface {
	io.Reader
	Fd() uintptr
}

// readAhead reads a blob stored as a file, having the kernel read the next
// window ahead of the copy: a blob may not be in the page cache (a load
// writes large blobs past it), and the default read-ahead is a fraction of
// what the disk takes at once.
type readAhead struct {
	f            fdReader
	off, advised int64
}

func (r *readAhead) Read(p []byte) (int, error) {
	if r.off+saveAhead/2 >= r.advised {
		unix.Fadvise(int(r.f.Fd()), r.advised, saveAhead, unix.FADV_WILLNEED)
		r.advised += saveAhead
	}
	n, err := r.f.Read(p)
	r.off += int64(n)
	return n, err
}
