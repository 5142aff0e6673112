// Command images measures image load and save: berth's image store
// (internal/image, in process), podman and dockerd side by side on the same
// multi-layer Debian image, with the raw `tar -x` of the same layers as the
// floor.
//
// The image (>= 300 MB uncompressed, 4 layers) is built once with
// debootstrap and apt-get in overlay steps (build.go) and cached under
// -cache, keyed by imageVersion; later runs reuse it.
//
// Every iteration runs every tool once, in an order that rotates per
// iteration, so the tools share the machine's noise; the first -warmup
// iterations are discarded. Per tool and iteration:
//
//   - load into a fresh store: berth's store root, podman's --root and
//     --runroot are new directories (removed afterwards, not measured);
//     dockerd is one private daemon started once, and the image is removed
//     again (`docker rmi`, then its layers are checked to be gone);
//   - save of the image just loaded to a file on the same disk (removed
//     afterwards).
//
// The floors are `tar -xf layer.tar -C dir` of each layer in order into a
// fresh directory, the same plus one syncfs (the durable floor: berth's
// load fsyncs its blobs before it records the image; its unpacked layers
// are synced in the background), and `cp` of the archive for save. Before every measured operation the bench runs sync(2),
// unmeasured, so no operation pays for the previous one's dirty pages; before
// every load it also drops the clean page cache and reads the inputs once
// (settle), so every load starts from the same state.
//
// Everything runs in a private mount namespace (the program re-executes
// itself), so no mount outlives it. At the end the bench stops dockerd,
// removes its directories, removes the fixed host paths the engines wrote
// that did not exist before (/etc/docker/key.json, /run/docker, the blob
// info cache in /var/lib/containers, ...) and checks that no mount, process
// or directory of its own is left; it exits 1 if there was one. With podman
// or dockerd it holds the host-wide lock of the engine tests
// (test/integration/interop and images), so they do not run at once. The
// private dockerd and podman, the lock and the host paths are test/engine's.
//
// Usage (root): images [-n 5] [-warmup 1] [-tools floor,berth,podman,docker]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/bench/harness"
	"berth/test/bundle"
	"berth/test/engine"
)

const nsEnv = "BERTH_BENCH_IMAGES_IN_NS"

var (
	flagN          = flag.Int("n", 5, "measured iterations per tool")
	flagWarmup     = flag.Int("warmup", 1, "unmeasured iterations first")
	flagTools      = flag.String("tools", "floor,berth,podman,docker", "tools to measure, comma-separated (floor: tar -x, tar -x + sync and cp of the archive)")
	flagCache      = flag.String("cache", "/var/tmp/berth-bench-image", "directory of the cached image")
	flagWorkdir    = flag.String("workdir", "/var/tmp", "directory for stores, daemons and saved archives (same disk as -cache)")
	flagMirror     = flag.String("mirror", "", "Debian mirror for the image build (default: this machine's apt source)")
	flagRebuild    = flag.Bool("rebuild", false, "rebuild the cached image")
	flagKeep       = flag.Bool("keep", false, "keep the work directory")
	flagPhases     = flag.Bool("phases", true, "after the measurements, one more berth load with a phase breakdown")
	flagCPUProf    = flag.String("cpuprofile", "", "write a CPU profile of the phase-breakdown berth load to this file")
	flagTrace      = flag.String("trace", "", "write an execution trace (runtime/trace) of one more berth load to this file, with no stack sampling (go tool trace)")
	flagPodman     = flag.String("podman", "podman", "podman binary")
	flagDockerd    = flag.String("dockerd", "dockerd", "dockerd binary")
	flagDocker     = flag.String("docker", "docker", "docker CLI binary")
	flagBuildOut   = flag.Bool("build-only", false, "only build (or check) the cached image")
	flagUnpackOnly = flag.Bool("unpack-only", true, "with berth, also measure archive.Unpack of the layers alone (no store)")
	flagFS         = flag.String("fs", "loop", "where the tools write: loop (a fresh journaled ext4 in a file under -workdir) or host (-workdir itself)")
	flagFSSize     = flag.String("fs-size", "16G", "size of the -fs loop file system (sparse)")
)

