package images_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"berth/internal/image"
	"berth/test/engine"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const bbRef = "berth-test/bb:1"

// berthImage imports the source rootfs into a berth store as berth-test/bb:1, checks what
// berth itself shows of it, and saves it to berth-save.tar.
func berthImage(t *testing.T, work string) (s *store, im *image.Image, archive string, want tree) {
	t.Helper()
	_, rootfsTar, want := sourceRootfs(t, work)
	s = openStore(t, filepath.Join(work, "berth"))
	im = s.importTar(rootfsTar, bbRef)
	wantRefs(t, "berth import", im.RepoTags, "docker.io/"+bbRef)
	checkConfig(t, "berth import", im.Config.Config, wantConfig)
	checkTree(t, "berth export of the imported image", s.tree(bbRef), want)
	archive = filepath.Join(work, "berth-save.tar")
	s.save(archive, bbRef)
	return s, im, archive, want
}

// diffIDs are an image's layer diff IDs as strings.
func diffIDs(im *image.Image) []string {
	var out []string
	for _, d := range im.Config.RootFS.DiffIDs {
		out = append(out, d.String())
	}
	return out
}

// checkSameImage: the tool's image has berth's image ID (the config's digest: the config
// arrived byte for byte) and the same layers.
func checkSameImage(t *testing.T, what string, got engineImage, im *image.Image) {
	t.Helper()
	if got.id() != im.ID.Encoded() {
		t.Errorf("%s: image ID %s, want berth's %s", what, got.id(), im.ID.Encoded())
	}
	if !reflect.DeepEqual(got.RootFS.Layers, diffIDs(im)) {
		t.Errorf("%s: layers %q, want berth's %q", what, got.RootFS.Layers, diffIDs(im))
	}
}

// TestBerthSaveLoadsInPodman: an image berth imports and saves (docker 25+ format) loads into
// podman with its name, image ID, layers, config and root filesystem, through both of
// podman's readers: `podman load` reads the archive as an OCI archive (it tries that first,
// and berth's save has index.json) and names the image from its io.containerd.image.name
// annotation; `podman pull docker-archive:` reads manifest.json and puts the short name
// berth-test/bb:1 under localhost/, as podman does for any docker-archive.
func TestBerthSaveLoadsInPodman(t *testing.T) {
	requireTools(t, "podman", "tar", "busybox")
	work := workDir(t)
	_, im, archive, want := berthImage(t, work)

	for _, c := range []struct{ store, how, ref string }{
		{"pl", "podman load", "docker.io/" + bbRef},
		{"pp", "podman pull docker-archive:", "localhost/" + bbRef},
	} {
		p := newPodman(t, work, c.store)
		if c.store == "pl" {
			p.do("load", "--input", archive)
		} else {
			p.do("pull", "docker-archive:"+archive)
		}
		wantRefs(t, c.how+": podman images", p.tags(), c.ref)
		pi := p.inspect(c.ref)
		checkSameImage(t, c.how+": podman image inspect", pi, im)
		checkConfig(t, c.how+": podman image inspect", pi.Config, wantConfig)
		// podman mounts an image with the root directory of its own layer directory (mode
		// 0555 in c/storage), not the root entry of the layer: only that line is left out.
		checkTree(t, c.how+": podman image mount", p.tree(c.ref).withoutRoot(), want.withoutRoot())
	}
}

// TestBerthSaveLoadsInDocker: an image berth imports and saves loads into Debian's dockerd
// 20.10 (`docker load`, which reads only manifest.json of the docker 25+ format) with its
// name, image ID, layers, config and root filesystem.
func TestBerthSaveLoadsInDocker(t *testing.T) {
	requireTools(t, "dockerd", "docker", "tar", "busybox")
	work := workDir(t)
	_, im, archive, want := berthImage(t, work)

	d := newDockerd(t, work)
	d.do("load", "--input", archive)
	wantRefs(t, "docker images after loading berth's save", d.tags(), bbRef)
	di := d.inspect(bbRef)
	checkSameImage(t, "docker image inspect", di, im)
	checkConfig(t, "docker image inspect", di.Config, wantConfig)
	checkTree(t, "docker's overlay2 layer", d.tree(bbRef), want)
}

