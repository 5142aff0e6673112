package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The operations the report has a row for, in its order. createOp is critest's
// "CreateContainer": ImageStatus of the image, then CreateContainer.
const (
	opRunPod     = "RunPodSandbox"
	opPodStatus  = "PodSandboxStatus"
	opStopPod    = "StopPodSandbox"
	opRemovePod  = "RemovePodSandbox"
	opCreate     = "CreateContainer"
	opImgStatus  = "ImageStatus"
	opCreateRPC  = "CreateContainer RPC"
	opStart      = "StartContainer"
	opCtrStatus  = "ContainerStatus"
	opStop       = "StopContainer"
	opRemove     = "RemoveContainer"
	opScratch    = "pod + container from scratch"
	opPodInCtr   = "RunPodSandbox (container lifecycle's pod)"
	opStopPodCtr = "StopPodSandbox (pod with a removed container)"
)

// callTimeout is the deadline of every request (critest's client: 300 s, StopContainer
// its timeout more).
const callTimeout = 5 * time.Minute

// stopTimeout is StopContainer's timeout (critest's framework.DefaultStopContainerTimeout).
const stopTimeout = 60

// sequence is one of critest's benchmark specs, as one iteration runs it on one engine.
type sequence struct {
	name string
	run  func(ctx context.Context, e *eng, rec bool)
}

var sequences = []sequence{
	{"pod lifecycle", podLifecycle},
	{"container lifecycle", containerLifecycle},
	{"from scratch", fromScratch},
}

// newUUID is a random UUID (version 4), as critest's names have.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// podConfig is critest's pod (framework.RunDefaultPodSandbox and the benchmarks): name
// prefix+UUID, uid and namespace with critest's prefixes, attempt 2, no labels beyond
// critest's (none on Linux), and the engine's cgroup parent (critest: "" when RuntimeConfig
// says cgroupfs, else /test.slice).
func (e *eng) podConfig(prefix string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: prefix + newUUID(), Uid: "cri-test-uid" + newUUID(), Namespace: "cri-test-namespace" + newUUID(), Attempt: 2,
		},
		Linux:  &runtimeapi.LinuxPodSandboxConfig{CgroupParent: e.cgroupParent},
		Labels: map[string]string{},
	}
}

// containerConfig is critest's default container (framework.CreateDefaultContainer): busybox
// running `top`, attempt 2, an empty Linux config.
func containerConfig(prefix string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: prefix + newUUID(), Attempt: 2},
		Image:    &runtimeapi.ImageSpec{Image: busyboxImage, UserSpecifiedImage: busyboxImage},
		Command:  []string{"top"},
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
}

// attempt is one run of a sequence on an engine: its operations' times, recorded only when
// every operation succeeded (as critest records a sample), and the pod to remove if it
// stops half-way.
type attempt struct {
	e    *eng
	durs map[string]time.Duration
	pod  string
	ok   bool
}

func newAttempt(e *eng) *attempt { return &attempt{e: e, durs: map[string]time.Duration{}, ok: true} }

// do times one request (f, with callTimeout) as op; after a failure it does nothing more
// and records the failure once.
func (a *attempt) do(ctx context.Context, op string, f func(ctx context.Context) error) {
	if !a.ok {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	var mono unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	t0 := time.Now()
	err := f(cctx)
	d := time.Since(t0)
	cancel()
	if *flagVerbose {
		logf("%s: %s at %s (monotonic %.3f ms) took %v (err %v)", a.e.Name, op, t0.Format("15:04:05.000000"), float64(mono.Nano())/1e6, d, err)
	}
	if err != nil {
		a.ok = false
		a.e.Check(err, op)
		return
	}
	a.durs[op] += d
}

// end removes the pod when the sequence stopped half-way, and records the times of a
// complete one.
func (a *attempt) end(rec bool) {
	if !a.ok {
		if a.pod != "" {
			a.e.removePod(a.pod)
		}
		return
	}
	if rec {
		for op, d := range a.durs {
			a.e.samples[op] = append(a.e.samples[op], d)
		}
	}
}

func (a *attempt) runPod(ctx context.Context, op string, cfg *runtimeapi.PodSandboxConfig) {
	a.do(ctx, op, func(ctx context.Context) error {
		r, err := a.e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err == nil {
			a.pod = r.PodSandboxId
		}
		return err
	})
}

func (a *attempt) stopPod(ctx context.Context, op string) {
	a.do(ctx, op, func(ctx context.Context) error {
		_, err := a.e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: a.pod})
		return err
	})
}

