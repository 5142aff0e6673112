package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"berth/test/bench/stats"
	"berth/test/engine"
)

// goalOps are the operations of critest's benchmark specs: the goal is berth faster than
// containerd in every one.
var goalOps = []string{opRunPod, opPodStatus, opStopPod, opRemovePod, opCreate, opStart, opCtrStatus, opStop, opRemove, opScratch}

// report is the report's body, after its head (harness.RunEngines).
func report(engines []*eng, _ *inputs, cg *engine.CgroupParent) {
	by := map[string]*eng{}
	for _, e := range engines {
		by[e.Name] = e
		if e.podNet != "" {
			fmt.Printf("- %s: %s\n", e.Name, e.podNet)
		}
	}
	net := fmt.Sprintf("CNI conflist (cniVersion 1.0.0) bridge cni0 (isGateway, ipMasq) + host-local %s + portmap, plugins in %s", *flagSubnet, *flagCNIBin)
	fmt.Printf("- each engine in a network namespace of its own (lo up); %s; pods' cgroup parent %s/<engine>; image %s (busybox-static's root filesystem), containers run `top`; containerd's sandbox image %s is berth-init --pause (berth's pod holder)\n",
		net, cg.Path, busyboxImage, pauseImage)
	fmt.Printf("- one gRPC client per engine; every operation is the wall time of its request(s) at the client, as critest measures it; iterations run every sequence on every engine once, in an order that rotates\n\n")

	get := func(name, op string) []time.Duration {
		if e := by[name]; e != nil {
			return e.samples[op]
		}
		return nil
	}
	table := func(title string, rows [][2]string) {
		fmt.Printf("## %s (ms)\n\n", title)
		header := []string{"operation"}
		for _, e := range engines {
			header = append(header, e.Name+" median", e.Name+" p90")
		}
		header = append(header, "berth/containerd", "n")
		tab := stats.NewTable(header...)
		for _, r := range rows {
			cells := []any{r[0]}
			n := 0
			for _, e := range engines {
				s := e.samples[r[1]]
				cells = append(cells, stats.Millis(s, 0.5, 1), stats.Millis(s, 0.9, 1))
				n = max(n, len(s))
			}
			cells = append(cells, stats.Ratio(get("berth", r[1]), get("containerd", r[1]), "n/a"), n)
			tab.Row(cells...)
		}
		tab.Print(os.Stdout)
	}

	table("pod lifecycle (critest: \"benchmark about lifecycle of PodSandbox\")", [][2]string{
		{"RunPodSandbox", opRunPod},
		{"PodSandboxStatus (verbose)", opPodStatus},
		{"StopPodSandbox", opStopPod},
		{"RemovePodSandbox", opRemovePod},
	})
	table("container lifecycle (critest: \"benchmark about basic operations on Container\")", [][2]string{
		{"CreateContainer (critest's: ImageStatus + CreateContainer)", opCreate},
		{"- of which ImageStatus", opImgStatus},
		{"- of which the CreateContainer request", opCreateRPC},
		{"StartContainer", opStart},
		{"ContainerStatus (verbose)", opCtrStatus},
		{"StopContainer (timeout 60 s; `top` exits on SIGTERM)", opStop},
		{"RemoveContainer", opRemove},
		{"(untimed by critest) RunPodSandbox of the container's pod", opPodInCtr},
		{"(untimed by critest) StopPodSandbox of a pod with a removed container", opStopPodCtr},
	})
	table("pod and container from scratch (critest: \"benchmark about start a container from scratch\")", [][2]string{
		{"RunPodSandbox + ImageStatus + CreateContainer + StartContainer + StopPodSandbox + RemovePodSandbox", opScratch},
	})

	if by["berth"] == nil || by["containerd"] == nil {
		return
	}
	var met, missed []string
	for _, op := range goalOps {
		b, c := get("berth", op), get("containerd", op)
		if len(b) == 0 || len(c) == 0 {
			missed = append(missed, op+" (n/a)")
			continue
		}
		r := float64(stats.Median(b)) / float64(stats.Median(c))
		s := fmt.Sprintf("%s %.2f", op, r)
		if r < 1 {
			met = append(met, s)
		} else {
			missed = append(missed, s)
		}
	}
	verdict := "met"
	if len(missed) > 0 {
		verdict = "missed"
	}
	fmt.Printf("goal (berth faster than containerd in every operation of critest's benchmark specs, ratio of medians < 1): **%s**, %d of %d\n", verdict, len(met), len(goalOps))
	if len(met) > 0 {
		fmt.Printf("- faster: %s\n", strings.Join(met, ", "))
	}
	if len(missed) > 0 {
		fmt.Printf("- not faster: %s\n", strings.Join(missed, ", "))
	}
	fmt.Println()
}
