package main

import (
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// quantile returns the nearest-rank q-quantile (0<q<=1); the median of an
// even count is the mean of the middle two.
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

func secs(ds []time.Duration, q float64) string {
	if len(ds) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", quantile(ds, q).Seconds())
}

func ratio(a, b []time.Duration) string {
	if len(a) == 0 || len(b) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(quantile(a, 0.5))/float64(quantile(b, 0.5)))
}

func rate(bytes int64, ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", mb(bytes)/quantile(ds, 0.5).Seconds())
}

func report(img *cachedImage, tools []tool, res map[string]*sample, ph *phaseReport) {
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("# berth image bench: N=%d (after %d warm-up), kernel %s, %d CPUs, %s\n\n",
		*flagN, *flagWarmup, unix.ByteSliceToString(uts.Release[:]), goruntime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	var sizes []string
	for _, l := range img.Layers {
		sizes = append(sizes, fmt.Sprintf("%.0f", mb(l.Size)))
	}
	fmt.Printf("- image: %s, %d layers, %.0f MB uncompressed (layers %s MB), docker-archive %.0f MB, built %s in %.0f s (%s)\n",
		img.Ref, len(img.Layers), mb(img.size()), strings.Join(sizes, " + "), mb(img.ArchiveSize),
		img.Built.Format("2006-01-02"), img.BuildSeconds, img.dir)
	fmt.Printf("- file system: %s\n", fsDesc)
	for _, t := range tools {
		ti := t.info()
		v := ti.version
		if ti.firstErr != "" {
			v += "; " + ti.firstErr
		}
		fmt.Printf("- %s: %s\n", ti.name, v)
	}
	fmt.Println()

	get := func(name string, load bool) []time.Duration {
		s := res[name]
		if s == nil {
			return nil
		}
		if load {
			return s.load
		}
		return s.save
	}
	size := img.size()

	fmt.Println("## load: the docker-archive into a fresh store (s)")
	fmt.Println()
	fmt.Println("| tool | median | p90 | MB/s | /berth | /tar -x | /tar -x + sync | n |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, t := range tools {
		ti := t.info()
		if !ti.hasLoad {
			continue
		}
		ds := get(ti.name, true)
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %d |\n", ti.name, secs(ds, 0.5), secs(ds, 0.9), rate(size, ds),
			ratio(ds, get("berth", true)), ratio(ds, get("tar -x", true)), ratio(ds, get("tar -x + sync", true)), len(ds))
	}
	fmt.Println()
	b := get("berth", true)
	fmt.Printf("goal (load): berth/tar -x = %s (<= 1.2: %s); berth/podman = %s, berth/dockerd = %s (ahead of both: %s)\n\n",
		ratio(b, get("tar -x", true)), goal(b, get("tar -x", true), 1.2),
		ratio(b, get("podman", true)), ratio(b, get("dockerd", true)),
		ahead(b, get("podman", true), get("dockerd", true)))

	fmt.Println("## save: the loaded image to a file on the same disk (s)")
	fmt.Println()
	fmt.Println("| tool | median | p90 | MB/s | /berth | /cp archive | output MB | n |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	outs := map[string]string{"berth": "berth-save.tar", "podman": "podman-save.tar", "dockerd": "docker-save.tar", "cp archive": "floor-save.tar"}
	for _, t := range tools {
		ti := t.info()
		if !ti.hasSave {
			continue
		}
		ds := get(ti.name, false)
		out := "n/a"
		for p, n := range savedSizes {
			if strings.HasSuffix(p, "/"+outs[ti.name]) {
				out = fmt.Sprintf("%.0f", mb(n))
			}
		}
		if ti.name == "cp archive" {
			out = fmt.Sprintf("%.0f", mb(img.ArchiveSize))
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %d |\n", ti.name, secs(ds, 0.5), secs(ds, 0.9), rate(size, ds),
			ratio(ds, get("berth", false)), ratio(ds, get("cp archive", false)), out, len(ds))
	}
	fmt.Println()
	b = get("berth", false)
	fmt.Printf("goal (save): berth/podman = %s, berth/dockerd = %s (ahead of both: %s)\n\n",
		ratio(b, get("podman", false)), ratio(b, get("dockerd", false)), ahead(b, get("podman", false), get("dockerd", false)))

	if ph != nil {
		ph.print(img)
	}
	for _, t := range tools {
		if ti := t.info(); ti.fails > 0 {
			fmt.Fprintf(os.Stderr, "images: %s: %d failed iterations; first: %s\n", ti.name, ti.fails, ti.firstErr)
		}
	}
}

func goal(a, b []time.Duration, max float64) string {
	if len(a) == 0 || len(b) == 0 {
		return "n/a"
	}
	if float64(quantile(a, 0.5))/float64(quantile(b, 0.5)) <= max {
		return "met"
	}
	return "missed"
}

func ahead(b []time.Duration, peers ...[]time.Duration) string {
	if len(b) == 0 {
		return "n/a"
	}
	for _, p := range peers {
		if len(p) == 0 {
			return "n/a"
		}
		if quantile(b, 0.5) >= quantile(p, 0.5) {
			return "no"
		}
	}
	return "yes"
}
