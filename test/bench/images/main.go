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
// fresh directory, the same plus one syncfs (berth's load fsyncs its blobs
// and syncs the file system before it commits layers), and `cp` of the
// archive for save. Before every measured operation the bench runs sync(2),
// unmeasured, so no operation pays for the previous one's dirty pages.
//
// Everything runs in a private mount namespace (the program re-executes
// itself), so no mount outlives it. At the end the bench stops dockerd,
// removes its directories, removes the fixed host paths the engines wrote
// that did not exist before (/etc/docker/key.json, /run/docker, the blob
// info cache in /var/lib/containers, ...) and checks that no mount, process
// or directory of its own is left; it exits 1 if there was one. With podman
// or dockerd it holds the host-wide lock of the engine tests
// (test/integration/interop and images), so they do not run at once.
//
// Usage (root): images [-n 5] [-warmup 1] [-tools floor,berth,podman,docker]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/bundle"
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
	flagPodman     = flag.String("podman", "podman", "podman binary")
	flagDockerd    = flag.String("dockerd", "dockerd", "dockerd binary")
	flagDocker     = flag.String("docker", "docker", "docker CLI binary")
	flagBuildOut   = flag.Bool("build-only", false, "only build (or check) the cached image")
	flagUnpackOnly = flag.Bool("unpack-only", true, "with berth, also measure archive.Unpack of the layers alone (no store)")
	flagFS         = flag.String("fs", "loop", "where the tools write: loop (a fresh journaled ext4 in a file under -workdir) or host (-workdir itself)")
	flagFSSize     = flag.String("fs-size", "16G", "size of the -fs loop file system (sparse)")
)

func main() {
	flag.Parse()
	if os.Getenv(nsEnv) != "1" {
		os.Exit(reexec())
	}
	os.Exit(inner())
}

// reexec runs this program again in a new private mount namespace (Go's
// forkExec makes / MS_REC|MS_PRIVATE when Unshareflags has CLONE_NEWNS), so
// the mounts of the image build, podman and dockerd die with it.
func reexec() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "images: must run as root")
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		return 2
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), nsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "images: re-exec in a mount namespace:", err)
		return 2
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		return 2
	}
	return 0
}

var stopping atomic.Bool

// fsDesc says where the tools wrote, for the report.
var fsDesc string

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "images: "+format+"\n", args...)
}

func inner() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-sigs
		logf("interrupted, cleaning up")
		stopping.Store(true)
		cancel()
	}()

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

	mountsBefore := mountPoints()
	if slices.Contains(names, "podman") || slices.Contains(names, "docker") {
		unlock, err := lockHost()
		if err != nil {
			logf("lock %s: %v", hostLock, err)
			return 2
		}
		defer unlock()
	}
	hostBefore := snapshotHostPaths()
	work, err := os.MkdirTemp(*flagWorkdir, "berth-bench-images-")
	if err != nil {
		logf("%v", err)
		return 2
	}
	bfs, err := setupFS(work, *flagFS, *flagFSSize)
	if err != nil {
		logf("%v", err)
		unmountUnder(work)
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
	leftovers += processesUsing(work, true)
	leftovers += bfs.teardown()
	leftovers += unmountUnder(work)
	if _, added := bundle.DiffLines(mountsBefore, mountPoints()); len(added) > 0 {
		for _, m := range added {
			logf("LEFTOVER: mount %s", m)
		}
		leftovers++
	}
	leftovers += restoreHostPaths(hostBefore)
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
			unix.Sync()
			d, err := t.load(ctx)
			if ti.check(err, "load") && measured && ti.hasLoad {
				res[ti.name].load = append(res[ti.name].load, d)
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

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// mountPoints lists the mount points of this mount namespace.
func mountPoints() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			out = append(out, bundle.UnescapeMountinfo(f[4]))
		}
	}
	return out
}

// unmountUnder detaches every mount at or under dir (deepest first) and
// returns how many there were.
func unmountUnder(dir string) int {
	n := 0
	for {
		var under []string
		for _, m := range mountPoints() {
			if m == dir || strings.HasPrefix(m, dir+"/") {
				under = append(under, m)
			}
		}
		if len(under) == 0 {
			return n
		}
		slices.SortFunc(under, func(a, b string) int { return len(b) - len(a) })
		progress := false
		for _, m := range under {
			if unix.Unmount(m, unix.MNT_DETACH) == nil {
				n++
				progress = true
			}
		}
		if !progress {
			for _, m := range under {
				logf("LEFTOVER: cannot unmount %s", m)
			}
			return n + len(under)
		}
	}
}

// processesUsing reports (and with kill, SIGKILLs) the processes whose
// command line, working directory or executable lies under dir: every one
// of them was started by this bench (dir is its own temporary directory).
func processesUsing(dir string, kill bool) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	self := os.Getpid()
	for _, e := range ents {
		pid := 0
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == self {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if !strings.Contains(string(cmdline), dir) && !strings.HasPrefix(cwd, dir) {
			continue
		}
		n++
		logf("LEFTOVER: process %d: %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " "))
		if kill {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	return n
}
