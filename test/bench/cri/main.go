// Command cri measures berth's CRI endpoint (berthd's RuntimeService, internal/cri) against
// Debian's containerd 1.6 with its CRI plugin, runc and containerd-shim-runc-v2, side by side
// in one run, with the operations of critest's benchmark specs (cri-tools v1.36.0,
// pkg/benchmark), which the bench drives itself through the CRI's gRPC API (k8s.io/cri-api):
//
//   - pod lifecycle (critest's "benchmark about lifecycle of PodSandbox"): RunPodSandbox,
//     PodSandboxStatus (verbose), StopPodSandbox, RemovePodSandbox of a pod with critest's
//     config (metadata name, uid, namespace and attempt 2, no labels, the cgroup parent);
//   - container lifecycle (critest's "benchmark about basic operations on Container"): in a
//     pod run untimed, CreateContainer (critest times ImageStatus of the image and then
//     CreateContainer as one operation; both are also reported alone), StartContainer,
//     ContainerStatus (verbose), StopContainer (timeout 60 s) and RemoveContainer of busybox
//     running `top`; the pod is stopped and removed untimed;
//   - pod and container from scratch (critest's "benchmark about start a container from
//     scratch"): RunPodSandbox, ImageStatus + CreateContainer, StartContainer,
//     StopPodSandbox, RemovePodSandbox, timed as one.
//
// Why not critest -benchmark itself: it runs one engine at a time (no interleaving on a
// shared machine), its pods' cgroup parent comes from RuntimeConfig, which containerd 1.6
// does not implement (critest then sends "/test.slice": a cgroup at the root of every
// hierarchy of the host, outside the bench's), and each of its runs pays its own start.
// The bench sends exactly critest's requests, in the same order and with the same
// timeouts, but with the pods' cgroup parent below its own cgroup, and interleaves the
// engines: every iteration runs each sequence for every engine once, in an order that
// rotates per iteration; the first -warmup iterations are discarded. Each operation is the
// wall time of one RPC from the bench's client (one gRPC connection per engine, as
// critest's), as critest measures it.
//
// The engines: berthd built from this tree (-bin, copied first) with its own data root,
// exec root and daemon.json (CRI socket <exec-root>/cri.sock); containerd (-containerd) with
// its own config.toml: root, state, gRPC socket and runc root in its directory, the CRI
// plugin with sandbox_image a locally imported pause stand-in (berth-init --pause, the
// binary berth's own pods are held by), the cgroupfs driver, netns under the state dir, CNI
// bin_dir /usr/lib/cni. Nothing is pulled: busybox (busybox-static's root filesystem, as
// test/berthtest.BusyboxTar) tagged registry.k8s.io/e2e-test-images/busybox:1.29-2 is
// `docker load`ed into berthd and `ctr -n k8s.io images import`ed into containerd with the
// pause stand-in.
//
// Both engines run in network namespaces of their own that the bench makes (lo up), with
// the same CNI network in a conf dir of their own: a conflist (cniVersion 1.0.0) of bridge
// (cni0, isGateway, ipMasq) with host-local addresses of 10.88.0.0/16 kept in the engine's
// directory, and portmap; the plugins of Debian's containernetworking-plugins
// (/usr/lib/cni). The bridge, veths and rules live in the engine's namespace and go with it.
// containerd keeps libcni's cache in /var/lib/cni: the bench bind-mounts a directory of its
// own there, in its private mount namespace. Every pod's cgroup parent is
// <own>/berth-bench-cri-<pid>/<engine>.
//
// Everything runs in a private mount namespace (the program re-executes itself). At the
// end it stops and removes every pod through each engine, stops the daemons by the PIDs it
// started (SIGTERM, then waits), kills and reports anything left in an engine's directory
// (shims) or namespace, removes the namespaces, unmounts and removes its directory and
// cgroups, removes the fixed host paths containerd's shims wrote that did not exist before
// (/run/containerd/s: test/engine.HostPaths), and exits 1 if anything was left. With
// containerd it holds the host-wide lock of the engine tests (test/engine.LockHost).
//
// Usage (root): cri [-n 20] [-warmup 2] [-tools berth,containerd] [-bin DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"berth/test/bench/harness"
)