// TestBerthSaveReadBySkopeo: skopeo reads berth's save both as docker-archive: and as
// oci-archive: (config and diff IDs as berth has them) and copies it to an oci-archive, to a
// docker-archive, and to oci-archives with gzip and zstd layers; each copy loads back into a
// fresh berth store with the same image ID, diff IDs, name, config and root filesystem. umoci
// unpacks the oci-archive copy to the same tree, so the layers are right by a reader other
// than berth's.
func TestBerthSaveReadBySkopeo(t *testing.T) {
	requireTools(t, "skopeo", "umoci", "tar", "busybox")
	work := workDir(t)
	_, im, archive, want := berthImage(t, work)

	for _, src := range []string{"docker-archive:" + archive, "oci-archive:" + archive} {
		var cfg ocispec.Image
		out := skopeo(t, work, "inspect", "--config", src)
		if err := json.Unmarshal([]byte(out), &cfg); err != nil {
			t.Fatalf("skopeo inspect --config %s: %v\n%s", src, err, out)
		}
		checkConfig(t, "skopeo inspect --config "+src, cfg.Config, wantConfig)
		if !reflect.DeepEqual(cfg.RootFS.DiffIDs, im.Config.RootFS.DiffIDs) {
			t.Errorf("skopeo inspect --config %s: diff IDs %v, want %v", src, cfg.RootFS.DiffIDs, im.Config.RootFS.DiffIDs)
		}
	}

	// Copies with the layers as berth saved them (uncompressed), and oci-archives with the
	// layers compressed by skopeo (gzip, zstd): berth unpacks those and keeps the diff IDs.
	ociCopy := filepath.Join(work, "skopeo-oci.tar")
	copies := []struct {
		out  string
		args []string
	}{
		{ociCopy, []string{"docker-archive:" + archive, "oci-archive:" + ociCopy + ":docker.io/" + bbRef}},
		{filepath.Join(work, "skopeo-docker.tar"), []string{"oci-archive:" + archive, "docker-archive:" + filepath.Join(work, "skopeo-docker.tar") + ":" + bbRef}},
		{filepath.Join(work, "skopeo-oci-gzip.tar"), []string{"--dest-compress-format", "gzip", "docker-archive:" + archive, "oci-archive:" + filepath.Join(work, "skopeo-oci-gzip.tar") + ":docker.io/" + bbRef}},
		{filepath.Join(work, "skopeo-oci-zstd.tar"), []string{"--dest-compress-format", "zstd", "docker-archive:" + archive, "oci-archive:" + filepath.Join(work, "skopeo-oci-zstd.tar") + ":docker.io/" + bbRef}},
	}
	for i, c := range copies {
		skopeo(t, work, append([]string{"copy"}, c.args...)...)
		what := "berth load of " + filepath.Base(c.out)
		s := openStore(t, filepath.Join(work, "berth-"+string(rune('a'+i))))
		loaded := s.load(c.out)
		wantRefs(t, what, loadedRefs(loaded), bbRef)
		got := s.resolve(bbRef)
		if got.ID != im.ID {
			t.Errorf("%s: image ID %s, want %s", what, got.ID, im.ID)
		}
		if !reflect.DeepEqual(got.Config.RootFS.DiffIDs, im.Config.RootFS.DiffIDs) {
			t.Errorf("%s: diff IDs %v, want %v", what, got.Config.RootFS.DiffIDs, im.Config.RootFS.DiffIDs)
		}
		checkConfig(t, what, got.Config.Config, wantConfig)
		checkTree(t, what+": berth export", s.tree(bbRef), want)
	}

	layout := filepath.Join(work, "umoci-layout")
	if err := os.Mkdir(layout, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, engine.BaseEnv(), work, "tar", "-xf", ociCopy, "-C", layout)
	bundleDir := filepath.Join(work, "umoci-bundle")
	run(t, engine.BaseEnv(), work, "umoci", "unpack", "--image", layout+":docker.io/"+bbRef, bundleDir)
	checkTree(t, "umoci unpack of skopeo's oci-archive", treeOf(t, filepath.Join(bundleDir, "rootfs")), want)
}

