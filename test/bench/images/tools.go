package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"berth/internal/archive"
	"berth/internal/image"
	"berth/test/bench/harness"
	"berth/test/engine"

	"golang.org/x/sys/unix"
)

// tool is one thing measured: it loads the cached image into a fresh store
// and saves it back to a file.
type tool interface {
	info() *toolInfo
	// load loads the image into a fresh store (or, for a floor, does the
	// floor's work) and returns how long that took.
	load(ctx context.Context) (time.Duration, error)
	// save writes the loaded image to a file and returns how long that
	// took; the file is removed (unmeasured) before it returns.
	save(ctx context.Context) (time.Duration, error)
	// reset removes what load left (unmeasured).
	reset(ctx context.Context) error
	// cleanup removes everything of the tool's at the end; it returns the
	// number of leftovers it found.
	cleanup() int
}

type toolInfo struct {
	name     string // table row
	version  string
	hasLoad  bool
	hasSave  bool
	fails    int
	dropped  bool
	firstErr string
}

func (ti *toolInfo) info() *toolInfo { return ti }

const maxFailures = 2

// check records a failure; it reports whether err is nil.
func (ti *toolInfo) check(err error, what string) bool {
	if err == nil {
		return true
	}
	ti.fails++
	msg := fmt.Sprintf("%s: %v", what, err)
	if ti.firstErr == "" {
		ti.firstErr = msg
	}
	logf("%s: %s", ti.name, msg)
	if ti.fails >= maxFailures {
		logf("%s: %d failures, dropping it", ti.name, ti.fails)
		ti.dropped = true
	}
	return false
}

// runCmd runs a command with stdout and stderr in a log file; the error
// carries the log's tail.
func runCmd(ctx context.Context, env []string, logPath, name string, args ...string) error {
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace([]byte(tailFile(logPath, 2000))))
	}
	return nil
}

func timed(fn func() error) (time.Duration, error) {
	t0 := time.Now()
	err := fn()
	return time.Since(t0), err
}

func baseEnv(extra ...string) []string {
	return append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}, extra...)
}

func toolVersion(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return v
}

// --- floors ---

// tarFloor extracts the layer tars in order into a fresh directory with
// GNU tar, optionally followed by one syncfs.
type tarFloor struct {
	toolInfo
	img  *cachedImage
	dir  string
	sync bool
}

func newTarFloor(img *cachedImage, work string, sync bool) *tarFloor {
	t := &tarFloor{img: img, sync: sync, dir: filepath.Join(work, "floor")}
	t.name, t.hasLoad = "tar -x", true
	if sync {
		t.name, t.dir = "tar -x + sync", filepath.Join(work, "floor-sync")
	}
	t.version = toolVersion("tar", "--version")
	return t
}

func (t *tarFloor) load(ctx context.Context) (time.Duration, error) {
	if err := os.Mkdir(t.dir, 0o755); err != nil {
		return 0, err
	}
	return timed(func() error {
		for i := range t.img.Layers {
			if err := runCmd(ctx, baseEnv(), t.dir+".log", "tar", "-xf", t.img.layerPath(i), "-C", t.dir); err != nil {
				return err
			}
		}
		if t.sync {
			return syncfs(t.dir)
		}
		return nil
	})
}

func (t *tarFloor) save(context.Context) (time.Duration, error) { return 0, nil }

func (t *tarFloor) reset(context.Context) error {
	os.Remove(t.dir + ".log")
	return os.RemoveAll(t.dir)
}

func (t *tarFloor) cleanup() int { return leftoverDir(t.dir) }

func syncfs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// cpFloor copies the archive to a file: the floor for save.
type cpFloor struct {
	toolInfo
	img *cachedImage
	out string
}

func newCpFloor(img *cachedImage, work string) *cpFloor {
	t := &cpFloor{img: img, out: filepath.Join(work, "floor-save.tar")}
	t.name, t.hasSave = "cp archive", true
	t.version = toolVersion("cp", "--version")
	return t
}

