package main

import (
	"fmt"
	"os"
	"time"

	"berth/test/bench/stats"
	"berth/test/engine"
)

func minMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	return fmt.Sprintf("%.0f-%.0f", float64(lo)/1e6, float64(hi)/1e6)
}

// report is the report's body, after its head (harness.RunEngines).
func report(engines []*eng, in *inputs, cg *engine.CgroupParent) {
	fmt.Printf("- Dockerfile: %d instructions in 2 stages (FROM %s: COPY %d C files, RUN gcc -static; FROM %s: ENV, LABEL, WORKDIR, COPY --from, RUN, CMD); base images imported in each engine (toolchain %.0f MB); builds with --network none, cgroups under %s/<engine>\n\n",
		instructions(), toolchainImage, in.files-1, busyboxImage, float64(in.toolchainSize)/1e6, cg.Path)

	by := map[string]*eng{}
	for _, e := range engines {
		by[e.Name] = e
	}
	get := func(name, phase string) []time.Duration {
		if e := by[name]; e != nil {
			return e.phase(phase)
		}
		return nil
	}
	for _, p := range []struct{ phase, title string }{
		{"full", "full build: `build --no-cache` (every step runs; same store at each start) (ms)"},
		{"rebuild", "no-change rebuild: the same build again (every step a cache hit) (ms)"},
	} {
		fmt.Printf("## %s\n\n", p.title)
		tab := stats.NewTable("engine", "median", "min-max", "berth/engine", "n")
		for _, e := range engines {
			ds := e.phase(p.phase)
			tab.Row(e.Name, stats.Millis(ds, 0.5, 0), minMax(ds), stats.Ratio(get("berth", p.phase), ds, "n/a"), len(ds))
		}
		tab.Print(os.Stdout)
		fmt.Printf("berth/dockerd = %s, berth/podman = %s\n\n",
			stats.Ratio(get("berth", p.phase), get("dockerd", p.phase), "n/a"), stats.Ratio(get("berth", p.phase), get("podman", p.phase), "n/a"))
	}
	for _, e := range engines {
		for _, n := range e.notes {
			fmt.Printf("note: %s: %s\n", e.Name, n)
		}
	}
}