// podmanChanges are the package's changes for `podman import`: podman 4.3 keeps `ENV A=1
// B=two` as the single variable "A=1 B=two", so its variables come one per ENV.
var podmanChanges = []string{`CMD ["/bin/sh","-c","echo hi"]`, "ENV A=1", "ENV B=two", "WORKDIR /data", "EXPOSE 8080", "USER nobody", "LABEL x=y"}

// TestPodmanSaveLoadsInBerth: an image podman imports, saved by podman as docker-archive and
// as oci-archive, loads into berth with podman's image ID, its name, config and root
// filesystem.
func TestPodmanSaveLoadsInBerth(t *testing.T) {
	requireTools(t, "podman", "tar", "busybox")
	work := workDir(t)
	_, rootfsTar, want := sourceRootfs(t, work)
	p := newPodman(t, work, "p")
	args := []string{"import"}
	for _, c := range podmanChanges {
		args = append(args, "--change", c)
	}
	p.do(append(args, rootfsTar, bbRef)...)
	ref := "localhost/" + bbRef // podman's name for a short name it imports
	pi := p.inspect(ref)
	checkConfig(t, "podman import", pi.Config, wantConfig)
	checkTree(t, "podman image mount (root line left out, see TestBerthSaveLoadsInPodman)", p.tree(ref).withoutRoot(), want.withoutRoot())

	for i, format := range []string{"docker-archive", "oci-archive"} {
		archive := filepath.Join(work, "podman-"+format+".tar")
		p.do("save", "--format", format, "--output", archive, ref)
		s := openStore(t, filepath.Join(work, "berth-"+string(rune('a'+i))))
		loaded := s.load(archive)
		what := "berth load of podman's " + format
		wantRefs(t, what, loadedRefs(loaded), ref)
		if len(loaded) == 0 {
			continue
		}
		im := loaded[0].Image
		if im.ID.Encoded() != pi.id() {
			t.Errorf("%s: image ID %s, want podman's %s", what, im.ID.Encoded(), pi.id())
		}
		if !reflect.DeepEqual(diffIDs(im), pi.RootFS.Layers) {
			t.Errorf("%s: layers %q, want podman's %q", what, diffIDs(im), pi.RootFS.Layers)
		}
		checkConfig(t, what, im.Config.Config, wantConfig)
		checkTree(t, what+": berth export", s.tree(ref), want)
	}
}

// TestDockerSaveLoadsInBerth: an image Debian's dockerd imports (with the same changes),
// saved by docker 20.10 in the old format (<id>/layer.tar, <id>.json, manifest.json,
// repositories), loads into berth with docker's image ID, its name, config and root
// filesystem; so does the same archive gzip-compressed.
func TestDockerSaveLoadsInBerth(t *testing.T) {
	requireTools(t, "dockerd", "docker", "tar", "busybox")
	work := workDir(t)
	_, rootfsTar, want := sourceRootfs(t, work)
	d := newDockerd(t, work)
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	d.do(append(args, rootfsTar, bbRef)...)
	di := d.inspect(bbRef)
	checkConfig(t, "docker import", di.Config, wantConfig)
	checkTree(t, "docker import: its overlay2 layer", d.tree(bbRef), want)

	archive := filepath.Join(work, "docker-save.tar")
	d.do("save", "--output", archive, bbRef)
	ents := tarEntries(t, archive)
	if _, ok := ents["index.json"]; ok || !hasEntry(ents, "manifest.json", tar.TypeReg) || !hasEntry(ents, "repositories", tar.TypeReg) || !hasEntry(ents, "/layer.tar", tar.TypeReg) {
		t.Fatalf("docker save did not write the old format: %v", ents)
	}
	gz := filepath.Join(work, "docker-save.tar.gz")
	gzipFile(t, archive, gz)

	for i, a := range []string{archive, gz} {
		s := openStore(t, filepath.Join(work, "berth-"+string(rune('a'+i))))
		loaded := s.load(a)
		what := "berth load of " + filepath.Base(a)
		wantRefs(t, what, loadedRefs(loaded), bbRef)
		im := s.resolve(bbRef)
		checkSameImage(t, what+" (docker's image, as berth has it)", di, im)
		checkConfig(t, what, im.Config.Config, wantConfig)
		checkTree(t, what+": berth export", s.tree(bbRef), want)
	}
}

