package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"berth/test/bench/harness"
)

// measure runs -warmup + -n rounds. A round: the full build (`build --no-cache`) of every
// engine, then the rebuild (the same build, every step a cache hit) of every engine, each
// phase in an order that rotates per round; then every engine is reset (reset: untimed).
// The first full build of each engine is checked by running its image once.
func measure(ctx context.Context, engines []*eng, in *inputs) {
	total := *flagWarmup + *flagN
	checked := map[*eng]bool{}
	for i := 0; i < total && !bench.Stopping(); i++ {
		measured := i >= *flagWarmup
		order := harness.Rotated(engines, i)
		fullID := map[*eng]string{}
		for _, e := range order {
			if e.Dropped || bench.Stopping() {
				continue
			}
			out, id, d, ok := e.timedBuild(ctx, in, "full build")
			if !ok {
				continue
			}
			fullID[e] = id
			if measured {
				e.full = append(e.full, d)
			}
			if hits := cacheHits(out); hits > 0 {
				e.note("full build (--no-cache): %d steps said they used the cache", hits)
			}
			if !checked[e] {
				checked[e] = true
				e.Check(e.checkImage(ctx, in), "run the built image")
			}
		}
		for _, e := range order {
			if e.Dropped || bench.Stopping() || fullID[e] == "" {
				continue
			}
			_, id, d, ok := e.timedBuild(ctx, in, "rebuild")
			if !ok {
				continue
			}
			if id != fullID[e] {
				// A step ran again: not the all-cache-hits rebuild this phase measures.
				e.Check(fmt.Errorf("image %.12s, not the full build's %.12s: a step missed the cache", id, fullID[e]), "rebuild")
				continue
			}
			if measured {
				e.rebuild = append(e.rebuild, d)
			}
		}
		for _, e := range order {
			if !e.Dropped && !bench.Stopping() {
				e.Check(e.reset(ctx), "reset after the round")
			}
		}
		logf("round %d/%d%s", i+1, total, map[bool]string{true: "", false: " (warm-up)"}[measured])
	}
}

// timedBuild runs the build of phase what ("full build": with --no-cache, or "rebuild") and
// returns its output (printed with -v), the built image's ID and how long the build took; a
// failure is recorded (ok false).
func (e *eng) timedBuild(ctx context.Context, in *inputs, what string) (out, id string, d time.Duration, ok bool) {
	out, d, err := e.RunFor(ctx, *flagTimeout, e.buildCmd(in, what == "full build")...)
	if *flagVerbose {
		logf("%s: %s (%.2f s):\n%s", e.Name, what, d.Seconds(), out)
	}
	if !e.Check(err, what) {
		return out, "", d, false
	}
	id, err = e.imageID(ctx, appImage)
	return out, id, d, e.Check(err, what+": the image")
}

// checkImage runs the built image once (`run --rm`): it must print the program's output,
// and have the Dockerfile's metadata.
func (e *eng) checkImage(ctx context.Context, in *inputs) error {
	out, err := e.Out(ctx, append(append([]string{"run", "--rm"}, e.runArgs...), appImage)...)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(out, in.want) {
		return fmt.Errorf("run --rm %s: output %q, want it to start with %q", appImage, out, in.want)
	}
	v, err := e.Out(ctx, append(append([]string{"run", "--rm"}, e.runArgs...), appImage, "cat", "VERSION")...)
	if err != nil {
		return err
	}
	if v != "bench-app 1.0" {
		return fmt.Errorf("run --rm %s cat VERSION (in the WORKDIR): %q, want \"bench-app 1.0\"", appImage, v)
	}
	meta, err := e.Out(ctx, "image", "inspect", "--format", `{{.Config.WorkingDir}} {{index .Config.Labels "bench.suite"}} {{.Config.Cmd}} {{.Config.Env}}`, appImage)
	if err != nil {
		return err
	}
	for _, want := range []string{"/app build [/app/bench-app]", "APP_HOME=/app", "APP_MODE=bench"} {
		if !strings.Contains(meta, want) {
			return fmt.Errorf("image %s: config %q has no %q", appImage, meta, want)
		}
	}
	return nil
}

// cacheHits counts the steps of a build's output that say they used the cache (the classic
// builder's " ---> Using cache", podman's "--> Using cache <id>").
func cacheHits(out string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "Using cache") {
			n++
		}
	}
	return n
}

// durations for the report.
func (e *eng) phase(name string) []time.Duration {
	if name == "full" {
		return e.full
	}
	return e.rebuild
}