const nsEnv = "BERTH_BENCH_CRI_IN_NS"

var (
	flagN          = flag.Int("n", 20, "measured iterations; each runs the pod lifecycle, the container lifecycle and the from-scratch start once per engine")
	flagWarmup     = flag.Int("warmup", 2, "unmeasured iterations first")
	flagTools      = flag.String("tools", "berth,containerd", "engines to measure, comma-separated (berth, containerd)")
	flagBin        = flag.String("bin", filepath.Join(harness.RepoRoot(), "bin"), "directory with berthd, berth-shim, berth-runtime and berth-init (make build)")
	flagDocker     = flag.String("docker", "/usr/local/bin/docker", "docker CLI, to load the image into berthd")
	flagContainerd = flag.String("containerd", "/usr/bin/containerd", "containerd binary (1.6, with its CRI plugin)")
	flagCtr        = flag.String("ctr", "/usr/bin/ctr", "containerd's ctr, to import the images")
	flagRunc       = flag.String("runc", "runc", "containerd's OCI runtime")
	flagCNIBin     = flag.String("cni-bin", "/usr/lib/cni", "CNI plugins (bridge, host-local, portmap, loopback)")
	flagSubnet     = flag.String("subnet", "10.88.0.0/16", "the pods' CNI subnet (each engine's in its own namespace)")
	flagWorkdir    = flag.String("workdir", "/var/tmp", "parent of the bench's directory (sockets must fit in 108 bytes)")
	flagKeep       = flag.Bool("keep", false, "keep the bench's directory with the daemons' logs (berthd.log, containerd.log); pods, daemons, namespaces and mounts are removed anyway")
	flagDebug      = flag.Bool("debug", false, "run berthd with --debug and containerd with log level debug (their logs, kept with -keep, time every request)")
	flagVerbose    = flag.Bool("v", false, "log every request with its start (wall clock, to match with an strace -tt of a daemon) and its time")
)

// The images, by the names critest uses.
const (
	busyboxImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2" // framework.DefaultLinuxContainerImage
	pauseImage   = "registry.k8s.io/pause:3.6"                      // containerd 1.6's default sandbox_image
)

// netName is the CNI network's name (the conflist's).
const netName = "berth-bench-cri"

var bench = &harness.Bench{Name: "cri", MaxFailures: 3, ErrTail: 1500, ErrSep: " ", Keep: flagKeep}

var logf = bench.Logf

func main() {
	harness.Main(nsEnv, func() int { return harness.Reexec("cri", nsEnv) }, inner)
}

func inner() int {
	return harness.RunEngines(bench, harness.Engines[*eng, *inputs]{
		Tools: *flagTools, Workdir: *flagWorkdir, Prefix: "bbc-",
		Check: func() error {
			if *flagN < 1 || *flagWarmup < 0 {
				return errors.New("-n must be at least 1, -warmup at least 0")
			}
			for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
				if _, err := os.Stat(filepath.Join(*flagCNIBin, p)); err != nil {
					return fmt.Errorf("CNI plugin: %v (apt-get install -y containernetworking-plugins)", err)
				}
			}
			return nil
		},
		Inputs: makeInputs, InputsWhat: "images",
		Start:   map[string]harness.Start[*eng]{"berth": startBerth, "containerd": startContainerd},
		Prepare: prepare,
		Measure: measure,
		Report:  report,
		What:    "CRI bench", N: *flagN, Warmup: *flagWarmup,
		AnyFailure: true,
	})
}

// measure runs the iterations: every engine's pod lifecycle, then every engine's container
// lifecycle, then every engine's start from scratch, each in an order that rotates per
// iteration.
func measure(ctx context.Context, live []*eng, _ *inputs) {
	total := *flagWarmup + *flagN
	for i := 0; i < total && !bench.Stopping(); i++ {
		rec := i >= *flagWarmup
		for _, seq := range sequences {
			for _, e := range harness.Rotated(live, i) {
				if e.Dropped || bench.Stopping() {
					continue
				}
				seq.run(ctx, e, rec)
			}
		}
		if (i+1)%5 == 0 || i+1 == total {
			logf("iteration %d/%d done", i+1, total)
		}
	}
}
