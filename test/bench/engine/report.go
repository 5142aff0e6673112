package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"berth/test/bench/stats"
	"berth/test/engine"
)

func mb(kb float64) string { return fmt.Sprintf("%.2f", kb/1024) }

// goal is num/den ("%.3f") and whether it is at most max: "0.213 (<= 0.25: met)".
func goal(num, den float64, max float64) string {
	if den == 0 || num == 0 {
		return "n/a"
	}
	verdict := "missed"
	if num/den <= max {
		verdict = "met"
	}
	return fmt.Sprintf("%.3f (<= %g: %s)", num/den, max, verdict)
}

// report is the report's body, after its head (harness.RunEngines).
func report(engines []*eng, _ string, cg *engine.CgroupParent) {
	fmt.Printf("- image: %s, the busybox-static root filesystem of test/berthtest (imported in each engine); containers with --network none, cgroups under %s/<engine>\n\n", image, cg.Path)

	by := map[string]*eng{}
	for _, e := range engines {
		by[e.Name] = e
	}
	get := func(name string, f func(*eng) []time.Duration) []time.Duration {
		if e := by[name]; e != nil {
			return f(e)
		}
		return nil
	}
	latency := func(title string, f func(*eng) []time.Duration) {
		fmt.Printf("## %s (ms)\n\n", title)
		tab := stats.NewTable("engine", "median", "p90", "berth/engine", "n")
		for _, e := range engines {
			tab.Row(e.Name, stats.Millis(f(e), 0.5, 1), stats.Millis(f(e), 0.9, 1), stats.Ratio(get("berth", f), f(e), "n/a"), len(f(e)))
		}
		tab.Print(os.Stdout)
	}
	durs := func(a, b []time.Duration) (float64, float64) {
		if len(a) == 0 || len(b) == 0 {
			return 0, 0
		}
		return float64(stats.Median(a)), float64(stats.Median(b))
	}

	run := func(e *eng) []time.Duration { return e.run }
	latency("run: `docker run --rm --network none IMAGE true` (podman: `podman run --rm ...`)", run)
	b, d := durs(get("berth", run), get("dockerd", run))
	fmt.Printf("goal (run): berth/dockerd = %s; berth/podman = %s\n\n",
		goal(b, d, 0.25), stats.Ratio(get("berth", run), get("podman", run), "n/a"))

	floor := func(e *eng) []time.Duration { return e.floor }
	latency("floor: `docker version` (the CLI's start, /_ping and /version; podman: `podman version`)", floor)

	exec := func(e *eng) []time.Duration { return e.exec }
	latency("exec: `docker exec CONTAINER true` into a running `sleep` container", exec)
	fmt.Printf("berth/dockerd = %s, berth/podman = %s\n\n",
		stats.Ratio(get("berth", exec), get("dockerd", exec), "n/a"), stats.Ratio(get("berth", exec), get("podman", exec), "n/a"))

	if *flagIdle <= 0 {
		return
	}
	detached := func(e *eng) []time.Duration { return e.runDetached }
	latency(fmt.Sprintf("run -d: starting the %d idle containers (`run -d ... sleep 1000000`, one after another)", *flagIdle), detached)

	fmt.Printf("## idle containers: the engine's process per container (%d `sleep` containers per engine, read %v after the last start; MB)\n\n", *flagIdle, *flagSettle)
	type shimStat struct{ rss, pss, priv, threads float64 }
	shim := map[string]shimStat{}
	for _, e := range engines {
		if e.idle == nil {
			continue
		}
		var rss, pss, priv, thr []int64
		for _, m := range e.idle.shims {
			rss, pss, priv, thr = append(rss, m.rss), append(pss, m.pss), append(priv, m.private), append(thr, m.threads)
		}
		shim[e.Name] = shimStat{stats.MedianOf(rss), stats.MedianOf(pss), stats.MedianOf(priv), stats.MedianOf(thr)}
	}
	bs := shim["berth"]
	tab := stats.NewTable("engine", "process", "RSS", "PSS", "private", "threads", "n", "berth/engine RSS", "berth/engine PSS")
	for _, e := range engines {
		if e.idle == nil {
			continue
		}
		s := shim[e.Name]
		tab.Row(e.Name, e.shim, mb(s.rss), mb(s.pss), mb(s.priv), fmt.Sprintf("%.0f", s.threads), len(e.idle.shims),
			stats.RatioOf(bs.rss, s.rss), stats.RatioOf(bs.pss, s.pss))
	}
	tab.Print(os.Stdout)
	fmt.Println("Medians over the processes. RSS: VmRSS; PSS: Pss of smaps_rollup (pages shared by N processes count 1/N); private: Private_Clean + Private_Dirty (what the process alone holds).")
	fmt.Println()
	cs, cm := shim["dockerd"], shim["podman"]
	fmt.Printf("goal (memory): berth-shim/conmon: RSS %s, PSS %s\n", goal(bs.rss, cm.rss, 1), goal(bs.pss, cm.pss, 1))
	fmt.Printf("goal (memory): berth-shim/containerd-shim-runc-v2: RSS %s, PSS %s\n\n", goal(bs.rss, cs.rss, 0.25), goal(bs.pss, cs.pss, 0.25))

	fmt.Printf("## idle containers: the whole engine (%d containers per engine; MB)\n\n", *flagIdle)
	tab = stats.NewTable("engine", "daemons", "daemons RSS", "daemons PSS", "shims PSS (sum)", "engine PSS per container")
	for _, e := range engines {
		if e.idle == nil {
			continue
		}
		var names []string
		var rss, pss, shims int64
		for _, m := range e.idle.daemons {
			names = append(names, m.name)
			rss, pss = rss+m.rss, pss+m.pss
		}
		for _, m := range e.idle.shims {
			shims += m.pss
		}
		daemons := strings.Join(names, " + ")
		if daemons == "" {
			daemons = "none"
		}
		per := "n/a"
		if e.idle.containers > 0 {
			per = mb(float64(pss+shims) / float64(e.idle.containers))
		}
		tab.Row(e.Name, daemons, mb(float64(rss)), mb(float64(pss)), mb(float64(shims)), per)
	}
	tab.Print(os.Stdout)
	fmt.Println("engine PSS per container: (daemons' PSS + the shims' PSS) / containers, with the containers idle; the containers' own processes are not counted.")
	fmt.Println()
	for _, e := range engines {
		if e.idle != nil && e.idle.note != "" {
			fmt.Printf("note: %s: %s\n", e.Name, e.idle.note)
		}
	}
}
