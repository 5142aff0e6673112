package main

import (
	"fmt"
	"os"
	"slices"

	"berth/test/bench/harness"
	"berth/test/bench/stats"
	"berth/test/engine"
)

// atLeast is num/den ("%.3f") and whether it is at least min: "0.983 (>= 0.95: met)".
func atLeast(num, den, min float64) string {
	if den == 0 || num == 0 {
		return "n/a"
	}
	verdict := "missed"
	if num/den >= min {
		verdict = "met"
	}
	return fmt.Sprintf("%.3f (>= %g: %s)", num/den, min, verdict)
}

// ahead is num/den ("%.2f") and whether it is above 1: "1.71 (> 1: met)".
func ahead(num, den float64) string {
	if den == 0 || num == 0 {
		return "n/a"
	}
	verdict := "missed"
	if num > den {
		verdict = "met"
	}
	return fmt.Sprintf("%.2f (> 1: %s)", num/den, verdict)
}

// report is the report's body, after its head (harness.RunEngines).
func report(engines []*eng, _ string, cg *engine.CgroupParent) {
	fmt.Printf("- each engine in a network namespace of its own (its \"host\", lo only), containers on its default bridge, cgroups under %s/<engine>; image %s: the busybox-static root filesystem of test/berthtest with /www/index.html (%d bytes) and %s, imported in each engine\n",
		cg.Path, image, indexSize, harness.ToolVersion(*flagIperf))
	fmt.Printf("- HTTP: GET /index.html from busybox httpd (`httpd -f -p 80 -h /www`: HTTP/1.0, a connection per request), %v per run from the engine's namespace with %s\n",
		*flagHTTPD, loaderDesc())
	fmt.Printf("- TCP: iperf3 client -> `iperf3 -s` in a container, one stream, %d s per run, Gbit/s received; container to container: `docker exec` of the client in a second container on the same bridge\n\n",
		tcpSeconds())

	table := func(samples map[string]map[string]*sample, rows [][2]string, format string) {
		tab := stats.NewTable("path", "berth", "berth min-max", "dockerd", "dockerd min-max", "berth/dockerd")
		cell := func(name, path string) (float64, string, string) {
			s := samples[name][path]
			if s == nil || len(s.vals) == 0 {
				return 0, "n/a", ""
			}
			return stats.MedianOf(s.vals), fmt.Sprintf(format, stats.MedianOf(s.vals)),
				fmt.Sprintf(format+"-"+format, slices.Min(s.vals), slices.Max(s.vals))
		}
		for _, r := range rows {
			bm, b, br := cell("berth", r[1])
			dm, d, dr := cell("dockerd", r[1])
			tab.Row(r[0], b, br, d, dr, stats.RatioOf(bm, dm))
		}
		pd := func(name string) string {
			return stats.RatioOf(stats.MedianOf(vals(samples, name, published)), stats.MedianOf(vals(samples, name, direct)))
		}
		tab.Row("published/direct", pd("berth"), "", pd("dockerd"), "", "")
		tab.Print(os.Stdout)
	}
	goals := func(what string, samples map[string]map[string]*sample) {
		bp, bd := stats.MedianOf(vals(samples, "berth", published)), stats.MedianOf(vals(samples, "berth", direct))
		dp, dd := stats.MedianOf(vals(samples, "dockerd", published)), stats.MedianOf(vals(samples, "dockerd", direct))
		fmt.Printf("per-round ratios (median over the rounds of the ratio within a round): berth published/direct = %s, dockerd published/direct = %s, berth/dockerd published = %s, berth/dockerd direct = %s\n\n",
			paired(samples, "berth", published, "berth", direct), paired(samples, "dockerd", published, "dockerd", direct),
			paired(samples, "berth", published, "dockerd", published), paired(samples, "berth", direct, "dockerd", direct))
		fmt.Printf("goal (%s): berth published/direct = %s; berth published/dockerd published = %s (dockerd published/direct = %s)\n\n",
			what, atLeast(bp, bd, 0.95), ahead(bp, dp), stats.RatioOf(dp, dd))
	}

	fmt.Printf("## HTTP requests/s (medians over %d rounds of %v)\n\n", *flagN, *flagHTTPD)
	table(httpSamples, [][2]string{
		{fmt.Sprintf("published: 127.0.0.1:%d from the host (dockerd: docker-proxy)", httpHostPort), published},
		{"direct: CONTAINER-IP:80 from the host (a twin container)", direct},
	}, "%.0f")
	goals("HTTP", httpSamples)
	for _, e := range engines {
		for _, p := range []string{published, direct} {
			if s := httpSamples[e.Name][p]; s != nil && s.errs > 0 {
				fmt.Printf("note: %s %s: %d failed requests in the measured rounds\n\n", e.Name, p, s.errs)
			}
			if s := httpSamples[e.Name][p]; s != nil && s.syn > 0 {
				fmt.Printf("note: %s %s: %d SYNs retransmitted in the measured rounds (a connection that waited 1 s or more each)\n\n", e.Name, p, s.syn)
			}
		}
	}

	fmt.Printf("## TCP throughput, iperf3 Gbit/s (medians over %d rounds of %d s)\n\n", *flagN, tcpSeconds())
	table(tcpSamples, [][2]string{
		{fmt.Sprintf("published: 127.0.0.1:%d from the host (dockerd: docker-proxy)", iperfHostPort), published},
		{fmt.Sprintf("direct: CONTAINER-IP:%d from the host", iperfPort), direct},
		{"container to container, same bridge", c2c},
	}, "%.2f")
	goals("TCP", tcpSamples)
}

// paired is the median over the rounds of a's value over b's in the same round ("%.2f"),
// n/a without a common round.
func paired(samples map[string]map[string]*sample, aName, aPath, bName, bPath string) string {
	a, b := samples[aName][aPath], samples[bName][bPath]
	if a == nil || b == nil {
		return "n/a"
	}
	var rs []float64
	for i, x := range a.round {
		if y, ok := b.round[i]; ok && y > 0 {
			rs = append(rs, x/y)
		}
	}
	if len(rs) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", stats.MedianOf(rs))
}

func vals(samples map[string]map[string]*sample, name, path string) []float64 {
	if s := samples[name][path]; s != nil {
		return s.vals
	}
	return nil
}