func (t *cpFloor) load(context.Context) (time.Duration, error) { return 0, nil }

func (t *cpFloor) save(ctx context.Context) (time.Duration, error) {
	defer os.Remove(t.out)
	return timed(func() error {
		return runCmd(ctx, baseEnv(), t.out+".log", "cp", t.img.archivePath(), t.out)
	})
}

func (t *cpFloor) reset(context.Context) error { os.Remove(t.out + ".log"); return nil }
func (t *cpFloor) cleanup() int                { return leftoverDir(t.out) }

// leftoverDir reports (and removes) a path that should be gone.
func leftoverDir(p string) int {
	if !exists(p) {
		return 0
	}
	logf("LEFTOVER: %s (removed)", p)
	os.RemoveAll(p)
	return 1
}

// unpackOnly is berth's extractor alone (archive.Unpack, overlay
// whiteouts, each layer into its own fresh directory, in turn): no blob
// store, no hashing of blobs, no sync. It tells the extractor's cost apart
// from the store's.
type unpackOnly struct {
	toolInfo
	img *cachedImage
	dir string
}

func newUnpackOnly(img *cachedImage, work string) *unpackOnly {
	t := &unpackOnly{img: img, dir: filepath.Join(work, "unpack-only")}
	t.name, t.hasLoad = "archive.Unpack", true
	t.version = "berth's extractor alone: each layer into its own directory, in turn; no store, no sync"
	return t
}

