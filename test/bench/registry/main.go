// Command registry measures `docker push` and `docker pull` of a multi-layer image through a
// registry on loopback: berthd (POST /images/{name}/push, POST /images/create) with `berth
// registry serve`, against Debian's dockerd 20.10 with Debian's docker-registry 2.8 (the
// distribution project's registry), both driven by the stock docker CLI, side by side in one
// run.
//
// The image is the images suite's cached Debian image (test/bench/images: debootstrap
// --variant=minbase bookworm and three apt-get layers; 4 layers, >= 300 MB uncompressed),
// `docker load`ed into every engine once, untimed (image.go). Every engine runs in a network
// namespace of its own that the bench makes (lo up, nothing else), with its registry on
// 127.0.0.1:5000 in the same namespace, and on a file system of its own (fs.go). Per
// iteration and engine:
//
//   - push: the registry is started again on an empty storage directory (untimed), the
//     image tagged 127.0.0.1:5000/bench/img:N, then the timed `docker push` of that name.
//     Every layer must be reported "Pushed" (none "already exists" or "Mounted from"), and
//     the registry's manifest must list every layer; its blobs' sizes are the bytes pushed.
//   - pull: every tag of the image is removed (`docker rmi`); the engine must then have no
//     image and its store no blob and no layer; then the timed `docker pull` of the name.
//     Every layer must be reported "Pull complete" (none "Already exists"), and the image's
//     ID must be the loaded one's. The image is then tagged back (untimed).
//
// sync(2) runs before every timed command, untimed. Every iteration pushes with every engine,
// then pulls with every engine, each phase in an order that rotates per iteration, so that
// the engines share the machine's noise; the first -warmup iterations are discarded. The
// report gives per phase the median and p90 of each engine, the ratio berth/dockerd of the
// medians, and the bytes pushed: dockerd compresses every layer with gzip as it pushes, berth
// pushes the layers as it stores them (uncompressed tars, for a loaded image).
//
// Everything runs in a private mount namespace (the program re-executes itself). At the end
// the bench stops the registries and the daemons by the PIDs it started (SIGTERM, then
// waits), removes the images through each engine, kills and reports anything left in an
// engine's directory or namespace, removes the namespaces, unmounts and removes the file
// systems, its directory and its cgroups, removes the fixed host paths dockerd wrote that did
// not exist before (test/engine.HostPaths), and exits 1 if anything was left. With dockerd
// it holds the host-wide lock of the engine tests (test/engine.LockHost).
//
// Usage (root): registry [-n 5] [-warmup 1] [-tools berth,docker] [-keep]
package main

import (
	"context"
	"errors"
	"flag"
	"path/filepath"
	"time"

	"berth/test/bench/harness"
)

const nsEnv = "BERTH_BENCH_REGISTRY_IN_NS"

var (
	flagN         = flag.Int("n", 5, "measured iterations; an iteration is a push and a pull per engine")
	flagWarmup    = flag.Int("warmup", 1, "unmeasured iterations first")
	flagTools     = flag.String("tools", "berth,docker", "engines to measure, comma-separated (berth, docker)")
	flagBin       = flag.String("bin", filepath.Join(harness.RepoRoot(), "bin"), "directory with berthd, berth-shim, berth-runtime, berth-init and berth (make build)")
	flagDocker    = flag.String("docker", "/usr/local/bin/docker", "docker CLI (28) for berthd and dockerd")
	flagDockerd   = flag.String("dockerd", "dockerd", "dockerd binary")
	flagRegistry  = flag.String("registry", "/usr/bin/docker-registry", "dockerd's registry (Debian's docker-registry)")
	flagCache     = flag.String("cache", "/var/tmp/berth-bench-image", "the images suite's image cache (test/bench/images -cache)")
	flagImagesBin = flag.String("images-bin", "", "the images suite's binary (_output/bench-images): when set, its -build-only runs first, building the image if it is missing")
	flagFS        = flag.String("fs", "loop", "where every engine and its registry write: loop (a fresh journaled ext4 in a file under -workdir, mounted on the engine's directory) or host (-workdir itself)")
	flagFSSize    = flag.String("fs-size", "16G", "size of every engine's -fs loop file system (sparse)")
	flagTimeout   = flag.Duration("timeout", 10*time.Minute, "time limit of one load, push or pull")
	flagWorkdir   = flag.String("workdir", "/var/tmp", "parent of the bench's directory (sockets must fit in 108 bytes)")
	flagKeep      = flag.Bool("keep", false, "keep the bench's directory with the daemons' and registries' logs (berthd.log, dockerd.log, berth-registry.log, dockerd-registry.log); images, daemons, registries, namespaces and mounts are removed anyway")
	flagVerbose   = flag.Bool("v", false, "print every push's and pull's output (standard error)")
)

var bench = &harness.Bench{Name: "registry", MaxFailures: 2, ErrTail: 2000, ErrSep: "\n", Keep: flagKeep}

var logf = bench.Logf

func main() {
	harness.Main(nsEnv, func() int { return harness.Reexec("registry", nsEnv) }, inner)
}

func inner() int {
	var in *inputs
	defer func() { in.unlock() }()
	return harness.RunEngines(bench, harness.Engines[*eng, *inputs]{
		Tools: *flagTools, Workdir: *flagWorkdir, Prefix: "bbr-",
		Check: func() error {
			if *flagN < 1 || *flagWarmup < 0 {
				return errors.New("-n must be at least 1, -warmup at least 0")
			}
			if *flagFS != "loop" && *flagFS != "host" {
				return errors.New("-fs: want loop or host")
			}
			return nil
		},
		Inputs: func(string) (*inputs, error) {
			var err error
			in, err = findImage(context.Background())
			return in, err
		},
		InputsWhat: "image",
		Start:      map[string]harness.Start[*eng]{"berth": startBerth, "dockerd": startDockerd},
		Prepare:    prepare,
		Measure:    measure,
		Report:     report,
		What:       "registry bench", N: *flagN, Warmup: *flagWarmup,
		AnyFailure: true,
	})
}
