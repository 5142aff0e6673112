// Command engine measures berth's engine (berthd, berth-shim, berth-runtime) against the
// engines it replaces, side by side in one run: a private dockerd 20.10 (with the containerd
// it starts, containerd-shim-runc-v2 and runc) and a private podman (conmon and runc), all
// driven by their stock command-line tools (the docker 28 CLI for berthd and dockerd):
//
//   - run: the wall time of `docker run --rm --network none IMAGE true` (podman: `podman
//     run --rm ...`), from the CLI's fork to its exit, exit status 0;
//   - exec: the wall time of `docker exec CONTAINER true` into one running container per
//     engine (`sleep 1000000`);
//   - idle memory: -idle containers (`sleep 1000000`, `run -d`) per engine, one engine at a
//     time; after they settle, VmRSS (/proc/<pid>/status), PSS and private memory
//     (/proc/<pid>/smaps_rollup) of each container's engine process: berth-shim,
//     containerd-shim-runc-v2 (dockerd's) and conmon (podman's), found by their executable
//     among the processes whose command line names the engine's private directory; and of
//     the engine's other processes (berthd; dockerd and containerd) at that moment.
//
// The image is the same everywhere: a busybox-static root filesystem made the way
// test/berthtest.BusyboxTar makes it, `docker import`ed into berthd and dockerd and `podman
// import`ed into podman. Every engine has its own directory (data root, exec root, socket,
// store) under -workdir, its containers' cgroups under one fresh cgroup below this process's
// own (cgroup parent <own>/berth-bench-engine-<pid>/<engine>), no network. berthd runs from
// a copy of -bin (berthd, berth-shim, berth-runtime, berth-init), so a rebuild during the
// run does not change what is measured.
//
// The run and exec iterations run every engine once, in an order that rotates per
// iteration, so the engines share the machine's noise; the first -warmup are discarded.
//
// Everything runs in a private mount namespace (the program re-executes itself), so no
// mount outlives it. At the end it removes every container and the image through each
// engine, stops the daemons by the PIDs it started (dockerd stops its containerd), waits
// for or kills what is left under each engine's directory, unmounts and removes the
// directories and the cgroups it made, removes the fixed host paths the engines wrote that
// did not exist before (test/engine.HostPaths), and exits 1 if anything was left. With
// dockerd or podman it holds the host-wide lock of the engine tests (test/engine.LockHost).
//
// Usage (root): engine [-n 20] [-warmup 2] [-idle 50] [-tools berth,dockerd,podman]
package main

import (
	"context"
	"flag"
	"path/filepath"
	"time"

	"berth/test/bench/harness"
)

const nsEnv = "BERTH_BENCH_ENGINE_IN_NS"

var (
	flagN       = flag.Int("n", 20, "measured iterations of run and of exec, per engine")
	flagWarmup  = flag.Int("warmup", 2, "unmeasured iterations first (run and exec)")
	flagIdle    = flag.Int("idle", 50, "idle containers per engine for the memory measurement (0 skips it)")
	flagSettle  = flag.Duration("settle", 5*time.Second, "wait after the last idle container started before reading memory")
	flagTools   = flag.String("tools", "berth,dockerd,podman", "engines to measure, comma-separated (berth, dockerd, podman)")
	flagBin     = flag.String("bin", filepath.Join(harness.RepoRoot(), "bin"), "directory with berthd, berth-shim, berth-runtime and berth-init (make build)")
	flagDocker  = flag.String("docker", "/usr/local/bin/docker", "docker CLI (28) for berthd and dockerd")
	flagDockerd = flag.String("dockerd", "dockerd", "dockerd binary")
	flagPodman  = flag.String("podman", "podman", "podman binary")
	flagRuntime = flag.String("podman-runtime", "runc", "podman's OCI runtime (crun 1.8 refuses hybrid cgroups)")
	flagWorkdir = flag.String("workdir", "/var/tmp", "parent of the bench's directory (sockets must fit in 108 bytes, podman's run root in 50)")
	flagKeep    = flag.Bool("keep", false, "keep the bench's directory with the daemons' logs (berthd.log, dockerd.log); containers, images, daemons and mounts are removed anyway")
	flagDebug   = flag.Bool("berthd-debug", false, "run berthd with --debug: its log (berthd.log, kept with -keep) has every API request with its time")
)

// image is the name of the busybox image in every engine.
const image = "berth-bench/busybox:1"

var bench = &harness.Bench{Name: "engine", MaxFailures: 2, ErrTail: 1500, ErrSep: " ", Keep: flagKeep}

var logf = bench.Logf

func main() {
	harness.Main(nsEnv, func() int { return harness.Reexec("engine", nsEnv) }, inner)
}

func inner() int {
	return harness.RunEngines(bench, harness.Engines[*eng, string]{
		Tools: *flagTools, Workdir: *flagWorkdir, Prefix: "bbe-",
		// The busybox-static root filesystem of test/berthtest.BusyboxTar.
		Inputs:      func(work string) (string, error) { return harness.BusyboxTar(work, nil) },
		InputsWhat:  "busybox rootfs",
		Start:       map[string]harness.Start[*eng]{"berth": startBerth, "dockerd": startDockerd, "podman": newPodman},
		SkipMissing: true,
		Prepare:     prepare,
		Measure:     measure,
		Report:      report,
		What:        "engine bench", N: *flagN, Warmup: *flagWarmup,
	})
}

// measure times run and exec in every engine, then the memory of its idle containers.
func measure(ctx context.Context, live []*eng, _ string) {
	measureRun(ctx, live)
	measureExec(ctx, live)
	if *flagIdle > 0 {
		for _, e := range live {
			if !e.Dropped && !bench.Stopping() {
				measureIdle(ctx, e, *flagIdle)
			}
		}
	}
}
