package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"syscall"

	"berth/internal/archive"
	"berth/internal/errdefs"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Loaded is one image a load made visible, as `docker load` reports it.
type Loaded struct {
	// Ref is the familiar reference ("busybox:latest"), empty when the
	// image came without a name.
	Ref   string
	Image *Image
}

// Load reads a `docker save` archive (the classic layout with manifest.json,
// old or new, with or without an OCI layout beside it) or an OCI image
// layout archive (`skopeo copy oci-archive:`, `podman save --format
// oci-archive`), optionally compressed, and records its images. Nothing is
// visible until everything is stored; on error the store is as it was.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]Loaded, error) {
	var out []Loaded
	err := s.run(ctx, func(o *op) error {
		o.early = newEarly(ctx, s)
		defer o.early.close()
		in, err := o.readArchive(ctx, r)
		if err != nil {
			return err
		}
		var ps []*pending
		switch {
		case in.docs["manifest.json"] != nil:
			ps, err = o.fromDockerManifest(ctx, in)
		case in.docs["index.json"] != nil:
			ps, err = o.fromOCILayout(ctx, in)
		default:
			err = errdefs.Invalid("the archive has neither manifest.json nor index.json: not a docker save or OCI layout archive")
		}
		if err != nil {
			return err
		}
		if err := o.unpack(ctx, ps); err != nil {
			return err
		}
		ims, err := o.record(ps)
		if err != nil {
			return err
		}
		for i, p := range ps {
			if len(p.refs) == 0 {
				out = append(out, Loaded{Image: ims[i]})
			}
			for _, ref := range p.refs {
				out = append(out, Loaded{Ref: reference.FamiliarString(ref), Image: ims[i]})
			}
		}
		return nil
	})
	return out, err
}

// inArchive is what readArchive found: blobs stored by path, small JSON
// documents kept in memory, symlinks between entries.
type inArchive struct {
	blobs map[string]digest.Digest
	docs  map[string][]byte
	links map[string]string
}

// nextEntry reads the header of the archive's next entry and the entry's
// clean name; io.EOF after the last entry. last is the name of the entry
// before, for errors.
func nextEntry(tr *tar.Reader, last string) (*tar.Header, string, error) {
	h, err := tr.Next()
	var errno syscall.Errno
	var pathErr *fs.PathError
	switch {
	case err == io.EOF:
		return nil, "", err
	case errors.As(err, &errno) || errors.As(err, &pathErr):
		// Reading failed (a random-access archive is read by the tar
		// reader when it skips data): no fault of the archive's.
		return nil, "", fmt.Errorf("read archive after entry %q: %w", last, err)
	case err != nil && last == "":
		return nil, "", errdefs.InvalidWrap(err, "read archive: not a tar archive")
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The archive ends within the last entry's data (skipped, not
		// read) or the next header.
		return nil, "", archiveEntryError(last, err)
	case err != nil:
		return nil, "", errdefs.InvalidWrap(err, "read archive after entry %q", last)
	}
	return h, path.Clean(strings.TrimPrefix(h.Name, "./")), nil
}

// link records an entry that is a symbolic or hard link to another.
func (in *inArchive) link(name string, h *tar.Header) {
	if h.Typeflag == tar.TypeSymlink {
		in.links[name] = path.Join(path.Dir(name), h.Linkname)
	} else {
		in.links[name] = path.Clean(h.Linkname)
	}
}

var blobPath = regexp.MustCompile(`^blobs/([a-z0-9]+)/([a-f0-9]+)$`)

// readArchive stores every blob of the archive as it streams by,
// verifying those named by digest.
func (o *op) readArchive(ctx context.Context, r io.Reader) (*inArchive, error) {
	if ra, ok := r.(randomAccess); ok {
		if in, ok, err := o.readArchiveAt(ctx, ra); ok {
			return in, err
		}
	}
	dr, _, err := archive.DecompressStream(r)
	if err != nil {
		return nil, errdefs.InvalidWrap(err, "read archive")
	}
	defer dr.Close()
	in := &inArchive{blobs: map[string]digest.Digest{}, docs: map[string][]byte{}, links: map[string]string{}}
	tr := tar.NewReader(dr)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, name, err := nextEntry(tr, last)
		if err == io.EOF {
			if last == "" {
				return nil, errdefs.Invalid("the archive is empty")
			}
			if err := o.early.finish(in); err != nil {
				return nil, err
			}
			return in, nil
		}
		if err != nil {
			return nil, err
		}
		last = h.Name
		switch h.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			in.link(name, h)
		case tar.TypeReg:
			if err := o.readEntry(ctx, in, name, h, tr); err != nil {
				return nil, archiveEntryError(h.Name, err)
			}
		}
	}
}