func (t *unpackOnly) load(ctx context.Context) (time.Duration, error) {
	if err := os.Mkdir(t.dir, 0o755); err != nil {
		return 0, err
	}
	return timed(func() error {
		for i := range t.img.Layers {
			f, err := os.Open(t.img.layerPath(i))
			if err != nil {
				return err
			}
			d := filepath.Join(t.dir, strconv.Itoa(i))
			if err = os.Mkdir(d, 0o755); err == nil {
				var st archive.UnpackStats
				st, err = archive.Unpack(ctx, f, d, archive.UnpackOptions{})
				if err == nil && st.DiffID != t.img.Layers[i].DiffID {
					err = fmt.Errorf("layer %d: diff ID %s, want %s", i, st.DiffID, t.img.Layers[i].DiffID)
				}
			}
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func (t *unpackOnly) save(context.Context) (time.Duration, error) { return 0, nil }
func (t *unpackOnly) reset(context.Context) error                 { return os.RemoveAll(t.dir) }
func (t *unpackOnly) cleanup() int                                { return leftoverDir(t.dir) }

// --- berth ---

// berthTool uses berth's image store in process: every load opens a fresh
// store root, every save reopens it.
type berthTool struct {
	toolInfo
	img  *cachedImage
	root string
	out  string
}

func newBerth(img *cachedImage, work string) *berthTool {
	t := &berthTool{img: img, root: filepath.Join(work, "berth"), out: filepath.Join(work, "berth-save.tar")}
	t.name, t.hasLoad, t.hasSave = "berth", true, true
	t.version = "internal/image, in process"
	return t
}

func (t *berthTool) load(ctx context.Context) (time.Duration, error) {
	return timed(func() error { return berthLoad(ctx, t.root, t.img) })
}

func berthLoad(ctx context.Context, root string, img *cachedImage) error {
	f, err := os.Open(img.archivePath())
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := image.Open(root, image.Options{})
	if err != nil {
		return err
	}
	loaded, err := s.Load(ctx, f)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if len(loaded) != 1 || loaded[0].Ref != img.Ref {
		return fmt.Errorf("load: got %+v, want %s", loaded, img.Ref)
	}
	if n := len(loaded[0].Image.ChainIDs); n != len(img.Layers) {
		return fmt.Errorf("load: %d layers, want %d", n, len(img.Layers))
	}
	return nil
}

func (t *berthTool) save(ctx context.Context) (time.Duration, error) {
	defer os.Remove(t.out)
	d, err := timed(func() error {
		s, err := image.Open(t.root, image.Options{})
		if err != nil {
			return err
		}
		defer s.Close()
		f, err := os.Create(t.out)
		if err != nil {
			return err
		}
		err = s.Save(ctx, f, []string{t.img.Ref})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err == nil {
		err = checkSaved(t.out, t.img)
	}
	return d, err
}

func (t *berthTool) reset(context.Context) error { return os.RemoveAll(t.root) }
func (t *berthTool) cleanup() int                { return leftoverDir(t.root) + leftoverDir(t.out) }

// checkSaved makes sure a saved archive holds at least the image's layers.
func checkSaved(path string, img *cachedImage) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() < img.size() {
		return fmt.Errorf("saved archive %s is %d bytes, less than the image's layers (%d)", path, st.Size(), img.size())
	}
	savedSizes[path] = st.Size()
	return nil
}

// savedSizes are the sizes of the last saved archive of each tool.
var savedSizes = map[string]int64{}

// --- podman ---

// podmanTool is podman with a private configuration (engine.Podman) and, per load, a
// fresh store: --root and --runroot are removed after each iteration.
type podmanTool struct {
	toolInfo
	*engine.Podman
	img *cachedImage
	run string // podman wants --runroot shorter than 50 characters: /run/bbi-podman-*
	out string
}

func newPodman(img *cachedImage, work string) (*podmanTool, error) {
	bin, err := exec.LookPath(*flagPodman)
	if err != nil {
		return nil, err
	}
	run, err := os.MkdirTemp("/run", "bbi-podman-")
	if err != nil {
		return nil, err
	}
	t := &podmanTool{img: img, run: run, out: filepath.Join(work, "podman-save.tar")}
	t.name, t.hasLoad, t.hasSave = "podman", true, true
	t.version = toolVersion(bin, "--version")
	t.Podman, err = engine.NewPodman(engine.PodmanOptions{
		Dir: filepath.Join(work, "podman"), RunRoot: filepath.Join(run, "runroot"), Events: true, Env: baseEnv(),
	})
	if err != nil {
		os.RemoveAll(run)
		return nil, err
	}
	return t, nil
}

func (t *podmanTool) cmd(ctx context.Context, args ...string) error {
	return runCmd(ctx, t.Env, filepath.Join(t.Dir, "podman.log"), *flagPodman, t.Args(args...)...)
}

func (t *podmanTool) load(ctx context.Context) (time.Duration, error) {
	d, err := timed(func() error { return t.cmd(ctx, "load", "--quiet", "-i", t.img.archivePath()) })
	if err == nil {
		err = t.cmd(ctx, "image", "exists", t.img.Ref)
	}
	return d, err
}

func (t *podmanTool) save(ctx context.Context) (time.Duration, error) {
	defer os.Remove(t.out)
	d, err := timed(func() error { return t.cmd(ctx, "save", "--quiet", "-o", t.out, t.img.Ref) })
	if err == nil {
		err = checkSaved(t.out, t.img)
	}
	return d, err
}

// reset drops the whole store (after unmounting whatever podman left
// mounted in it, in this mount namespace).
func (t *podmanTool) reset(context.Context) error {
	_, err := t.Reset()
	return err
}

func (t *podmanTool) cleanup() int {
	n := harness.UnmountUnder(t.Dir, logf) + harness.UnmountUnder(t.run, logf)
	if n > 0 {
		logf("LEFTOVER: %d podman mounts", n)
	}
	for _, d := range []string{t.Dir, t.run} {
		if err := os.RemoveAll(d); err != nil {
			logf("LEFTOVER: %v", err)
			n++
		}
	}
	return n + leftoverDir(t.out)
}

// --- dockerd ---

// dockerd is a private dockerd (engine.Dockerd, and the containerd it
// starts), started once, with overlay2. Between iterations the image is
// removed and its layers checked to be gone.
type dockerd struct {
	toolInfo
	*engine.Dockerd
	img *cachedImage
	out string
}

// newDockerd starts dockerd and waits for it; when it started but is not
// ready, it is returned with the error, to be stopped and cleaned up.
func newDockerd(ctx context.Context, img *cachedImage, work string) (*dockerd, error) {
	for _, b := range []string{*flagDockerd, *flagDocker, "containerd"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, err
		}
	}
	d := &dockerd{img: img, out: filepath.Join(work, "docker-save.tar")}
	d.name, d.hasLoad, d.hasSave = "dockerd", true, true
	var err error
	d.Dockerd, err = engine.StartDockerd(engine.DockerdOptions{
		Dir: filepath.Join(work, "docker"), Dockerd: *flagDockerd, Docker: *flagDocker, Env: baseEnv(), StorageDriver: "overlay2",
	})
	if err != nil {
		return nil, err
	}
	v, err := d.WaitReady(ctx, 60*time.Second, "version", "--format", "client {{.Client.Version}}, daemon {{.Server.Version}} (API {{.Server.APIVersion}})")
	if err != nil {
		return d, fmt.Errorf("%v\n%s", err, d.LogTail(2000))
	}
	d.version = strings.TrimSpace(v)
	if err := d.gone(); err != nil {
		return d, err
	}
	return d, nil
}

func (d *dockerd) docker(ctx context.Context, args ...string) error {
	return runCmd(ctx, d.Env, filepath.Join(d.Dir, "cli.log"), d.Docker, args...)
}

func (d *dockerd) load(ctx context.Context) (time.Duration, error) {
	dur, err := timed(func() error { return d.docker(ctx, "load", "--quiet", "-i", d.img.archivePath()) })
	if err == nil {
		err = d.docker(ctx, "image", "inspect", "--format", "{{.ID}}", d.img.Ref)
	}
	return dur, err
}

func (d *dockerd) save(ctx context.Context) (time.Duration, error) {
	defer os.Remove(d.out)
	dur, err := timed(func() error { return d.docker(ctx, "save", "-o", d.out, d.img.Ref) })
	if err == nil {
		err = checkSaved(d.out, d.img)
	}
	return dur, err
}

func (d *dockerd) reset(ctx context.Context) error {
	c := exec.CommandContext(ctx, d.Docker, "image", "inspect", d.img.Ref)
	c.Env = d.Env
	if c.Run() == nil {
		if err := d.docker(ctx, "rmi", d.img.Ref); err != nil {
			return err
		}
	}
	if err := d.docker(ctx, "image", "prune", "--force", "--all"); err != nil {
		return err
	}
	return d.gone()
}

// gone checks that dockerd keeps no image and no layer.
func (d *dockerd) gone() error {
	data := filepath.Join(d.Dir, "data")
	for _, p := range []struct {
		dir   string
		allow map[string]bool
	}{
		{filepath.Join(data, "overlay2"), map[string]bool{"l": true}},
		{filepath.Join(data, "image", "overlay2", "layerdb", "sha256"), nil},
		{filepath.Join(data, "image", "overlay2", "imagedb", "content", "sha256"), nil},
	} {
		ents, err := os.ReadDir(p.dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			if !p.allow[e.Name()] {
				return fmt.Errorf("dockerd still has %s after rmi", filepath.Join(p.dir, e.Name()))
			}
		}
	}
	return nil
}

// stop stops dockerd (SIGTERM to the PID this bench started, SIGKILL after
// 40 s) and returns 1 if it had to be killed.
func (d *dockerd) stop() int {
	if d.Stop(40 * time.Second) {
		logf("LEFTOVER: dockerd did not exit 40 s after SIGTERM: killed it")
		return 1
	}
	return 0
}

func (d *dockerd) cleanup() int {
	if _, err := d.Remove(); err != nil {
		logf("LEFTOVER: %v", err)
		return 1
	}
	return leftoverDir(d.out)
}
