// Command build measures berth's Dockerfile builder (berthd's POST /build, driven by the
// stock docker CLI with DOCKER_BUILDKIT=0) against the classic builder of Debian's dockerd
// 20.10 (the same CLI, DOCKER_BUILDKIT=0) and `podman build` (buildah in podman), side by
// side in one run, on one multi-stage Dockerfile:
//
//	FROM berth-bench/toolchain:1 AS build       busybox-static + the host's gcc 12, binutils,
//	WORKDIR /src                                libc6-dev (test/imagetest.WriteToolchainTar)
//	COPY src/ /src/                             a small C source tree (a few files)
//	RUN mkdir -p /out && gcc -static -O2 ...    compiled and linked statically, then run once
//	FROM berth-bench/busybox:1                  busybox-static alone (test/imagetest.WriteBusyboxTar)
//	ENV ... / LABEL ... / WORKDIR /app
//	COPY --from=build /out/bench-app /app/bench-app
//	RUN /app/bench-app --version > /app/VERSION
//	CMD ["/app/bench-app"]
//
// and two phases, each the wall time of the CLI's `build` from its fork to its exit (the
// context upload included), exit status 0:
//
//   - full: `build --no-cache`: every instruction runs (the engines' caches are not consulted;
//     all three take --no-cache). Between rounds the bench removes the built image and every
//     image but the two base images (untimed), so each full build starts from the same store;
//   - rebuild: the same build again, unchanged, without --no-cache, right after the full
//     build: every step is a cache hit; the bench checks that the image ID is the full build's.
//
// The base images are imported into each engine first (`docker import` / `podman import`
// of the tars, untimed), and the first full build's image is run once per engine
// (`run --rm`), which must print the program's output. Every build's RUN steps have no
// network (`build --network none`); berthd runs in a network namespace of its own (it makes
// its default bridge at start), dockerd has no bridge and no iptables (test/engine), podman
// builds with --network none, so nothing touches the machine's network. podman builds with
// --layers (its cache), --pull=never, --isolation oci with -podman-runtime (runc: crun 1.8
// refuses this machine's hybrid cgroups), and the nofile and nproc ulimits this machine can
// grant (containers.conf default_ulimits).
//
// Each round runs the full builds of every engine, then the rebuilds of every engine, in an
// order that rotates per round, so that the engines share the machine's noise; the first
// -warmup rounds are discarded. The report gives the medians (and min, max) per engine per
// phase and the ratios berth/peer of the medians.
//
// Every engine has its own directory (data root, exec root, socket, store) under -workdir,
// its containers' cgroups under one fresh cgroup below this process's own (cgroup parent
// <own>/berth-bench-build-<pid>/<engine>; podman's RUN steps run in .../podman-build, which
// buildah takes as the container's cgroup itself, not as a parent). berthd runs from a copy of -bin (berthd,
// berth-shim, berth-runtime, berth-init), so a rebuild during the run does not change what
// is measured. Everything runs in a private mount namespace (the program re-executes
// itself), so no mount outlives it. At the end it removes every container and image through
// each engine, stops the daemons by the PIDs it started (dockerd stops its containerd),
// waits for or kills what is left under each engine's directory, unmounts and removes the
// directories and the cgroups it made, removes the fixed host paths the engines wrote that
// did not exist before (test/engine.HostPaths), and exits 1 if anything was left. With
// dockerd or podman it holds the host-wide lock of the engine tests (test/engine.LockHost).
//
// Usage (root): build [-n 5] [-warmup 1] [-tools berth,dockerd,podman]
package main

import (
	"errors"
	"flag"
	"path/filepath"
	"time"

	"berth/test/bench/harness"
)

const nsEnv = "BERTH_BENCH_BUILD_IN_NS"

var (
	flagN       = flag.Int("n", 5, "measured rounds; a round is a full build and a rebuild per engine")
	flagWarmup  = flag.Int("warmup", 1, "unmeasured rounds first")
	flagTools   = flag.String("tools", "berth,dockerd,podman", "engines to measure, comma-separated (berth, dockerd, podman)")
	flagBin     = flag.String("bin", filepath.Join(harness.RepoRoot(), "bin"), "directory with berthd, berth-shim, berth-runtime and berth-init (make build)")
	flagDocker  = flag.String("docker", "/usr/local/bin/docker", "docker CLI (28) for berthd and dockerd")
	flagDockerd = flag.String("dockerd", "dockerd", "dockerd binary")
	flagPodman  = flag.String("podman", "podman", "podman binary")
	flagRuntime = flag.String("podman-runtime", "runc", "podman's OCI runtime (crun 1.8 refuses hybrid cgroups)")
	flagTimeout = flag.Duration("timeout", 5*time.Minute, "time limit of one build")
	flagWorkdir = flag.String("workdir", "/var/tmp", "parent of the bench's directory (sockets must fit in 108 bytes, podman's run root in 50)")
	flagKeep    = flag.Bool("keep", false, "keep the bench's directory with the daemons' logs (berthd.log, dockerd.log) and the build context; containers, images, daemons and mounts are removed anyway")
	flagVerbose = flag.Bool("v", false, "print every build's output (standard error)")
	flagDebug   = flag.Bool("berthd-debug", false, "run berthd with --debug: its log (berthd.log, kept with -keep) has every API request with its time")
)

// The images in every engine: the two bases (imported) and the build's result.
const (
	toolchainImage = "berth-bench/toolchain:1"
	busyboxImage   = "berth-bench/busybox:1"
	appImage       = "berth-bench/app:1"
)

var bench = &harness.Bench{Name: "build", MaxFailures: 2, ErrTail: 2000, ErrSep: "\n", Keep: flagKeep}

var logf = bench.Logf

func main() {
	harness.Main(nsEnv, func() int { return harness.Reexec("build", nsEnv) }, inner)
}

func inner() int {
	return harness.RunEngines(bench, harness.Engines[*eng, *inputs]{
		Tools: *flagTools, Workdir: *flagWorkdir, Prefix: "bbb-",
		Check: func() error {
			if *flagN < 1 || *flagWarmup < 0 {
				return errors.New("-n must be at least 1, -warmup at least 0")
			}
			return nil
		},
		Inputs: writeInputs, InputsWhat: "inputs",
		Start:       map[string]harness.Start[*eng]{"berth": startBerth, "dockerd": startDockerd, "podman": newPodman},
		SkipMissing: true,
		Prepare:     prepare,
		Measure:     measure,
		Report:      report,
		What:        "build bench", N: *flagN, Warmup: *flagWarmup,
		AnyFailure: true,
	})
}