func (o *op) readEntry(ctx context.Context, in *inArchive, name string, h *tar.Header, tr io.Reader) error {
	expected, done, err := o.knownEntry(in, name, h, tr)
	if err != nil || done {
		return err
	}
	first, err := o.early.chunk(ctx)
	if err != nil {
		return err
	}
	n, err := readChunk(tr, first.b)
	first.b = first.b[:n]
	if err != nil && err != io.EOF {
		o.early.release(first)
		return err
	}
	if looksLikeLayer(first.b) && !o.early.present[expected] {
		return o.streamEntry(ctx, name, expected, h.Size, first, err == io.EOF, tr)
	}
	defer o.early.release(first)
	return o.storeEntry(ctx, in, name, expected, h.Size, first.b, tr)
}

// knownEntry deals with the entries of an archive that are not read as
// blobs: a blob named by a digest that is stored already (a base layer
// shared with another image) is not read, documents are read into memory.
// done says the entry needs nothing more; otherwise expected is its digest
// when its name gives one.
func (o *op) knownEntry(in *inArchive, name string, h *tar.Header, tr io.Reader) (expected digest.Digest, done bool, err error) {
	if m := blobPath.FindStringSubmatch(name); m != nil {
		expected = digest.NewDigestFromEncoded(digest.Algorithm(m[1]), m[2])
		if err := expected.Validate(); err != nil {
			return "", false, errdefs.Corrupt("%v", err)
		}
		if o.s.Content.Exists(expected) {
			// The tar reader reads or seeks past it.
			in.blobs[name] = expected
			return expected, true, nil
		}
		return expected, false, nil
	}
	if h.Size <= maxDocument && (strings.HasSuffix(name, ".json") || name == "repositories" || name == "oci-layout") {
		b, err := io.ReadAll(tr)
		if err != nil {
			return "", false, err
		}
		in.docs[name] = b
		return "", true, nil
	}
	return "", false, nil
}

// storeEntry stores an entry that is no layer as a blob: first, read
// already, then the rest of tr.
func (o *op) storeEntry(ctx context.Context, in *inArchive, name string, expected digest.Digest, size int64, first []byte, tr io.Reader) error {
	w, err := o.s.Content.Writer(ctx)
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.Write(first); err != nil {
		return err
	}
	if _, err := w.ReadFrom(tr); err != nil {
		return err
	}
	if expected == "" && o.s.Content.Exists(w.Digest()) {
		in.blobs[name] = w.Digest()
		return nil
	}
	info, err := w.Commit(expected, size)
	if err != nil {
		return err
	}
	o.ingested(info.Digest, true)
	in.blobs[name] = info.Digest
	return nil
}

// streamEntry stores an entry that looks like a layer while it is
// unpacked (op.stream); the blob is named in the archive once
// early.finish has waited for it. ended says first is the whole entry.
func (o *op) streamEntry(ctx context.Context, name string, expected digest.Digest, size int64, first *chunk, ended bool, tr io.Reader) error {
	st, err := o.stream(ctx, name, expected, size, first)
	if err != nil {
		o.early.release(first)
		return err
	}
	for !ended {
		c, err := o.early.chunk(ctx)
		if err != nil {
			st.end(err)
			return err
		}
		n, err := readChunk(tr, c.b)
		if n > 0 {
			c.b = c.b[:n]
			st.queue(c)
		} else {
			o.early.release(c)
		}
		if err != nil && err != io.EOF {
			st.end(err)
			return err
		}
		ended = err == io.EOF
	}
	st.end(nil)
	return nil
}