func (a *attempt) removePod(ctx context.Context, op string) {
	a.do(ctx, op, func(ctx context.Context) error {
		_, err := a.e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: a.pod})
		return err
	})
	if a.ok {
		a.pod = ""
	}
}

// createContainer is critest's CreateContainerWithError: ImageStatus of the image (it would
// pull it when absent), then CreateContainer; it returns the container's ID.
func (a *attempt) createContainer(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, prefix string) string {
	var id string
	a.do(ctx, opImgStatus, func(ctx context.Context) error {
		st, err := a.e.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: busyboxImage}})
		if err == nil && st.Image == nil {
			err = fmt.Errorf("ImageStatus: %s is not there (nothing can be pulled)", busyboxImage)
		}
		return err
	})
	a.do(ctx, opCreateRPC, func(ctx context.Context) error {
		r, err := a.e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: a.pod, Config: containerConfig(prefix), SandboxConfig: cfg})
		if err == nil {
			id = r.ContainerId
		}
		return err
	})
	a.durs[opCreate] = a.durs[opImgStatus] + a.durs[opCreateRPC]
	return id
}

// podLifecycle is critest's "benchmark about lifecycle of PodSandbox".
func podLifecycle(ctx context.Context, e *eng, rec bool) {
	a := newAttempt(e)
	a.runPod(ctx, opRunPod, e.podConfig("PodSandbox-for-creating-performance-test-"))
	a.do(ctx, opPodStatus, func(ctx context.Context) error {
		_, err := e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: a.pod, Verbose: true})
		return err
	})
	a.stopPod(ctx, opStopPod)
	a.removePod(ctx, opRemovePod)
	a.end(rec)
}

// containerLifecycle is critest's "benchmark about basic operations on Container": the pod
// (framework.CreatePodSandboxForContainer) and its stop and removal are not critest's
// operations; they are recorded in rows of their own.
func containerLifecycle(ctx context.Context, e *eng, rec bool) {
	a := newAttempt(e)
	cfg := e.podConfig("create-PodSandbox-for-container-")
	a.runPod(ctx, opPodInCtr, cfg)
	id := a.createContainer(ctx, cfg, "Benchmark-container-")
	a.do(ctx, opStart, func(ctx context.Context) error {
		_, err := e.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
		return err
	})
	a.do(ctx, opCtrStatus, func(ctx context.Context) error {
		r, err := e.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
		if err == nil && r.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			err = fmt.Errorf("ContainerStatus: the container is %v, not running", r.GetStatus().GetState())
		}
		return err
	})
	a.do(ctx, opStop, func(ctx context.Context) error {
		_, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: stopTimeout})
		return err
	})
	a.do(ctx, opRemove, func(ctx context.Context) error {
		_, err := e.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
		return err
	})
	a.stopPod(ctx, opStopPodCtr)
	a.removePod(ctx, "RemovePodSandbox (container lifecycle's pod)")
	a.end(rec)
}

// fromScratch is critest's "benchmark about start a container from scratch": a pod and its
// container started, then the pod stopped and removed, timed as one.
func fromScratch(ctx context.Context, e *eng, rec bool) {
	a := newAttempt(e)
	cfg := e.podConfig("PodSandbox-for-creating-pod-and-container-performance-test-")
	cfg.Labels = nil // critest's config has none
	t0 := time.Now()
	a.runPod(ctx, "scratch: RunPodSandbox", cfg)
	id := a.createContainer(ctx, cfg, "Pod-Container-for-creating-benchmark-")
	a.do(ctx, "scratch: StartContainer", func(ctx context.Context) error {
		_, err := e.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
		return err
	})
	a.stopPod(ctx, "scratch: StopPodSandbox")
	a.removePod(ctx, "scratch: RemovePodSandbox")
	total := time.Since(t0)
	// Only the total is this spec's; its parts are the rows above, measured in the other
	// sequences.
	a.durs = map[string]time.Duration{opScratch: total}
	a.end(rec)
}
