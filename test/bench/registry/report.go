package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"berth/test/bench/stats"
	"berth/test/engine"
)

// goal is the issue's: berth's push and pull in at most half of dockerd's time.
const goal = 0.5

// secs is the q-quantile of ds in seconds, n/a when there is none.
func secs(ds []time.Duration, q float64) string {
	if len(ds) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", stats.Quantile(ds, q).Seconds())
}

// mbps is bytes over the median of ds, in MB/s.
func mbps(bytes int64, ds []time.Duration) string {
	if len(ds) == 0 || bytes == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", float64(bytes)/1e6/stats.Median(ds).Seconds())
}

// report is the report's body, after its head (harness.RunEngines).
func report(engines []*eng, in *inputs, cg *engine.CgroupParent) {
	fmt.Printf("- image: %s from %s, %d layers, %.0f MB uncompressed (%d bytes); `docker load`ed once per engine:", in.ref, in.dir, in.layers, float64(in.size)/1e6, in.size)
	for _, e := range engines {
		if e.load > 0 {
			fmt.Printf(" %s %.1f s", e.Name, e.load.Seconds())
		}
	}
	fmt.Println()
	for _, e := range engines {
		if e.regVersion != "" {
			fmt.Printf("- %s's registry: %s on %s in its network namespace, empty at every push; layers in it: %s\n",
				e.Name, e.regVersion, registryAddr, strings.Join(e.mediaTypes, ", "))
		}
	}
	fmt.Printf("- file system: %s\n- cgroups under %s/<engine>\n\n", fsDesc(), cg.Path)

	var berth, dockerd *eng
	for _, e := range engines {
		switch e.Name {
		case "berth":
			berth = e
		case "dockerd":
			dockerd = e
		}
	}
	durs := func(e *eng, phase string) []time.Duration {
		if e == nil {
			return nil
		}
		if phase == "push" {
			return e.push
		}
		return e.pull
	}
	for _, p := range []struct{ phase, title string }{
		{"push", "push: `docker push 127.0.0.1:5000/bench/img:N` into an empty registry (s)"},
		{"pull", "pull: `docker pull 127.0.0.1:5000/bench/img:N` with no layer of the image present (s)"},
	} {
		fmt.Printf("## %s\n\n", p.title)
		tab := stats.NewTable("engine", "median", "p90", "MB over loopback", "MB/s over loopback", "image MB/s", "berth/engine", "n")
		for _, e := range engines {
			ds := durs(e, p.phase)
			pushed := int64(stats.MedianOf(e.pushed))
			tab.Row(e.Name, secs(ds, 0.5), secs(ds, 0.9), mb(pushed), mbps(pushed, ds), mbps(in.size, ds),
				stats.Ratio(durs(berth, p.phase), ds, "n/a"), len(ds))
		}
		tab.Print(os.Stdout)
		r := stats.Ratio(durs(berth, p.phase), durs(dockerd, p.phase), "n/a")
		verdict := ""
		if b, d := durs(berth, p.phase), durs(dockerd, p.phase); len(b) > 0 && len(d) > 0 {
			verdict = " (goal <= 0.50: missed)"
			if float64(stats.Median(b)) <= goal*float64(stats.Median(d)) {
				verdict = " (goal <= 0.50: met)"
			}
		}
		fmt.Printf("berth/dockerd = %s%s\n\n", r, verdict)
	}
	fmt.Println("MB over loopback: the config and layer blobs in the registry after the push (median), what went over loopback; dockerd gzips every layer as it pushes, berth sends the layers as stored. image MB/s: the image's uncompressed size over the median.")
	for _, e := range engines {
		for _, n := range e.notes {
			fmt.Printf("note: %s: %s\n", e.Name, n)
		}
	}
}

// mb is bytes in MB with one decimal, n/a for none.
func mb(n int64) string {
	if n == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", float64(n)/1e6)
}