// readChunk fills c from r as far as r goes; io.EOF says r ended (n may
// be more than 0 then).
func readChunk(r io.Reader, c []byte) (int, error) {
	n := 0
	for n < len(c) {
		m, err := r.Read(c[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// archiveEntryError says which entry of the archive failed to be stored.
func archiveEntryError(name string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errdefs.InvalidWrap(err, "read archive entry %q (truncated archive?)", name)
	}
	return fmt.Errorf("archive entry %q: %w", name, err)
}

// lookup returns the digest of the archive entry p, storing it first when
// it is a document held in memory.
func (o *op) lookup(ctx context.Context, in *inArchive, p string) (digest.Digest, error) {
	p = path.Clean(strings.TrimPrefix(p, "./"))
	for i := 0; i < 16; i++ {
		t, ok := in.links[p]
		if !ok {
			break
		}
		p = t
	}
	if d, ok := in.blobs[p]; ok {
		return d, nil
	}
	if b, ok := in.docs[p]; ok {
		return o.storeDoc(ctx, b)
	}
	if m := blobPath.FindStringSubmatch(p); m != nil {
		// Shared blob listed by an OCI layout but absent from this archive:
		// fine when already stored.
		d := digest.NewDigestFromEncoded(digest.Algorithm(m[1]), m[2])
		if o.s.Content.Exists(d) {
			return d, nil
		}
	}
	return "", errdefs.Corrupt("%s is not in the archive", p)
}

// dockerManifestEntry is one element of a docker save manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func (o *op) fromDockerManifest(ctx context.Context, in *inArchive) ([]*pending, error) {
	var entries []dockerManifestEntry
	if err := json.Unmarshal(in.docs["manifest.json"], &entries); err != nil {
		return nil, errdefs.Corrupt("manifest.json: %v", err)
	}
	if len(entries) == 0 {
		return nil, errdefs.Invalid("manifest.json lists no images")
	}
	// Manifests of an OCI layout in the same archive (docker 25+), so a
	// round trip keeps manifest digests.
	byConfig := map[digest.Digest]ocispec.Descriptor{}
	if in.docs["index.json"] != nil {
		if descs, err := o.layoutManifests(ctx, in); err == nil {
			for _, d := range descs {
				var m ocispec.Manifest
				if o.s.readJSON(d.desc.Digest, &m) == nil {
					byConfig[m.Config.Digest] = d.desc
				}
			}
		}
	}
	var ps []*pending
	for i, e := range entries {
		cd, err := o.lookup(ctx, in, e.Config)
		if err != nil {
			return nil, fmt.Errorf("manifest.json image %d config: %w", i, err)
		}
		p := &pending{}
		if err := o.s.readJSON(cd, &p.config); err != nil {
			return nil, fmt.Errorf("manifest.json image %d config %s: %w", i, e.Config, err)
		}
		for _, t := range e.RepoTags {
			ref, err := ParseRef(t)
			if err != nil {
				return nil, fmt.Errorf("manifest.json image %d: %w", i, err)
			}
			p.refs = append(p.refs, ref)
		}
		if md, ok := byConfig[cd]; ok {
			if err := o.s.readJSON(md.Digest, &p.manifest); err != nil {
				return nil, err
			}
			p.target = md
			ps = append(ps, p)
			continue
		}
		var layers []ocispec.Descriptor
		for _, l := range e.Layers {
			ld, err := o.lookup(ctx, in, l)
			if err != nil {
				return nil, fmt.Errorf("manifest.json image %d layer: %w", i, err)
			}
			desc, err := o.layerDescriptor(ld)
			if err != nil {
				return nil, err
			}
			layers = append(layers, desc)
		}
		info, err := o.s.Content.Info(cd)
		if err != nil {
			return nil, err
		}
		config := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: info.Size}
		if err := o.synthesize(ctx, p, config, layers); err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// layerDescriptor describes a stored layer blob, its media type from its
// compression.
func (o *op) layerDescriptor(d digest.Digest) (ocispec.Descriptor, error) {
	f, err := o.s.Content.Open(d)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer f.Close()
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	c := archive.DetectCompression(head[:n])
	if c != archive.Uncompressed && c != archive.Gzip && c != archive.Zstd {
		return ocispec.Descriptor{}, errdefs.Invalid("layer %s is compressed with %s, which OCI images do not allow (use gzip, zstd or none)", d, c)
	}
	return ocispec.Descriptor{MediaType: layerMediaType(false, c.String()), Digest: d, Size: f.Size()}, nil
}

// synthesize writes an OCI manifest for a config and its layers (images that
// arrive without one: old docker save archives, imports, commits).
func (o *op) synthesize(ctx context.Context, p *pending, config ocispec.Descriptor, layers []ocispec.Descriptor) error {
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	p.manifest = ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    layers,
	}
	var err error
	p.target, err = o.storeJSON(ctx, ocispec.MediaTypeImageManifest, p.manifest)
	return err
}

// layoutManifest is a single-platform manifest found through an OCI
// layout's index.json, with the names the index gives it.
type layoutManifest struct {
	desc  ocispec.Descriptor
	index *ocispec.Descriptor
	names []string
}

// layoutManifests walks index.json: every entry is a manifest, or an index
// from which this platform's manifest is chosen.
func (o *op) layoutManifests(ctx context.Context, in *inArchive) ([]layoutManifest, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(in.docs["index.json"], &idx); err != nil {
		return nil, errdefs.Corrupt("index.json: %v", err)
	}
	var out []layoutManifest
	for _, d := range idx.Manifests {
		lm := layoutManifest{desc: d}
		if n := d.Annotations["io.containerd.image.name"]; n != "" {
			lm.names = append(lm.names, n)
		} else if n := d.Annotations[ocispec.AnnotationRefName]; n != "" && strings.ContainsAny(n, "/:") {
			lm.names = append(lm.names, n)
		}
		for depth := 0; ; depth++ {
			p := "blobs/" + string(lm.desc.Digest.Algorithm()) + "/" + lm.desc.Digest.Encoded()
			if _, err := o.lookup(ctx, in, p); err != nil {
				return nil, fmt.Errorf("index.json: %w", err)
			}
			b, err := o.s.Content.ReadAll(lm.desc.Digest, maxDocument)
			if err != nil {
				return nil, err
			}
			kind, err := classify(b, lm.desc.MediaType)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", lm.desc.Digest, err)
			}
			if kind == kindManifest {
				break
			}
			if depth > 4 {
				return nil, errdefs.Corrupt("index.json: indexes nested too deep")
			}
			var sub ocispec.Index
			if err := json.Unmarshal(b, &sub); err != nil {
				return nil, errdefs.Corrupt("index %s: %v", lm.desc.Digest, err)
			}
			choice, err := choosePlatform(sub)
			if err != nil {
				return nil, fmt.Errorf("index %s: %w", lm.desc.Digest, err)
			}
			parent := lm.desc
			lm.index, lm.desc = &parent, choice
		}
		out = append(out, lm)
	}
	return out, nil
}

func (o *op) fromOCILayout(ctx context.Context, in *inArchive) ([]*pending, error) {
	lms, err := o.layoutManifests(ctx, in)
	if err != nil {
		return nil, err
	}
	if len(lms) == 0 {
		return nil, errdefs.Invalid("index.json lists no images")
	}
	byID := map[digest.Digest]*pending{}
	var ps []*pending
	for _, lm := range lms {
		p := &pending{target: lm.desc, index: lm.index}
		if err := o.s.readJSON(lm.desc.Digest, &p.manifest); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", lm.desc.Digest, err)
		}
		if err := checkMediaTypes(p.manifest); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", lm.desc.Digest, err)
		}
		for _, d := range append([]ocispec.Descriptor{p.manifest.Config}, p.manifest.Layers...) {
			if _, err := o.lookup(ctx, in, "blobs/"+string(d.Digest.Algorithm())+"/"+d.Digest.Encoded()); err != nil {
				return nil, fmt.Errorf("manifest %s: %w", lm.desc.Digest, err)
			}
		}
		if err := o.s.readJSON(p.manifest.Config.Digest, &p.config); err != nil {
			return nil, fmt.Errorf("manifest %s: config: %w", lm.desc.Digest, err)
		}
		for _, n := range lm.names {
			ref, err := ParseRef(n)
			if err != nil {
				return nil, fmt.Errorf("index.json: %w", err)
			}
			p.refs = append(p.refs, ref)
		}
		if prev, ok := byID[p.id()]; ok {
			prev.refs = append(prev.refs, p.refs...)
			continue
		}
		byID[p.id()] = p
		ps = append(ps, p)
	}
	return ps, nil
}
