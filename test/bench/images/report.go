package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"berth/test/bench/stats"
)

func secs(ds []time.Duration, q float64) string {
	if len(ds) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", stats.Quantile(ds, q).Seconds())
}

func ratio(a, b []time.Duration) string { return stats.Ratio(a, b, "n/a") }

func rate(bytes int64, ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", mb(bytes)/stats.Median(ds).Seconds())
}

func report(img *cachedImage, tools []tool, res map[string]*sample, ph *phaseReport) {
	fmt.Printf("%s\n\n", stats.Title("image bench", *flagN, *flagWarmup))
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
	tab := stats.NewTable("tool", "median", "p90", "MB/s", "/berth", "/tar -x", "/tar -x + sync", "n")
	for _, t := range tools {
		ti := t.info()
		if !ti.hasLoad {
			continue
		}
		ds := get(ti.name, true)
		tab.Row(ti.name, secs(ds, 0.5), secs(ds, 0.9), rate(size, ds),
			ratio(ds, get("berth", true)), ratio(ds, get("tar -x", true)), ratio(ds, get("tar -x + sync", true)), len(ds))
	}
	tab.Print(os.Stdout)
	b := get("berth", true)
	fmt.Printf("goal (load): berth/tar -x = %s (<= 1.2: %s); berth/podman = %s, berth/dockerd = %s (ahead of both: %s)\n\n",
		ratio(b, get("tar -x", true)), goal(b, get("tar -x", true), 1.2),
		ratio(b, get("podman", true)), ratio(b, get("dockerd", true)),
		ahead(b, get("podman", true), get("dockerd", true)))

	fmt.Println("## save: the loaded image to a file on the same disk (s)")
	fmt.Println()
	tab = stats.NewTable("tool", "median", "p90", "MB/s", "/berth", "/cp archive", "output MB", "n")
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
		tab.Row(ti.name, secs(ds, 0.5), secs(ds, 0.9), rate(size, ds),
			ratio(ds, get("berth", false)), ratio(ds, get("cp archive", false)), out, len(ds))
	}
	tab.Print(os.Stdout)
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
	if float64(stats.Median(a))/float64(stats.Median(b)) <= max {
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
		if stats.Median(b) >= stats.Median(p) {
			return "no"
		}
	}
	return "yes"
}