func main() {
	// In a private mount namespace, the mounts of the image build, podman and
	// dockerd die with the bench.
	harness.Main(nsEnv, func() int { return harness.Reexec("images", nsEnv) }, inner)
}

var stopping atomic.Bool

// fsDesc says where the tools wrote, for the report.
var fsDesc string

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "images: "+format+"\n", args...)
}

func inner() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	harness.OnInterrupt("images", func() {
		stopping.Store(true)
		cancel()
	})

	img, err := ensureImage(ctx, *flagCache, *flagRebuild)
	if err != nil {
		logf("image: %v", err)
		return 2
	}
	if *flagBuildOut {
		return 0
	}

	var names []string
	for _, name := range strings.Split(*flagTools, ",") {
		switch name = strings.TrimSpace(name); name {
		case "floor", "berth", "podman", "docker":
			names = append(names, name)
		case "":
		default:
			logf("-tools: unknown tool %q (want floor, berth, podman, docker)", name)
			return 2
		}
	}

	mountsBefore := harness.MountPoints()
	if slices.Contains(names, "podman") || slices.Contains(names, "docker") {
		// The engines share fixed host paths with the engine tests, and each
		// run's restore must see the state from before any run.
		unlock, err := engine.LockHost(func() {
			logf("waiting for a run of the engine tests to finish (%s)", engine.LockPath)
		})
		if err != nil {
			logf("%v", err)
			return 2
		}
		defer unlock()
	}
	hostBefore := engine.SnapshotHostPaths()
	work, err := os.MkdirTemp(*flagWorkdir, "berth-bench-images-")
	if err != nil {
		logf("%v", err)
		return 2
	}
	bfs, err := setupFS(work, *flagFS, *flagFSSize)
	if err != nil {
		logf("%v", err)
		harness.UnmountUnder(work, logf)
		os.RemoveAll(work)
		return 2
	}
	fsDesc = bfs.desc
	dir := bfs.dir

	var tools []tool
	var dockerTool *dockerd
	leftovers := 0
	failed := false
	for _, name := range names {
		switch name {
		case "floor":
			tools = append(tools, newTarFloor(img, dir, false), newTarFloor(img, dir, true))
		case "berth":
			tools = append(tools, newBerth(img, dir))
			if *flagUnpackOnly {
				tools = append(tools, newUnpackOnly(img, dir))
			}
		case "podman":
			if p, err := newPodman(img, dir); err != nil {
				logf("podman: %v (skipped)", err)
			} else {
				tools = append(tools, p)
			}
		case "docker":
			d, err := newDockerd(ctx, img, dir)
			if err != nil {
				logf("dockerd: %v (skipped)", err)
				if d != nil { // found, but it did not start
					leftovers += d.stop() + d.cleanup()
					failed = true
				}
			} else {
				dockerTool = d
				tools = append(tools, d)
			}
		}
	}
	if slices.Contains(names, "floor") {
		tools = append(tools, newCpFloor(img, dir))
	}

	if !run(ctx, img, tools) {
		failed = true
	}

	if dockerTool != nil {
		leftovers += dockerTool.stop()
	}
	for _, t := range tools {
		leftovers += t.cleanup()
	}
	leftovers += harness.KillProcessesUsing(work, 0, logf)
	leftovers += bfs.teardown()
	leftovers += harness.UnmountUnder(work, logf)
	if _, added := bundle.DiffLines(mountsBefore, harness.MountPoints()); len(added) > 0 {
		for _, m := range added {
			logf("LEFTOVER: mount %s", m)
		}
		leftovers++
	}
	for _, err := range hostBefore.Restore() {
		logf("LEFTOVER: %v", err)
		leftovers++
	}
	if *flagKeep {
		logf("kept %s", work)
	} else if err := os.RemoveAll(work); err != nil {
		logf("LEFTOVER: %v", err)
		leftovers++
	}
	if leftovers > 0 || stopping.Load() || failed {
		return 1
	}
	for _, t := range tools {
		if t.info().dropped {
			return 1
		}
	}
	return 0
}

