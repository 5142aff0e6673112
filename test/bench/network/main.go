// Command network measures berth's bridge networking against Debian's dockerd 20.10 (its
// default bridge, iptables and userland proxy, docker-proxy), side by side in one run:
//
//   - HTTP requests/s: GET /index.html (1 KiB) from busybox httpd (`httpd -f -p 80 -h /www`,
//     HTTP/1.0: a connection per request) in a container, -c connections for -http-d per
//     round, through the published port 127.0.0.1:18080, and directly to the address of a
//     twin container (CONTAINER-IP:80; why a twin: prepare), for each engine; with wrk,
//     or a Go load loop (-loader);
//   - bulk TCP throughput: iperf3 -t -tcp-d seconds, one stream, to `iperf3 -s` in a container,
//     through the published port 127.0.0.1:15201, directly to the container's address, and
//     from a second container on the same bridge (container to container, `docker exec`).
//
// Every engine runs in a network namespace of its own that the bench makes (lo up, nothing
// else but net.ipv4.tcp_tw_reuse=1 for wrk's side, see makeNetNS): it is "the host" of its
// containers, where the engine makes its bridge, its rules and its sysctls, and where the
// load generators run (nsenter --net), so nothing touches the machine's own network. berthd
// (built from this tree: -bin, copied first) makes its default bridge berth0 and publishes
// ports in nftables; dockerd gets its own bip (-bip, default 10.203.0.1/24) with iptables and
// the userland proxy on, its defaults, so that 127.0.0.1:P goes through docker-proxy. Both
// import the same image: the busybox-static root filesystem of test/berthtest.BusyboxTar
// with /www/index.html, iperf3 and its shared libraries.
//
// Each round measures every path once, in an order that rotates per round, so that engines
// and paths share the machine's noise; the first -warmup rounds (shorter) are discarded. The
// report gives the medians and the ratios: published/direct per engine, berth/dockerd per
// path, as ratios of the medians and as medians of the ratios within a round. It notes the
// HTTP requests that failed and the SYNs the clients had to send again (a connection that
// waited 1 s or more), which no path should have.
//
// Everything runs in a private mount namespace (the program re-executes itself). The engines'
// containers' cgroups are under one fresh cgroup below this process's own
// (<own>/berth-bench-network-<pid>/<engine>). At the end it removes the containers and the
// image through each engine, stops the daemons by the PIDs it started (SIGTERM, then waits),
// kills and reports anything left in an engine's directory or namespace, removes the
// namespaces, unmounts and removes its directory and cgroups, removes the fixed host paths
// dockerd wrote that did not exist before (test/engine.HostPaths), and exits 1 if anything
// was left. With dockerd it holds the host-wide lock of the engine tests (test/engine.LockHost).
//
// Usage (root): network [-n 5] [-warmup 1] [-http-d 5s] [-c 8] [-tcp-d 4s] [-tools berth,dockerd]
//
// `network load -url URL -d 5s -c 8` is the Go load loop, which the bench runs in an
// engine's namespace; it prints {"requests":..,"errors":..,"seconds":..,"rps":..}.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"berth/test/bench/harness"
)

const nsEnv = "BERTH_BENCH_NETWORK_IN_NS"

var (
	flagN       = flag.Int("n", 5, "measured rounds; a round measures every path of every engine once")
	flagWarmup  = flag.Int("warmup", 1, "unmeasured rounds first (with durations of at most 2 s)")
	flagHTTPD   = flag.Duration("http-d", 5*time.Second, "duration of one HTTP load run")
	flagConns   = flag.Int("c", 8, "concurrent HTTP connections")
	flagTCPD    = flag.Duration("tcp-d", 4*time.Second, "duration of one iperf3 run (whole seconds)")
	flagLoader  = flag.String("loader", "auto", "HTTP load generator: wrk, go (the Go load loop of the load subcommand), auto (wrk when installed)")
	flagTools   = flag.String("tools", "berth,dockerd", "engines to measure, comma-separated (berth, dockerd)")
	flagBin     = flag.String("bin", filepath.Join(harness.RepoRoot(), "bin"), "directory with berthd, berth-shim, berth-runtime and berth-init (make build)")
	flagDocker  = flag.String("docker", "/usr/local/bin/docker", "docker CLI (28) for berthd and dockerd")
	flagDockerd = flag.String("dockerd", "dockerd", "dockerd binary")
	flagIperf   = flag.String("iperf3", "iperf3", "iperf3 binary (the client, and copied with its libraries into the image)")
	flagWrk     = flag.String("wrk", "wrk", "wrk binary")
	flagBip     = flag.String("bip", "10.203.0.1/24", "dockerd's bridge address (its own namespace)")
	flagWorkdir = flag.String("workdir", "/var/tmp", "parent of the bench's directory (sockets must fit in 108 bytes)")
	flagKeep    = flag.Bool("keep", false, "keep the bench's directory with the daemons' logs (berthd.log, dockerd.log); containers, images, daemons, namespaces and mounts are removed anyway")
)

// image is the name of the bench's image in every engine.
const image = "berth-bench/net:1"

// Ports: the published host ports (127.0.0.1) and the containers' ports.
const (
	httpHostPort  = 18080
	iperfHostPort = 15201
	iperfPort     = 5201
)

var bench = &harness.Bench{Name: "network", MaxFailures: 3, ErrTail: 1500, ErrSep: " ", Keep: flagKeep}

var logf = bench.Logf

func main() {
	if len(os.Args) > 1 && os.Args[1] == "load" {
		os.Exit(loadMain(os.Args[2:]))
	}
	harness.Main(nsEnv, func() int { return harness.Reexec("network", nsEnv) }, inner)
}

func inner() int {
	return harness.RunEngines(bench, harness.Engines[*eng, string]{
		Tools: *flagTools, Workdir: *flagWorkdir, Prefix: "bbn-",
		Check: func() (err error) {
			if *flagN < 1 || *flagConns < 1 || *flagHTTPD < time.Second || *flagTCPD < time.Second {
				return errors.New("-n and -c must be at least 1, -http-d and -tcp-d at least 1s")
			}
			if loader, err = pickLoader(); err != nil {
				return err
			}
			if _, err := lookIperf(); err != nil {
				return fmt.Errorf("iperf3: %v (apt-get install -y iperf3)", err)
			}
			return nil
		},
		Inputs: rootfsTar, InputsWhat: "rootfs",
		Start:   map[string]harness.Start[*eng]{"berth": startBerth, "dockerd": startDockerd},
		Prepare: prepare,
		Measure: func(ctx context.Context, live []*eng, _ string) {
			measureHTTP(ctx, live)
			measureTCP(ctx, live)
		},
		Report: report,
		What:   "network bench", N: *flagN, Warmup: *flagWarmup,
	})
}
