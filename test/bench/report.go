package main

import (
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"berth/test/bench/stats"
)

func unsafePointer(p *unix.Siginfo, off uintptr) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(p), off)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }

func cell(rt *runtime, ds []time.Duration, q float64) string {
	if len(ds) == 0 {
		if rt.name == "berth" {
			return "pending"
		}
		return "n/a"
	}
	return ms(stats.Quantile(ds, q))
}

func ratio(a, b []time.Duration) string { return stats.Ratio(a, b, "pending") }

func report(rts []*runtime, baseUnshare, baseExec []time.Duration) {
	fmt.Printf("%s\n\n", stats.Title("bench", *flagN, *flagWarmup))
	for _, rt := range rts {
		v := rt.version
		if v == "" {
			v = rt.firstErr
		}
		fmt.Printf("- %s: %s (%s)\n", rt.name, rt.path, v)
	}
	fmt.Println()

	byName := map[string]*runtime{}
	for _, rt := range rts {
		byName[rt.name] = rt
	}
	ratios := func(get func(*runtime) []time.Duration) string {
		b := byName["berth"]
		var parts []string
		for _, other := range []string{"runc", "crun"} {
			if o := byName[other]; o != nil && b != nil {
				parts = append(parts, fmt.Sprintf("berth/%s = %s", other, ratio(get(b), get(o))))
			}
		}
		return strings.Join(parts, ", ")
	}

	fmt.Println("## lifecycle: create + start + wait for exit + delete (ms)")
	fmt.Println()
	tab := stats.NewTable("runtime", "median", "p90", "create", "start", "wait", "delete", "n")
	for _, rt := range rts {
		tab.Row(rt.name, cell(rt, rt.lifecycle, 0.5), cell(rt, rt.lifecycle, 0.9),
			cell(rt, rt.create, 0.5), cell(rt, rt.start, 0.5), cell(rt, rt.wait, 0.5), cell(rt, rt.del, 0.5),
			len(rt.lifecycle))
	}
	tab.Print(os.Stdout)
	fmt.Printf("median ratios: %s\n\n", ratios(func(r *runtime) []time.Duration { return r.lifecycle }))

	fmt.Println("## run (foreground, /bin/true, exit 0) (ms)")
	fmt.Println()
	tab = stats.NewTable("runtime", "median", "p90", "n")
	for _, rt := range rts {
		tab.Row(rt.name, cell(rt, rt.run, 0.5), cell(rt, rt.run, 0.9), len(rt.run))
	}
	tab.Print(os.Stdout)
	fmt.Printf("median ratios: %s\n\n", ratios(func(r *runtime) []time.Duration { return r.run }))

	if len(baseUnshare) > 0 || len(baseExec) > 0 {
		fmt.Println("## baselines (ms)")
		fmt.Println()
		tab = stats.NewTable("command", "median", "p90", "n")
		tab.Row("`unshare --fork --pid --mount --uts --ipc --net true`",
			ms(stats.Quantile(baseUnshare, 0.5)), ms(stats.Quantile(baseUnshare, 0.9)), len(baseUnshare))
		tab.Row("fork+exec `/bin/true`", ms(stats.Quantile(baseExec, 0.5)), ms(stats.Quantile(baseExec, 0.9)), len(baseExec))
		tab.Print(os.Stdout)
	}
	for _, rt := range rts {
		if rt.fails > 0 {
			fmt.Fprintf(os.Stderr, "bench: %s: %d failed iterations; first: %s\n", rt.name, rt.fails, rt.firstErr)
		}
	}
}
