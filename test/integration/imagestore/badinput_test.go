package imagestore_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/test/imagetest"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// archiveFile is one entry of an outer (docker save / OCI layout) archive.
type archiveFile struct {
	name string
	data []byte
}

// makeArchive writes an OCI-layout docker-save archive for one image with
// the given layer tars (uncompressed), named ref. Hooks may change the
// entries before they are written.
func makeArchive(t *testing.T, ref string, layers [][]byte, edit func(files []archiveFile) []archiveFile) []byte {
	t.Helper()
	var files []archiveFile
	var descs []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, l := range layers {
		d := digest.FromBytes(l)
		files = append(files, archiveFile{"blobs/sha256/" + d.Encoded(), l})
		descs = append(descs, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(len(l))})
		diffIDs = append(diffIDs, d)
	}
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	cd := digest.FromBytes(cfg)
	files = append(files, archiveFile{"blobs/sha256/" + cd.Encoded(), cfg})
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))}, Layers: descs}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	md := digest.FromBytes(mb)
	files = append(files, archiveFile{"blobs/sha256/" + md.Encoded(), mb})
	var layerPaths []string
	for _, d := range descs {
		layerPaths = append(layerPaths, "blobs/sha256/"+d.Digest.Encoded())
	}
	man, _ := json.Marshal([]map[string]any{{"Config": "blobs/sha256/" + cd.Encoded(), "RepoTags": []string{ref}, "Layers": layerPaths}})
	files = append(files, archiveFile{"manifest.json", man})
	if edit != nil {
		files = edit(files)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg})
		tw.Write(f.data)
	}
	tw.Close()
	return buf.Bytes()
}

// loadWays are the ways a load reads an archive: at any offset (bytes in
// memory, or a file, which it maps: the layers are read in parallel after
// the headers) and as a stream (a pipe, an HTTP body: each layer as it
// comes).
var loadWays = []struct {
	name   string
	reader func(*testing.T, []byte) io.Reader
}{
	{"random-access", func(_ *testing.T, b []byte) io.Reader { return bytes.NewReader(b) }},
	{"mapped file", openArchive},
	{"streamed", func(_ *testing.T, b []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(b)} }},
}