// TestMultiImageSave: one berth archive holds two tags of a base image and a second image
// built on it (sharing its layer); docker load and podman load both show the three tags, the
// images' layers and configs, and the second image's merged root filesystem (three layers, the
// last deleting a file of the base (a whiteout) and replacing a directory (an opaque one)).
//
// The second image is built by podman (`podman build --isolation chroot`, offline: FROM the
// base podman loaded from berth's save, COPY a file, RUN rm and mkdir), saved with
// the base by `podman save --multi-image-archive`, and loaded into berth's store, which already
// holds the base.
func TestMultiImageSave(t *testing.T) {
	requireTools(t, "podman", "dockerd", "docker", "tar", "busybox")
	work := workDir(t)
	s, base, archive, wantBase := berthImage(t, work)
	const (
		base1 = "berth-test/base:1"
		base2 = "berth-test/base:2"
		app   = "berth-test/app:1"
	)
	if err := s.Tag(bbRef, base1); err != nil {
		t.Fatal(err)
	}

	// podman builds app on the base from berth's save.
	builder := newPodman(t, work, "pb")
	builder.do("load", "--input", archive)
	ctxDir := filepath.Join(work, "context")
	if err := os.Mkdir(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	containerfile := "FROM docker.io/" + bbRef + "\n" +
		"COPY added /data/added\n" +
		"USER root\n" +
		"RUN /bin/rm /data/big && /bin/rm -r /var && /bin/mkdir -p /var/fresh\n" +
		"USER nobody\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Containerfile"), []byte(containerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "added"), []byte("added by the second image\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	// chroot isolation runs RUN without an OCI runtime; it allows no network namespace of its
	// own (`--network host`), and the step uses no network.
	builder.do("build", "--pull=never", "--isolation", "chroot", "--network", "host", "--tag", "docker.io/"+app, ctxDir)
	built := builder.inspect("docker.io/" + app)
	if len(built.RootFS.Layers) != 3 || built.RootFS.Layers[0] != diffIDs(base)[0] {
		t.Fatalf("podman build: layers %q, want 3 on top of the base's %q", built.RootFS.Layers, diffIDs(base))
	}
	wantApp := builder.tree("docker.io/" + app).withoutRoot() // podman's root line: see TestBerthSaveLoadsInPodman
	if hasLine(wantApp.manifest, "data/big ") || hasLine(wantApp.manifest, "var/empty ") ||
		!hasLine(wantApp.manifest, "data/added ") || !hasLine(wantApp.manifest, "var/fresh ") {
		t.Fatalf("podman build: the image's tree does not show the COPY and the RUN: %q", wantApp.manifest)
	}
	wantAppConfig := configOf(built.Config)
	built2 := filepath.Join(work, "podman-build.tar")
	builder.do("save", "--multi-image-archive", "--format", "docker-archive", "--output", built2, "docker.io/"+app, "docker.io/"+bbRef)

	loaded := s.load(built2)
	wantRefs(t, "berth load of podman's two-image archive", loadedRefs(loaded), app, bbRef)
	appIm := s.resolve(app)
	if appIm.ID.Encoded() != built.id() || s.resolve(bbRef).ID != base.ID {
		t.Errorf("berth load of podman's archive: IDs app %s base %s, want %s %s", appIm.ID, s.resolve(bbRef).ID, built.id(), base.ID)
	}
	checkTree(t, "berth export of the built image", s.tree(app).withoutRoot(), wantApp)
	if top := layerNames(t, s, appIm.Manifest.Layers[2]); !top["data/.wh.big"] || !top["var/.wh..wh..opq"] {
		t.Errorf("the built image's top layer has no whiteout of data/big or no opaque var/: the test does not cover them: %v", top)
	}
	if err := s.Tag(bbRef, base2); err != nil {
		t.Fatal(err)
	}

	multi := filepath.Join(work, "berth-multi.tar")
	s.save(multi, base1, base2, app)
	checkMultiArchive(t, multi, base, appIm)

	d := newDockerd(t, work)
	d.do("load", "--input", multi)
	wantRefs(t, "docker images after loading berth's archive", d.tags(), base1, base2, app)
	// podman reads an archive of several images with its docker-archive reader (its OCI
	// archive reader takes one image only), which puts short names under localhost/.
	p := newPodman(t, work, "p")
	p.do("load", "--input", multi)
	wantRefs(t, "podman images after loading berth's archive", p.tags(), "localhost/"+base1, "localhost/"+base2, "localhost/"+app)

	// docker 20.10 saves the three images in its old format, the shared base layer once: its
	// <v1 id>/layer.tar in the base's chain is a symlink to the one of the base image. They
	// load into a fresh berth store as they were.
	dockerMulti := filepath.Join(work, "docker-multi.tar")
	d.do("save", "--output", dockerMulti, base1, base2, app)
	if !hasEntry(tarEntries(t, dockerMulti), "/layer.tar", tar.TypeSymlink) {
		t.Errorf("docker save of the three images has no symlinked layer.tar: the test does not cover it")
	}
	s2 := openStore(t, filepath.Join(work, "berth-2"))
	wantRefs(t, "berth load of docker's save of the three", loadedRefs(s2.load(dockerMulti)), base1, base2, app)
	if got := s2.resolve(base2).ID; got != base.ID || s2.resolve(app).ID != appIm.ID {
		t.Errorf("berth load of docker's save: IDs base %s app %s, want %s %s", got, s2.resolve(app).ID, base.ID, appIm.ID)
	}
	checkTree(t, "berth export of docker's save of the base", s2.tree(base1), wantBase)
	checkTree(t, "berth export of docker's save of the built image", s2.tree(app).withoutRoot(), wantApp)

	for _, e := range []struct {
		tool    string
		inspect func(string) engineImage
		tree    func(string) tree
		prefix  string
		root    bool // the tool keeps the root directory's mode
	}{
		{"docker", d.inspect, d.tree, "", true},
		{"podman", p.inspect, p.tree, "localhost/", false},
	} {
		for _, ref := range []string{base1, base2} {
			got := e.inspect(e.prefix + ref)
			checkSameImage(t, e.tool+" "+ref, got, base)
			checkConfig(t, e.tool+" "+ref, got.Config, wantConfig)
		}
		got := e.inspect(e.prefix + app)
		checkSameImage(t, e.tool+" "+app, got, appIm)
		checkConfig(t, e.tool+" "+app, got.Config, wantAppConfig)
		wb, gb := wantBase, e.tree(e.prefix+base2)
		if !e.root {
			wb, gb = wb.withoutRoot(), gb.withoutRoot()
		}
		checkTree(t, e.tool+" "+base2, gb, wb)
		checkTree(t, e.tool+" "+app, e.tree(e.prefix+app).withoutRoot(), wantApp)
	}
}

// checkMultiArchive checks berth's archive of base (two tags) and app: manifest.json lists
// two images, the base's with both tags, and each blob is written once.
func checkMultiArchive(t *testing.T, archive string, base, app *image.Image) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	seen := map[string]int{}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", archive, err)
		}
		seen[h.Name]++
		if h.Name == "manifest.json" {
			if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
				t.Fatalf("manifest.json: %v", err)
			}
		}
	}
	for name, n := range seen {
		if n > 1 {
			t.Errorf("berth save: %s written %d times", name, n)
		}
	}
	if len(manifest) != 2 {
		t.Fatalf("berth save: manifest.json lists %d images, want 2: %+v", len(manifest), manifest)
	}
	tags := map[string][]string{}
	for _, m := range manifest {
		tags[m.Config] = m.RepoTags
	}
	if got := tags["blobs/sha256/"+base.ID.Encoded()]; !reflect.DeepEqual(got, []string{"berth-test/base:1", "berth-test/base:2"}) {
		t.Errorf("berth save: base's RepoTags %q, want both tags", got)
	}
	if got := tags["blobs/sha256/"+app.ID.Encoded()]; !reflect.DeepEqual(got, []string{"berth-test/app:1"}) {
		t.Errorf("berth save: app's RepoTags %q", got)
	}
}

