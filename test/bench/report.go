package main

import (
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func unsafePointer(p *unix.Siginfo, off uintptr) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(p), off)
}

// quantile returns the nearest-rank q-quantile (0<q<=1).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if q == 0.5 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }

func cell(rt *runtime, ds []time.Duration, q float64) string {
	if len(ds) == 0 {
		if rt.name == "berth" {
			return "pending"
		}
		return "n/a"
	}
	return ms(quantile(ds, q))
}

func ratio(a, b []time.Duration) string {
	if len(a) == 0 || len(b) == 0 {
		return "pending"
	}
	return fmt.Sprintf("%.2f", float64(quantile(a, 0.5))/float64(quantile(b, 0.5)))
}

func report(rts []*runtime, baseUnshare, baseExec []time.Duration) {
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("# berth bench: N=%d (after %d warm-up), kernel %s, %d CPUs, %s\n\n",
		*flagN, *flagWarmup, unix.ByteSliceToString(uts.Release[:]), goruntime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
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
	fmt.Println("| runtime | median | p90 | create | start | wait | delete | n |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, rt := range rts {
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %d |\n", rt.name,
			cell(rt, rt.lifecycle, 0.5), cell(rt, rt.lifecycle, 0.9),
			cell(rt, rt.create, 0.5), cell(rt, rt.start, 0.5), cell(rt, rt.wait, 0.5), cell(rt, rt.del, 0.5),
			len(rt.lifecycle))
	}
	fmt.Printf("\nmedian ratios: %s\n\n", ratios(func(r *runtime) []time.Duration { return r.lifecycle }))

	fmt.Println("## run (foreground, /bin/true, exit 0) (ms)")
	fmt.Println()
	fmt.Println("| runtime | median | p90 | n |")
	fmt.Println("|---|---:|---:|---:|")
	for _, rt := range rts {
		fmt.Printf("| %s | %s | %s | %d |\n", rt.name, cell(rt, rt.run, 0.5), cell(rt, rt.run, 0.9), len(rt.run))
	}
	fmt.Printf("\nmedian ratios: %s\n\n", ratios(func(r *runtime) []time.Duration { return r.run }))

	if len(baseUnshare) > 0 || len(baseExec) > 0 {
		fmt.Println("## baselines (ms)")
		fmt.Println()
		fmt.Println("| command | median | p90 | n |")
		fmt.Println("|---|---:|---:|---:|")
		fmt.Printf("| `unshare --fork --pid --mount --uts --ipc --net true` | %s | %s | %d |\n",
			ms(quantile(baseUnshare, 0.5)), ms(quantile(baseUnshare, 0.9)), len(baseUnshare))
		fmt.Printf("| fork+exec `/bin/true` | %s | %s | %d |\n",
			ms(quantile(baseExec, 0.5)), ms(quantile(baseExec, 0.9)), len(baseExec))
		fmt.Println()
	}
	for _, rt := range rts {
		if rt.fails > 0 {
			fmt.Fprintf(os.Stderr, "bench: %s: %d failed iterations; first: %s\n", rt.name, rt.fails, rt.firstErr)
		}
	}
}