// openArchive is b as an open file, closed when the test ends.
func openArchive(t *testing.T, b []byte) io.Reader {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive.tar")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Acceptance 3: broken input gets a precise error and leaves the store as it
// was, which Check confirms.
func TestBrokenInputLeavesStoreAsItWas(t *testing.T) {
	ctx := context.Background()
	good := imagetest.Tar(t, []imagetest.Entry{{Name: "etc/", Type: tar.TypeDir}, {Name: "etc/motd", Data: strings.Repeat("hello\n", 1000)}})
	escapeSym := imagetest.Tar(t, []imagetest.Entry{{Name: "ok", Data: "fine"}, {Name: "up", Type: tar.TypeSymlink, Linkname: "../../../../../../tmp"}, {Name: "up/evil", Data: "x"}})
	escapeLink := imagetest.Tar(t, []imagetest.Entry{{Name: "ok", Data: "fine"}, {Name: "pw", Type: tar.TypeLink, Linkname: "../../../../etc/passwd"}})
	traversal := imagetest.Tar(t, []imagetest.Entry{{Name: "ok", Data: "fine"}, {Name: "a/../../../evil", Data: "x"}})
	absolute := imagetest.Tar(t, []imagetest.Entry{{Name: "/etc/evil", Data: "x"}})
	tampered := func(files []archiveFile) []archiveFile {
		for i := range files {
			if bytes.Equal(files[i].data, good) {
				files[i].data = append([]byte(nil), good...)
				copy(files[i].data[1100:], "HELLO")
			}
		}
		return files
	}
	dropLayer := func(files []archiveFile) []archiveFile {
		return slices.DeleteFunc(files, func(f archiveFile) bool { return bytes.Equal(f.data, good) })
	}
	// An old-format archive (docker 20.10 save) whose layer does not match
	// the config's diff ID: named by path, so only unpacking can tell.
	wrongDiffID := func(files []archiveFile) []archiveFile {
		var out []archiveFile
		for _, f := range files {
			if bytes.Equal(f.data, good) {
				bad := append([]byte(nil), good...)
				copy(bad[1100:], "HELLO")
				f = archiveFile{"0123abcd/layer.tar", bad}
			}
			if f.name == "manifest.json" {
				f.data = bytes.Replace(f.data, []byte("blobs/sha256/"+digest.FromBytes(good).Encoded()), []byte("0123abcd/layer.tar"), 1)
			}
			out = append(out, f)
		}
		return out
	}
	goodArchive := makeArchive(t, "berth-test/good:1", [][]byte{good}, nil)

	cases := []struct {
		name  string
		input []byte
		kind  error
		want  string
	}{
		{"truncated", goodArchive[:len(goodArchive)/2], errdefs.ErrInvalid, "unexpected EOF"},
		{"not a tar", []byte("this is not an archive at all, just text that is long enough to fill a tar header block ........................................................................................................................................................................................................................................................................................................................................................................................................................................................................"), errdefs.ErrInvalid, "not a tar archive"},
		{"blob digest mismatch", makeArchive(t, "berth-test/bad:1", [][]byte{good}, tampered), errdefs.ErrCorrupt, "data has digest"},
		{"diff ID mismatch", makeArchive(t, "berth-test/bad:1", [][]byte{good}, wrongDiffID), errdefs.ErrCorrupt, "the image config says"},
		{"missing blob", makeArchive(t, "berth-test/bad:1", [][]byte{good}, dropLayer), errdefs.ErrCorrupt, "is not in the archive"},
		{"path traversal", makeArchive(t, "berth-test/bad:1", [][]byte{good, traversal}, nil), nil, `"a/../../../evil"`},
		{"absolute path", makeArchive(t, "berth-test/bad:1", [][]byte{good, absolute}, nil), nil, `"/etc/evil"`},
		{"symlink escape", makeArchive(t, "berth-test/bad:1", [][]byte{good, escapeSym}, nil), nil, `"up"`},
		{"hard link escape", makeArchive(t, "berth-test/bad:1", [][]byte{good, escapeLink}, nil), nil, `"pw"`},
	}
	root := t.TempDir()
	s := openStore(t, root)
	// The store already holds an image: a failed load must not disturb it.
	other := imagetest.Tar(t, []imagetest.Entry{{Name: "other", Data: "kept"}})
	if _, err := s.Load(ctx, bytes.NewReader(makeArchive(t, "berth-test/other:1", [][]byte{other}, nil))); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	before := storeFiles(t, root)
	for _, c := range cases {
		for _, how := range loadWays {
			t.Run(c.name+"/"+how.name, func(t *testing.T) {
				_, err := s.Load(ctx, how.reader(t, c.input))
				if err == nil {
					t.Fatal("load succeeded")
				}
				t.Logf("error: %v", err)
				if c.kind != nil && !errors.Is(err, c.kind) {
					t.Errorf("error kind: %v, want %v", err, c.kind)
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Errorf("error %q does not mention %q", err, c.want)
				}
				if after := storeFiles(t, root); !slices.Equal(before, after) {
					t.Errorf("store changed:\n%s", diff(before, after))
				}
				check(t, s)
				if ims, _ := s.List(); len(ims) != 1 {
					t.Errorf("%d images visible, want 1", len(ims))
				}
			})
		}
	}
	// With the good layer stored, the same broken archives still fail: a
	// layer blob that is already stored is trusted, but one that comes new
	// and claims an existing layer's diff ID is checked.
	if _, err := s.Load(ctx, bytes.NewReader(goodArchive)); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	before = storeFiles(t, root)
	_, err := s.Load(ctx, bytes.NewReader(makeArchive(t, "berth-test/bad:1", [][]byte{good}, wrongDiffID)))
	if !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("diff ID mismatch over an existing layer: %v", err)
	}
	if after := storeFiles(t, root); !slices.Equal(before, after) {
		t.Errorf("store changed:\n%s", diff(before, after))
	}
	check(t, s)
	// Nothing was written outside the store, whatever the archives said.
	for _, p := range []string{"/tmp/evil", "/etc/evil", filepath.Join(filepath.Dir(root), "evil")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists", p)
		}
	}
}

// Acceptance 3: a disk that fills up during unpack (a small tmpfs holds the
// store) gives ENOSPC and leaves the store as it was.
func TestDiskFullDuringLoad(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	os.Mkdir(root, 0o700)
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=6m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(root, 0); err != nil {
			t.Errorf("unmount %s: %v", root, err)
		}
	})
	s, err := image.Open(root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	small := imagetest.Tar(t, []imagetest.Entry{{Name: "small", Data: "x"}})
	if _, err := s.Load(ctx, bytes.NewReader(makeArchive(t, "berth-test/small:1", [][]byte{small}, nil))); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	before := storeFiles(t, root)
	// 7 MB: neither the blob nor its unpacked copy fits (a random-access
	// load keeps no blob beside the layer: it is the layer's split).
	big := imagetest.Tar(t, []imagetest.Entry{{Name: "big", Data: strings.Repeat("0123456789abcdef", 450<<10)}})
	for _, how := range loadWays {
		_, err = s.Load(ctx, how.reader(t, makeArchive(t, "berth-test/big:1", [][]byte{small, big}, nil)))
		t.Logf("%s: error: %v", how.name, err)
		// Layers unpack while their blobs are written, so the disk may fill
		// up in either: the error names the layer's tar entry or the
		// archive's.
		if !errors.Is(err, unix.ENOSPC) || !(strings.Contains(err.Error(), `tar entry "big"`) || strings.Contains(err.Error(), `archive entry "blobs/sha256/`)) {
			t.Fatalf("%s load on a full disk: %v, want ENOSPC naming the entry being written", how.name, err)
		}
		if after := storeFiles(t, root); !slices.Equal(before, after) {
			t.Errorf("%s: store changed:\n%s", how.name, diff(before, after))
		}
		check(t, s)
	}
	// The disk is usable again: the small image still exports.
	if err := s.ExportImage(ctx, io.Discard, "berth-test/small:1"); err != nil {
		t.Fatal(err)
	}
}
