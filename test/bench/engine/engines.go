package main

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"berth/test/bench/harness"
)

// eng is one engine under measurement, driven through its command-line tool.
type eng struct {
	*harness.Engine
	// shim is the executable of the engine's process per running container: berth-shim,
	// containerd-shim-runc-v2, conmon.
	shim    string
	runArgs []string // flags of every `run` before the image

	run, floor, exec, runDetached []time.Duration
	idle                          *idleResult
}

// prepare imports the busybox root filesystem as the bench's image and runs it once.
func prepare(ctx context.Context, e *eng, rootfs string) error {
	if _, err := e.Out(ctx, "import", rootfs, image); err != nil {
		return err
	}
	if out, err := e.Out(ctx, e.runCmd("--rm", image, "sh", "-c", "echo ok")...); err != nil {
		return err
	} else if out != "ok" {
		return fmt.Errorf("run --rm %s sh -c 'echo ok': output %q", image, out)
	}
	return nil
}

// runCmd is `run <runArgs> args...`.
func (e *eng) runCmd(args ...string) []string {
	return append(append([]string{"run"}, e.runArgs...), args...)
}

// Cleanup removes the engine's containers and image through it, and ends it.
func (e *eng) Cleanup() int {
	if n := e.RemoveAll(image); n > 0 {
		logf("%s: removed %d containers left by the measurements", e.Name, n)
	}
	return e.Shutdown(nil)
}

// daemons are the engine's long-lived processes besides the shims: berthd; dockerd and its
// containerd; none for podman.
func (e *eng) daemons() []int {
	if e.PID == 0 {
		return nil
	}
	return append([]int{e.PID}, processesOf(e.Dir, "containerd")...)
}

// startBerth starts a private berthd (harness.StartBerth: from a copy of -bin, in a network
// namespace of its own; the runs use --network none, as dockerd's).
func startBerth(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	h, err := bench.StartBerth(ctx, dir, harness.BerthOptions{Bin: *flagBin, Docker: *flagDocker, CgroupParent: cgroupParent, Debug: *flagDebug})
	if h == nil {
		return nil, err
	}
	return &eng{Engine: h, shim: "berth-shim", runArgs: []string{"--network", "none"}}, err
}

// startDockerd starts a private dockerd (harness.StartDockerd: no bridge, no iptables,
// overlay2).
func startDockerd(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	h, err := bench.StartDockerd(ctx, dir, harness.DockerdOptions{Dockerd: *flagDockerd, Docker: *flagDocker, CgroupParent: cgroupParent})
	if h == nil {
		return nil, err
	}
	return &eng{Engine: h, shim: "containerd-shim-runc-v2", runArgs: []string{"--network", "none"}}, err
}

// newPodman sets up a private podman (harness.NewPodman) with conmon and -podman-runtime.
func newPodman(_ context.Context, dir, cgroupParent string) (*eng, error) {
	if _, err := exec.LookPath("conmon"); err != nil {
		return nil, err
	}
	h, err := bench.NewPodman(dir, *flagPodman, *flagRuntime)
	if h == nil {
		return nil, err
	}
	h.Version += ", " + harness.ToolVersion("conmon") + ", " + harness.ToolVersion(*flagRuntime)
	return &eng{Engine: h, shim: "conmon", runArgs: []string{"--network", "none", "--cgroup-parent", cgroupParent}}, err
}