// run measures the tools and prints the report; a panic is reported (false)
// so that the caller still cleans up.
func run(ctx context.Context, img *cachedImage, tools []tool) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			logf("panic: %v\n%s", p, debug.Stack())
			ok = false
		}
	}()
	if len(tools) == 0 {
		logf("no tool to measure")
		return false
	}
	res := measure(ctx, img, tools)
	var ph *phaseReport
	if *flagPhases && !stopping.Load() {
		for _, t := range tools {
			if b, ok := t.(*berthTool); ok {
				var err error
				if ph, err = b.profiledLoad(ctx, *flagCPUProf); err != nil {
					logf("berth phase breakdown: %v", err)
				}
			}
		}
	}
	if *flagTrace != "" && !stopping.Load() {
		for _, t := range tools {
			if b, ok := t.(*berthTool); ok {
				if err := b.tracedLoad(ctx, *flagTrace); err != nil {
					logf("berth traced load: %v", err)
				}
			}
		}
	}
	report(img, tools, res, ph)
	return true
}

// sample is one tool's measured durations per operation.
type sample struct {
	load, save []time.Duration
}

// measure runs the iterations; results are keyed by tool name.
func measure(ctx context.Context, img *cachedImage, tools []tool) map[string]*sample {
	res := map[string]*sample{}
	for _, t := range tools {
		res[t.info().name] = &sample{}
	}
	total := *flagWarmup + *flagN
	for i := 0; i < total && !stopping.Load(); i++ {
		measured := i >= *flagWarmup
		k := i % len(tools)
		order := append(slices.Clone(tools[k:]), tools[:k]...)
		for _, t := range order {
			ti := t.info()
			if ti.dropped || stopping.Load() {
				continue
			}
			if err := settle(img); err != nil {
				ti.check(err, "settle")
			}
			cpu0 := cpuTime()
			d, err := t.load(ctx)
			cpu := cpuTime() - cpu0
			if ti.check(err, "load") && measured && ti.hasLoad {
				res[ti.name].load = append(res[ti.name].load, d)
			}
			if err == nil && ti.hasLoad {
				logf("  %s load %.2f s (CPU of this process and its children: %.2f s)", ti.name, d.Seconds(), cpu.Seconds())
			}
			if err == nil && ti.hasSave && !stopping.Load() {
				unix.Sync()
				d, err := t.save(ctx)
				if ti.check(err, "save") && measured {
					res[ti.name].save = append(res[ti.name].save, d)
				}
			}
			if err := t.reset(ctx); err != nil {
				ti.check(err, "reset")
			}
		}
		tag := "warm-up"
		if measured {
			tag = "measured"
		}
		logf("iteration %d/%d done (%s)", i+1, total, tag)
	}
	return res
}

// settle brings the machine to the same state before every load, whichever
// tool ran before: sync(2), so no load pays for another's dirty pages; the
// clean page cache dropped, so none pays for reclaiming what the previous
// tools cached (tar -x works on one CPU and leaves the other to kswapd,
// berth works on both); and the inputs (the archive and the layers) read
// once, so every load finds them cached as they were after the build.
func settle(img *cachedImage) error {
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	paths := []string{img.archivePath()}
	for i := range img.Layers {
		paths = append(paths, img.layerPath(i))
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// cpuTime is the CPU time used by this process and its waited-for
// children so far: a load's share of it shows whether a slow load did
// more work or waited more (a daemon's own CPU is not counted).
func cpuTime() time.Duration {
	var self, children unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &self)
	unix.Getrusage(unix.RUSAGE_CHILDREN, &children)
	var ns int64
	for _, ru := range []unix.Rusage{self, children} {
		ns += ru.Utime.Nano() + ru.Stime.Nano()
	}
	return time.Duration(ns)
}