// layerNames lists the entries of an uncompressed layer blob in berth's store.
func layerNames(t *testing.T, s *store, layer ocispec.Descriptor) map[string]bool {
	t.Helper()
	f, err := s.Content.Open(layer.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("layer %s (%s): %v", layer.Digest, layer.MediaType, err)
		}
		names[strings.TrimPrefix(h.Name, "./")] = true
	}
}

// tarEntries maps the names in a tar file to their type flags.
func tarEntries(t *testing.T, archive string) map[string]byte {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("read %s: %v", archive, err)
		}
		names[h.Name] = h.Typeflag
	}
}

// hasEntry reports whether entries has a name with the suffix and the type flag.
func hasEntry(entries map[string]byte, suffix string, typ byte) bool {
	for n, ty := range entries {
		if strings.HasSuffix(n, suffix) && ty == typ {
			return true
		}
	}
	return false
}

func hasLine(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func gzipFile(t *testing.T, in, out string) {
	t.Helper()
	src, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	zw := gzip.NewWriter(dst)
	if _, err := io.Copy(zw, src); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCompressedAndUntagged: an image whose layers berth holds gzip-compressed (loaded from
// skopeo's oci-archive with gzip layers) is saved by berth with those blobs and loads into
// docker and podman with the same image ID, config and root filesystem; an image saved by ID
// (no name) loads into docker without a tag, and docker's save of it by ID loads into berth
// without a name.
func TestCompressedAndUntagged(t *testing.T) {
	requireTools(t, "skopeo", "podman", "dockerd", "docker", "tar", "busybox")
	work := workDir(t)
	_, im, archive, want := berthImage(t, work)
	const gzRef = "berth-test/gz:1"
	gz := filepath.Join(work, "skopeo-oci-gzip.tar")
	skopeo(t, work, "copy", "--dest-compress-format", "gzip", "docker-archive:"+archive, "oci-archive:"+gz+":docker.io/"+gzRef)
	s := openStore(t, filepath.Join(work, "berth-gz"))
	s.load(gz)
	gzIm := s.resolve(gzRef)
	if gzIm.ID != im.ID {
		t.Fatalf("berth load of the gzip copy: image ID %s, want %s", gzIm.ID, im.ID)
	}
	if mt := gzIm.Manifest.Layers[0].MediaType; mt != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("berth load of the gzip copy: layer media type %s, want %s (the test is about compressed blobs)", mt, ocispec.MediaTypeImageLayerGzip)
	}
	resaved := filepath.Join(work, "berth-gz-save.tar")
	s.save(resaved, gzRef)
	byID := filepath.Join(work, "berth-by-id.tar")
	s.save(byID, gzIm.ID.String())

	d := newDockerd(t, work)
	d.do("load", "--input", byID)
	if tags := d.tags(); len(tags) != 1 || tags[0] != "<none>:<none>" {
		t.Errorf("docker images after loading berth's save by ID: %q, want one untagged image", tags)
	}
	checkSameImage(t, "docker image inspect (untagged)", d.inspect(im.ID.String()), im)
	dockerByID := filepath.Join(work, "docker-by-id.tar")
	d.do("save", "--output", dockerByID, im.ID.String())
	s2 := openStore(t, filepath.Join(work, "berth-2"))
	if loaded := s2.load(dockerByID); len(loaded) != 1 || loaded[0].Ref != "" || loaded[0].Image.ID != im.ID {
		t.Errorf("berth load of docker's save by ID: %+v, want the image %s without a name", loaded, im.ID)
	}
	checkTree(t, "berth export after loading docker's save by ID", s2.tree(im.ID.String()), want)

	d.do("load", "--input", resaved)
	wantRefs(t, "docker images after loading berth's save of gzip layers", d.tags(), gzRef)
	di := d.inspect(gzRef)
	checkSameImage(t, "docker image inspect", di, im)
	checkConfig(t, "docker image inspect", di.Config, wantConfig)
	checkTree(t, "docker's overlay2 layer", d.tree(gzRef), want)

	p := newPodman(t, work, "p")
	p.do("load", "--input", resaved)
	pi := p.inspect("docker.io/" + gzRef)
	checkSameImage(t, "podman image inspect", pi, im)
	checkConfig(t, "podman image inspect", pi.Config, wantConfig)
	checkTree(t, "podman image mount (root line left out, see TestBerthSaveLoadsInPodman)", p.tree("docker.io/"+gzRef).withoutRoot(), want.withoutRoot())
}

// TestCompressedArchives: `docker load` takes a save compressed with gzip, bzip2 or xz, and
// `docker import` a rootfs tarball compressed the same ways (moby's archive.DecompressStream;
// docker 23+ adds zstd, which berth takes too); berth's Load and Import must take the same
// files. Each file is first given to dockerd, to show it is one docker takes, then to berth.
func TestCompressedArchives(t *testing.T) {
	requireTools(t, "dockerd", "docker", "tar", "busybox")
	work := workDir(t)
	_, im, archive, want := berthImage(t, work)
	rootfsTar := filepath.Join(work, "rootfs.tar")
	d := newDockerd(t, work)
	d.do("load", "--input", archive)
	saved := filepath.Join(work, "docker-save.tar")
	d.do("save", "--output", saved, bbRef)
	for i, c := range []struct {
		tool, pkg, ext string
		docker         bool // docker 20.10 takes it
	}{
		{"gzip", "gzip", "gz", true},
		{"bzip2", "bzip2", "bz2", true},
		{"xz", "xz-utils", "xz", true},
		{"zstd", "zstd", "zst", false},
	} {
		t.Run(c.tool, func(t *testing.T) {
			requireToolsOrPackage(t, c.tool, c.pkg)
			compress := func(in string) string {
				out := in + "." + c.ext
				run(t, engine.BaseEnv(), work, "sh", "-c", c.tool+" -c < '"+in+"' > '"+out+"'")
				return out
			}
			save, rootfs := compress(saved), compress(rootfsTar)
			if c.docker {
				d.do("rmi", bbRef)
				d.do("load", "--input", save)
				checkSameImage(t, "docker load of the "+c.tool+" save", d.inspect(bbRef), im)
				d.do("import", rootfs, "berth-test/imported:"+c.tool)
			}
			s := openStore(t, filepath.Join(work, "berth-"+string(rune('a'+i))))
			if loaded, err := s.loadErr(save); err != nil {
				t.Errorf("berth load of docker's save compressed with %s: %v", c.tool, err)
			} else {
				wantRefs(t, "berth load of the "+c.tool+" save", loadedRefs(loaded), bbRef)
				checkTree(t, "berth load of the "+c.tool+" save", s.tree(bbRef), want)
			}
			f, err := os.Open(rootfs)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := s.Import(context.Background(), f, image.ImportOptions{Ref: "berth-test/imported:1"}); err != nil {
				t.Errorf("berth import of the rootfs tarball compressed with %s: %v", c.tool, err)
			} else {
				checkTree(t, "berth import of the "+c.tool+" tarball", s.tree("berth-test/imported:1"), want)
			}
		})
	}
}
