package main

// The benchmark image: Debian bookworm (debootstrap minbase) as the base
// layer, then apt-get steps, each run chrooted in an overlay mount over the
// layers so far; the overlay's upper directory is the step's layer, written
// with archive.WriteDiff (overlay whiteouts become .wh. entries). The layers
// make an OCI layout that skopeo converts to a docker-archive, which
// docker, podman and berth all load. The result is cached under
// <cache>/<imageVersion>/ and reused; the build happens in a directory
// beside it that is removed on success and on failure, and its mounts are
// taken down by a deferred unmount (and, should the process die, with its
// private mount namespace).

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"berth/internal/archive"
	"berth/test/bench/harness"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// imageVersion keys the cache: change it when the recipe below changes.
const imageVersion = "v2-bookworm-minbase-python3-gcc-git"

// imageRef is the name the archive carries (docker.io/bench/debian:1).
const imageRef = "bench/debian:1"

// minImageBytes is the acceptance floor for the image's uncompressed size.
const minImageBytes = 300 << 20

// buildSteps are the layers above the debootstrap base, one apt-get run
// each. The last one removes the apt lists of the first, so the image has
// whiteouts.
var buildSteps = []struct{ name, script string }{
	{"python3", "apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates && apt-get clean"},
	{"gcc g++ make", "apt-get install -y -qq --no-install-recommends gcc g++ make libc6-dev && apt-get clean"},
	{"git perl curl", "apt-get install -y -qq --no-install-recommends git perl curl && apt-get clean && rm -rf /var/lib/apt/lists/*"},
}

type layerInfo struct {
	File      string        `json:"file"` // uncompressed layer tar, relative to the image directory
	DiffID    digest.Digest `json:"diff_id"`
	Size      int64         `json:"size"`
	CreatedBy string        `json:"created_by"`
}

// cachedImage describes a built image (meta.json in its directory).
type cachedImage struct {
	Version      string      `json:"version"`
	Ref          string      `json:"ref"`
	Archive      string      `json:"archive"` // docker-archive, relative
	ArchiveSize  int64       `json:"archive_size"`
	Layers       []layerInfo `json:"layers"`
	Mirror       string      `json:"mirror"`
	Built        time.Time   `json:"built"`
	BuildSeconds float64     `json:"build_seconds"`

	dir string
}

func (c *cachedImage) archivePath() string { return filepath.Join(c.dir, c.Archive) }
func (c *cachedImage) layerPath(i int) string {
	return filepath.Join(c.dir, c.Layers[i].File)
}

