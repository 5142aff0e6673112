package main

// The image pushed and pulled: the images suite's cached multi-layer Debian image
// (test/bench/images: debootstrap --variant=minbase bookworm and three apt-get layers, >= 300
// MB, 4 layers), read from its cache directory as that suite leaves it: <cache>/<version>/
// with meta.json, the docker-archive and the layer tars. This bench does not build it: with
// -images-bin it runs `bench-images -build-only -cache <cache>` first, which builds it when
// it is missing and only checks it otherwise.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// cachedImage is what this bench reads of the images suite's meta.json.
type cachedImage struct {
	Version     string `json:"version"`
	Ref         string `json:"ref"`     // the name the archive carries: bench/debian:1
	Archive     string `json:"archive"` // the docker-archive, relative to the image's directory
	ArchiveSize int64  `json:"archive_size"`
	Layers      []struct {
		Size int64 `json:"size"` // the uncompressed layer tar
	} `json:"layers"`
	Built time.Time `json:"built"`
}

// inputs is the image the engines load, and the shared lock on the images suite's cache
// that keeps a rebuild from removing it while they do.
type inputs struct {
	dir     string // the image's directory in the cache
	archive string
	ref     string
	layers  int
	size    int64 // the sum of the uncompressed layer tars
	lock    *os.File
}

// unlock releases the cache's lock (once the engines have loaded the image).
func (in *inputs) unlock() {
	if in != nil && in.lock != nil {
		in.lock.Close()
		in.lock = nil
	}
}

// findImage returns the cached image, after running -images-bin -build-only when it is
// set. Of the image directories in the cache whose meta.json is complete (its version is
// the directory's name, the archive has its size) it takes the one built last.
func findImage(ctx context.Context) (*inputs, error) {
	if *flagImagesBin != "" {
		cmd := exec.CommandContext(ctx, *flagImagesBin, "-build-only", "-cache", *flagCache)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s -build-only -cache %s: %v", *flagImagesBin, *flagCache, err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(*flagCache, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%v (make bench BENCH_SUITES=images, or _output/bench-images -build-only, builds the image)", err)
	}
	// Shared: the images suite takes it exclusively to build or rebuild.
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	metas, _ := filepath.Glob(filepath.Join(*flagCache, "*", "meta.json"))
	var best *inputs
	var bestBuilt time.Time
	var why []string
	for _, m := range metas {
		in, built, err := readMeta(m)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if best == nil || built.After(bestBuilt) {
			best, bestBuilt = in, built
		}
	}
	if best == nil {
		lock.Close()
		return nil, fmt.Errorf("no complete image in %s %q (make bench BENCH_SUITES=images, or _output/bench-images -build-only, builds it; or run this bench with -images-bin)", *flagCache, why)
	}
	best.lock = lock
	return best, nil
}

// readMeta reads one image's meta.json and checks that the image is complete.
func readMeta(path string) (*inputs, time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	var c cachedImage
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %v", path, err)
	}
	dir := filepath.Dir(path)
	if c.Version != filepath.Base(dir) || c.Ref == "" || c.Archive == "" || len(c.Layers) == 0 {
		return nil, time.Time{}, fmt.Errorf("%s: version %q, ref %q, archive %q, %d layers", path, c.Version, c.Ref, c.Archive, len(c.Layers))
	}
	in := &inputs{dir: dir, archive: filepath.Join(dir, c.Archive), ref: c.Ref, layers: len(c.Layers)}
	st, err := os.Stat(in.archive)
	if err != nil {
		return nil, time.Time{}, err
	}
	if st.Size() != c.ArchiveSize {
		return nil, time.Time{}, fmt.Errorf("%s: %d bytes, meta.json says %d", in.archive, st.Size(), c.ArchiveSize)
	}
	for _, l := range c.Layers {
		in.size += l.Size
	}
	if in.size < minImageBytes {
		return nil, time.Time{}, fmt.Errorf("%s: %d bytes of layers, less than the %d this bench needs", dir, in.size, minImageBytes)
	}
	return in, c.Built, nil
}

// minImageBytes is the floor for the image (uncompressed).
const minImageBytes = 300 << 20
