package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/bench/harness"
	"berth/test/engine"
)

// repo is the repository both engines push to and pull from, each in its own registry.
const repo = "bench/img"

// measure runs -warmup + -n iterations. An iteration: every engine's registry is started
// again on an empty storage directory; then every engine pushes (`docker tag IMAGE
// 127.0.0.1:5000/bench/img:N`, then the timed `docker push`), then every engine pulls
// (every tag of the image removed and its blobs and layers checked to be gone, then the
// timed `docker pull`, then the image tagged back), each phase in an order that rotates per
// iteration. sync(2) runs before every timed command, untimed.
func measure(ctx context.Context, engines []*eng, in *inputs) {
	in.unlock() // every engine has loaded the image
	total := *flagWarmup + *flagN
	for i := 0; i < total && !bench.Stopping(); i++ {
		measured := i >= *flagWarmup
		order := harness.Rotated(engines, i)
		tag := fmt.Sprint(i + 1)
		for _, e := range order {
			if !e.Dropped && !bench.Stopping() {
				e.Check(e.freshRegistry(ctx, i+1), "start the registry")
			}
		}
		pushed := map[*eng]bool{}
		for _, e := range order {
			if e.Dropped || bench.Stopping() || e.reg == nil {
				continue
			}
			d, bytes, ok := e.timedPush(ctx, in, tag)
			if ok {
				pushed[e] = true
				if measured {
					e.push = append(e.push, d)
					e.pushed = append(e.pushed, bytes)
				}
			}
		}
		for _, e := range order {
			if e.Dropped || bench.Stopping() || !pushed[e] {
				continue
			}
			d, ok := e.timedPull(ctx, in, tag)
			if ok && measured {
				e.pull = append(e.pull, d)
			}
		}
		for _, e := range order {
			if !e.Dropped && !bench.Stopping() {
				e.Check(e.restore(ctx, in, tag), "restore the image")
			}
		}
		if !bench.Stopping() {
			logf("iteration %d/%d%s", i+1, total, map[bool]string{true: "", false: " (warm-up)"}[measured])
		}
	}
}

// remote is the image's name in the engine's registry for an iteration's tag.
func remote(tag string) string { return registryAddr + "/" + repo + ":" + tag }

// timedPush tags the image for the registry and pushes it into the empty registry; it
// returns how long the push took and the bytes it put into the registry. Every layer must
// have been uploaded (the CLI's "Pushed" lines), and the registry's manifest must list them.
func (e *eng) timedPush(ctx context.Context, in *inputs, tag string) (time.Duration, int64, bool) {
	ref := remote(tag)
	if _, err := e.Out(ctx, "tag", in.ref, ref); !e.Check(err, "tag") {
		return 0, 0, false
	}
	unix.Sync()
	out, d, err := e.RunFor(ctx, *flagTimeout, "push", ref)
	if *flagVerbose {
		logf("%s: push %s (%.2f s):\n%s", e.Name, ref, d.Seconds(), out)
	}
	if !e.Check(err, "push") {
		return d, 0, false
	}
	if err := checkProgress(out, in.layers, "Pushed", "already exists", "Mounted from"); !e.Check(err, "push "+ref) {
		return d, 0, false
	}
	m, bytes, err := e.registryManifest(ctx, repo, tag)
	if !e.Check(err, "push: the manifest in the registry") {
		return d, 0, false
	}
	if len(m.Layers) != in.layers {
		e.Check(fmt.Errorf("the manifest has %d layers, the image %d", len(m.Layers), in.layers), "push")
		return d, 0, false
	}
	for _, l := range m.Layers {
		if !slices.Contains(e.mediaTypes, l.MediaType) {
			e.mediaTypes = append(e.mediaTypes, l.MediaType)
		}
	}
	return d, bytes, true
}

// timedPull removes every tag of the image (it must then be gone, with its blobs and
// layers) and pulls it from the registry; it returns how long the pull took. Every layer must
// have been downloaded (the CLI's "Pull complete" lines), and the image must be the one
// loaded (its ID).
func (e *eng) timedPull(ctx context.Context, in *inputs, tag string) (time.Duration, bool) {
	ref := remote(tag)
	if _, err := e.Out(ctx, "rmi", ref, in.ref); !e.Check(err, "rmi before the pull") {
		return 0, false
	}
	if !e.Check(e.checkGone(ctx, "after rmi"), "pull") {
		return 0, false
	}
	unix.Sync()
	out, d, err := e.RunFor(ctx, *flagTimeout, "pull", ref)
	if *flagVerbose {
		logf("%s: pull %s (%.2f s):\n%s", e.Name, ref, d.Seconds(), out)
	}
	if !e.Check(err, "pull") {
		return d, false
	}
	if err := checkProgress(out, in.layers, "Pull complete", "Already exists"); !e.Check(err, "pull "+ref) {
		return d, false
	}
	id, err := e.imageIDOf(ctx, ref)
	if !e.Check(err, "pull: the image") {
		return d, false
	}
	if id != e.imageID {
		e.Check(fmt.Errorf("pulled image %.12s, loaded %.12s", id, e.imageID), "pull")
		return d, false
	}
	return d, true
}

// checkProgress checks a push's or pull's output: one line saying done per layer ("<id>:
// Pushed", "<id>: Pull complete"), none saying a layer was skipped.
func checkProgress(out string, layers int, done string, skipped ...string) error {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		for _, s := range skipped {
			if strings.Contains(l, s) {
				return fmt.Errorf("a layer was not transferred: %q", l)
			}
		}
		if strings.HasSuffix(l, ": "+done) {
			n++
		}
	}
	if n != layers {
		return fmt.Errorf("%d %q lines for %d layers in the output:\n%s", n, done, layers, engine.Tail(out, 2000))
	}
	return nil
}

// restore brings the engine back to its state before the iteration, untimed: the image
// under its name only. After a pull it is tagged back and the registry's tag removed; when
// the image went missing (a failed pull) it is loaded again.
func (e *eng) restore(ctx context.Context, in *inputs, tag string) error {
	ref := remote(tag)
	if _, err := e.imageIDOf(ctx, ref); err == nil {
		if _, err := e.Out(ctx, "tag", ref, in.ref); err != nil {
			return err
		}
		if _, err := e.Out(ctx, "rmi", ref); err != nil {
			return err
		}
	}
	if id, err := e.imageIDOf(ctx, in.ref); err == nil && id == e.imageID {
		return nil
	}
	e.note("the image was missing after an iteration: loaded again")
	e.Out(ctx, "rmi", "--force", in.ref)
	if _, _, err := e.RunFor(ctx, *flagTimeout, "load", "--quiet", "-i", in.archive); err != nil {
		return err
	}
	id, err := e.imageIDOf(ctx, in.ref)
	if err == nil && id != e.imageID {
		err = fmt.Errorf("loaded image %.12s, want %.12s", id, e.imageID)
	}
	return err
}