// size is the sum of the uncompressed layer tars.
func (c *cachedImage) size() int64 {
	var n int64
	for _, l := range c.Layers {
		n += l.Size
	}
	return n
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// ensureImage returns the cached image, building it first if it is missing
// or incomplete (or rebuild is set). A lock file serializes concurrent runs.
func ensureImage(ctx context.Context, cache string, rebuild bool) (*cachedImage, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	dir := filepath.Join(cache, imageVersion)
	if !rebuild {
		if img, err := readCached(dir); err == nil {
			logf("image %s: cached in %s (built %s in %.0f s): %d layers, %.0f MB uncompressed, archive %.0f MB",
				img.Ref, dir, img.Built.Format("2006-01-02"), img.BuildSeconds, len(img.Layers), mb(img.size()), mb(img.ArchiveSize))
			return img, nil
		} else if !os.IsNotExist(err) {
			logf("cached image in %s unusable (%v): rebuilding", dir, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	return buildImage(ctx, dir)
}

func readCached(dir string) (*cachedImage, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, err
	}
	img := &cachedImage{dir: dir}
	if err := json.Unmarshal(b, img); err != nil {
		return nil, err
	}
	if img.Version != imageVersion || len(img.Layers) == 0 {
		return nil, fmt.Errorf("meta.json: version %q with %d layers", img.Version, len(img.Layers))
	}
	check := func(p string, size int64) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Size() != size {
			return fmt.Errorf("%s: %d bytes, meta.json says %d", p, st.Size(), size)
		}
		return nil
	}
	if err := check(img.archivePath(), img.ArchiveSize); err != nil {
		return nil, err
	}
	for i, l := range img.Layers {
		if err := check(img.layerPath(i), l.Size); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// builder holds the state of one image build.
type builder struct {
	tmp    string // scratch: base/, upper-N/, work-N/, mnt/, layout/
	out    string // becomes the cache directory
	mirror string
	layers []layerInfo
	log    *os.File
}

func buildImage(ctx context.Context, dir string) (img *cachedImage, err error) {
	start := time.Now()
	b := &builder{tmp: dir + ".build", out: dir + ".out", mirror: *flagMirror}
	if b.mirror == "" {
		b.mirror = aptMirror()
	}
	// Leftovers of an interrupted build (its mounts died with its namespace).
	for _, d := range []string{b.tmp, b.out} {
		harness.UnmountUnder(d, logf)
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	defer func() {
		if n := harness.UnmountUnder(b.tmp, logf); n > 0 && err == nil {
			err = fmt.Errorf("%d mounts were left under %s", n, b.tmp)
		}
		if rerr := os.RemoveAll(b.tmp); rerr != nil {
			logf("LEFTOVER: %v", rerr)
			if err == nil {
				err = rerr
			}
		}
		if err != nil {
			if rerr := os.RemoveAll(b.out); rerr != nil {
				logf("LEFTOVER: %v", rerr)
			}
		}
	}()
	for _, d := range []string{b.tmp, filepath.Join(b.out, "layers")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if b.log, err = os.Create(filepath.Join(b.tmp, "build.log")); err != nil {
		return nil, err
	}
	defer b.log.Close()
	logf("building image %s (%s) from %s; this takes a few minutes, once", imageRef, imageVersion, b.mirror)

	t := time.Now()
	base := filepath.Join(b.tmp, "base")
	if err := b.run(ctx, "debootstrap", "--variant=minbase", "bookworm", base, b.mirror); err != nil {
		return nil, err
	}
	if err := tidyBase(base); err != nil {
		return nil, err
	}
	if err := b.addLayer(ctx, base, false, "debootstrap --variant=minbase bookworm"); err != nil {
		return nil, err
	}
	logf("layer 1 (debootstrap): %.0f MB in %.0f s", mb(b.layers[0].Size), time.Since(t).Seconds())

	lowers := []string{base}
	for i, st := range buildSteps {
		t := time.Now()
		upper := filepath.Join(b.tmp, fmt.Sprintf("upper-%d", i+1))
		if err := b.step(ctx, lowers, upper, i+1, st.script); err != nil {
			return nil, fmt.Errorf("step %q: %w", st.name, err)
		}
		if err := b.addLayer(ctx, upper, true, "RUN "+st.script); err != nil {
			return nil, err
		}
		lowers = append([]string{upper}, lowers...)
		logf("layer %d (%s): %.0f MB in %.0f s", i+2, st.name, mb(b.layers[i+1].Size), time.Since(t).Seconds())
	}

	img = &cachedImage{Version: imageVersion, Ref: imageRef, Archive: "image.tar", Layers: b.layers, Mirror: b.mirror, dir: dir}
	if img.size() < minImageBytes {
		return nil, fmt.Errorf("the image is only %.0f MB; add packages to buildSteps", mb(img.size()))
	}
	if err := b.writeLayout(img); err != nil {
		return nil, err
	}
	layout := filepath.Join(b.tmp, "layout")
	if err := b.run(ctx, "skopeo", "--insecure-policy", "copy", "--quiet",
		"oci:"+layout, "docker-archive:"+filepath.Join(b.out, img.Archive)+":"+imageRef); err != nil {
		return nil, err
	}
	if img.ArchiveSize, err = checkArchive(filepath.Join(b.out, img.Archive), img); err != nil {
		return nil, fmt.Errorf("docker-archive from skopeo: %w", err)
	}
	// The archive's layers are byte for byte the layout's blobs (checked by
	// digest above): keep those as the floor's layer tars.
	for i := range img.Layers {
		l := &img.Layers[i]
		blob := filepath.Join(layout, "blobs", "sha256", l.DiffID.Encoded())
		l.File = filepath.Join("layers", fmt.Sprintf("%03d.tar", i))
		if err := os.Rename(blob, filepath.Join(b.out, l.File)); err != nil {
			return nil, err
		}
	}
	img.Built = time.Now().UTC()
	img.BuildSeconds = time.Since(start).Seconds()
	mj, _ := json.MarshalIndent(img, "", "  ")
	if err := os.WriteFile(filepath.Join(b.out, "meta.json"), mj, 0o644); err != nil {
		return nil, err
	}
	unix.Sync()
	if err := os.Rename(b.out, dir); err != nil {
		return nil, err
	}
	logf("image %s built in %.0f s: %d layers, %.0f MB uncompressed, archive %.0f MB, in %s",
		img.Ref, img.BuildSeconds, len(img.Layers), mb(img.size()), mb(img.ArchiveSize), dir)
	return img, nil
}

// run runs a build command, its output in build.log.
func (b *builder) run(ctx context.Context, name string, args ...string) error {
	fmt.Fprintf(b.log, "+ %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	// A PID namespace of its own: when the command ends or is killed
	// (interrupt, or this process dying), the kernel kills whatever it
	// left running (dpkg under apt-get), so nothing writes into the build
	// directory while it is removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"}
	if name != "chroot" {
		cmd.Env = append(cmd.Env, "TMPDIR="+b.tmp)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, tailFile(b.log.Name(), 3000))
	}
	return nil
}

// tidyBase empties /dev (image layers carry no device nodes; the steps
// mount their own) and debootstrap's package cache, as Debian's own base
// images do, and makes sure /etc/resolv.conf exists to bind the host's
// over it during the steps.
func tidyBase(base string) error {
	for _, d := range []string{"dev", "var/cache/apt/archives"} {
		ents, err := os.ReadDir(filepath.Join(base, d))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if d == "dev" || strings.HasSuffix(e.Name(), ".deb") {
				if err := os.RemoveAll(filepath.Join(base, d, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	rc := filepath.Join(base, "etc", "resolv.conf")
	os.Remove(rc) // a copy of the host's
	return os.WriteFile(rc, nil, 0o644)
}

// step runs script chrooted in an overlay of lowers (top first) with upper
// as its upper directory, with /proc, a minimal /dev and the host's
// resolv.conf mounted; everything is unmounted before it returns.
func (b *builder) step(ctx context.Context, lowers []string, upper string, n int, script string) (err error) {
	work := filepath.Join(b.tmp, fmt.Sprintf("work-%d", n))
	mnt := filepath.Join(b.tmp, "mnt")
	for _, d := range []string{upper, work, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	defer func() {
		harness.UnmountUnder(mnt, logf)
		if rerr := os.RemoveAll(work); rerr != nil && err == nil {
			err = rerr
		}
	}()
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,index=off,metacopy=off,xino=off",
		strings.Join(lowers, ":"), upper, work)
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", mnt, err)
	}
	if err := unix.Mount("proc", filepath.Join(mnt, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount proc: %w", err)
	}
	dev := filepath.Join(mnt, "dev")
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID, "mode=755,size=1m"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		if err := os.WriteFile(filepath.Join(dev, d), nil, 0o644); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+d, filepath.Join(dev, d), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", d, err)
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	if err := unix.Mount("/etc/resolv.conf", filepath.Join(mnt, "etc", "resolv.conf"), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind resolv.conf: %w", err)
	}
	return b.run(ctx, "chroot", mnt, "/bin/sh", "-ec", script)
}

// addLayer writes dir as the next layer blob of the OCI layout: the whole
// tree, or with diff an overlay upper directory.
func (b *builder) addLayer(ctx context.Context, dir string, diff bool, createdBy string) error {
	blobs := filepath.Join(b.tmp, "layout", "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(blobs, "layer-")
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if diff {
		err = archive.WriteDiff(ctx, bw, dir)
	} else {
		err = archive.WriteTree(ctx, bw, dir)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("write layer of %s: %w", dir, err)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	d := digest.NewDigest(digest.SHA256, h)
	if err := os.Rename(f.Name(), filepath.Join(blobs, d.Encoded())); err != nil {
		return err
	}
	b.layers = append(b.layers, layerInfo{DiffID: d, Size: st.Size(), CreatedBy: createdBy})
	return nil
}

// writeLayout writes the config, manifest, index.json and oci-layout of the
// OCI layout whose layer blobs addLayer wrote.
func (b *builder) writeLayout(img *cachedImage) error {
	layout := filepath.Join(b.tmp, "layout")
	put := func(v any) (ocispec.Descriptor, error) {
		data, err := json.Marshal(v)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		d := digest.FromBytes(data)
		return ocispec.Descriptor{Digest: d, Size: int64(len(data))},
			os.WriteFile(filepath.Join(layout, "blobs", "sha256", d.Encoded()), data, 0o644)
	}
	now := time.Now().UTC().Truncate(time.Second)
	cfg := ocispec.Image{
		Created:  &now,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"bash"},
		},
		RootFS: ocispec.RootFS{Type: "layers"},
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
	m.SchemaVersion = 2
	for _, l := range img.Layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		cfg.History = append(cfg.History, ocispec.History{Created: &now, CreatedBy: l.CreatedBy})
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: l.DiffID, Size: l.Size})
	}
	cd, err := put(cfg)
	if err != nil {
		return err
	}
	cd.MediaType = ocispec.MediaTypeImageConfig
	m.Config = cd
	md, err := put(m)
	if err != nil {
		return err
	}
	md.MediaType = ocispec.MediaTypeImageManifest
	md.Annotations = map[string]string{
		"io.containerd.image.name": "docker.io/" + imageRef,
		ocispec.AnnotationRefName:  imageRef[strings.LastIndexByte(imageRef, ':')+1:],
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	idx.SchemaVersion = 2
	ib, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(layout, "index.json"), ib, 0o644); err != nil {
		return err
	}
	lb, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	return os.WriteFile(filepath.Join(layout, ocispec.ImageLayoutFile), lb, 0o644)
}

// checkArchive reads a docker-archive through: its manifest.json must list
// the image's layers, in order, by content (sha256 of the entries). It
// returns the archive's size.
func checkArchive(path string, img *cachedImage) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sums := map[string]digest.Digest{}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Name == "manifest.json" {
			if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
				return 0, fmt.Errorf("manifest.json: %w", err)
			}
			continue
		}
		d, err := digest.SHA256.FromReader(tr)
		if err != nil {
			return 0, err
		}
		sums[h.Name] = d
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != len(img.Layers) {
		return 0, fmt.Errorf("manifest.json lists %d images, want 1 with %d layers", len(manifest), len(img.Layers))
	}
	if len(manifest[0].RepoTags) != 1 || strings.TrimPrefix(manifest[0].RepoTags[0], "docker.io/") != img.Ref {
		return 0, fmt.Errorf("manifest.json: RepoTags %q, want [%q]", manifest[0].RepoTags, img.Ref)
	}
	for i, l := range manifest[0].Layers {
		if sums[l] != img.Layers[i].DiffID {
			return 0, fmt.Errorf("layer %d (%s) has digest %s, want %s", i, l, sums[l], img.Layers[i].DiffID)
		}
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// aptMirror is the Debian mirror of this machine's apt sources (the first
// one serving bookworm itself), or deb.debian.org.
func aptMirror() string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append([]string{"/etc/apt/sources.list"}, files...)
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(files, lists...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.HasSuffix(f, ".sources") {
			// deb822 stanzas: URIs + Suites.
			for _, stanza := range strings.Split(string(data), "\n\n") {
				var uris, suites []string
				for _, l := range strings.Split(stanza, "\n") {
					if v, ok := strings.CutPrefix(l, "URIs:"); ok {
						uris = strings.Fields(v)
					}
					if v, ok := strings.CutPrefix(l, "Suites:"); ok {
						suites = strings.Fields(v)
					}
				}
				if len(uris) > 0 && contains(suites, "bookworm") {
					return uris[0]
				}
			}
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			fs := strings.Fields(l)
			if len(fs) >= 3 && fs[0] == "deb" {
				i := 1
				if strings.HasPrefix(fs[1], "[") {
					for i < len(fs) && !strings.HasSuffix(fs[i], "]") {
						i++
					}
					i++
				}
				if i+1 < len(fs) && fs[i+1] == "bookworm" {
					return fs[i]
				}
			}
		}
	}
	return "http://deb.debian.org/debian"
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// tailFile returns the last n bytes of a file.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	if off := st.Size() - n; off > 0 {
		f.Seek(off, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
