package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"berth/test/bench/harness"
)

// eng is one engine under measurement, driven through its command-line tool.
type eng struct {
	*harness.Engine
	build   []string // flags of every `build` (before --no-cache, -t and the context)
	runArgs []string // flags of `run` before the image

	// bases are the IDs of the imported base images, which the resets between rounds keep.
	bases []string

	notes []string // what went wrong without failing a build (left images, cache misses)

	full, rebuild []time.Duration
}

// note records something odd once per kind (the report lists them).
func (e *eng) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(e.notes, msg) {
		e.notes = append(e.notes, msg)
		logf("%s: %s", e.Name, msg)
	}
}

// prepare imports the base images and records their IDs.
func prepare(ctx context.Context, e *eng, in *inputs) error {
	if _, err := e.Out(ctx, "import", "--change", `CMD ["sh"]`, in.toolchainTar, toolchainImage); err != nil {
		return err
	}
	if _, err := e.Out(ctx, "import", "--change", `CMD ["sh"]`, in.busyboxTar, busyboxImage); err != nil {
		return err
	}
	for _, img := range []string{toolchainImage, busyboxImage} {
		id, err := e.imageID(ctx, img)
		if err != nil {
			return err
		}
		e.bases = append(e.bases, id)
	}
	return nil
}

// imageID is the ID of an image (its config digest).
func (e *eng) imageID(ctx context.Context, name string) (string, error) {
	id, err := e.Out(ctx, "image", "inspect", "--format", "{{.Id}}", name)
	if err != nil {
		return "", err
	}
	return harness.NormID(id), nil
}

// buildCmd is `build <build flags> [--no-cache] -t appImage CONTEXT`.
func (e *eng) buildCmd(in *inputs, noCache bool) []string {
	args := append([]string{"build"}, e.build...)
	if noCache {
		args = append(args, "--no-cache")
	}
	return append(args, "-t", appImage, in.context)
}

// reset brings the engine back to its state after prepare, untimed between rounds: no
// container, no image but the bases (the built image, the stage-1 image, the intermediate
// images of the cache), no build cache. What a build left (a container) is noted.
func (e *eng) reset(ctx context.Context) error {
	if ids, err := e.ListIDs(ctx, "ps"); err != nil {
		return err
	} else if len(ids) > 0 {
		e.note("%d containers left after a round's builds (removed)", len(ids))
		if _, err := e.Out(ctx, e.RmArgs(ids...)...); err != nil {
			return err
		}
	}
	if _, err := e.Out(ctx, "rmi", "--force", appImage); err != nil && !strings.Contains(strings.ToLower(err.Error()), "no such image") &&
		!strings.Contains(err.Error(), "image not known") {
		return err
	}
	if _, err := e.Out(ctx, "image", "prune", "--force"); err != nil {
		return err
	}
	if e.Name != "podman" {
		// The engine's build cache besides its images, if it keeps one (berthd); dockerd's
		// classic builder has none (this prunes its BuildKit cache, empty).
		if _, err := e.Out(ctx, "builder", "prune", "--force"); err != nil {
			e.note("builder prune: %v", err)
		}
	}
	// What prune left (intermediate images with children): remove the leaves, repeatedly.
	for pass := 0; ; pass++ {
		ids, err := e.ListIDs(ctx, "images")
		if err != nil {
			return err
		}
		var extra []string
		for _, id := range ids {
			if !slices.Contains(e.bases, id) {
				extra = append(extra, id)
			}
		}
		if len(extra) == 0 {
			break
		}
		if pass == 5 {
			return fmt.Errorf("%d images left after removing the build's images: %.12s", len(extra), extra)
		}
		if pass == 0 {
			e.note("%d images left after rmi of %s and image prune (removed by ID)", len(extra), appImage)
		}
		for _, id := range extra {
			e.Out(ctx, "rmi", "--force", id)
		}
	}
	for _, img := range []string{toolchainImage, busyboxImage} {
		if _, err := e.imageID(ctx, img); err != nil {
			return fmt.Errorf("base image gone: %w", err)
		}
	}
	return nil
}

// Cleanup removes every container and image through the engine, and ends it.
func (e *eng) Cleanup() int {
	ctx := context.Background()
	n, err := e.RemoveContainers(ctx)
	if n > 0 {
		logf("%s: removed %d containers", e.Name, n)
	}
	if err == nil {
		e.Out(ctx, "rmi", "--force", appImage)
		e.Out(ctx, "image", "prune", "--force")
		for pass := 0; pass < 5; pass++ {
			imgs, err := e.ListIDs(ctx, "images")
			if err != nil || len(imgs) == 0 {
				break
			}
			for _, id := range imgs {
				e.Out(ctx, "rmi", "--force", id)
			}
		}
	}
	return e.Shutdown(nil)
}

// dockerBuild are the `build` flags of berthd and dockerd: no network in RUN steps (the
// classic builder's intermediate containers are removed, its default).
var dockerBuild = []string{"--network", "none"}

// startBerth starts a private berthd (harness.StartBerth: from a copy of -bin, in a network
// namespace of its own) for the docker CLI with DOCKER_BUILDKIT=0.
func startBerth(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	h, err := bench.StartBerth(ctx, dir, harness.BerthOptions{
		Bin: *flagBin, Docker: *flagDocker, CgroupParent: cgroupParent, Debug: *flagDebug, Env: []string{"DOCKER_BUILDKIT=0"},
	})
	if h == nil {
		return nil, err
	}
	if err == nil {
		h.Version += " with DOCKER_BUILDKIT=0 (POST /build)"
	}
	return &eng{Engine: h, build: dockerBuild, runArgs: []string{"--network", "none"}}, err
}

// startDockerd starts a private dockerd (harness.StartDockerd: no bridge, no iptables,
// overlay2) for the docker CLI with DOCKER_BUILDKIT=0: the classic builder.
func startDockerd(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	h, err := bench.StartDockerd(ctx, dir, harness.DockerdOptions{
		Dockerd: *flagDockerd, Docker: *flagDocker, CgroupParent: cgroupParent,
		Env: []string{"DOCKER_BUILDKIT=0"}, Note: " with DOCKER_BUILDKIT=0 (the classic builder), overlay2",
	})
	if h == nil {
		return nil, err
	}
	return &eng{Engine: h, build: dockerBuild, runArgs: []string{"--network", "none"}}, err
}

// newPodman sets up a private podman (harness.NewPodman) with -podman-runtime, whose builds
// have the containers' rlimits too.
func newPodman(_ context.Context, dir, cgroupParent string) (*eng, error) {
	h, err := bench.NewPodman(dir, *flagPodman, *flagRuntime)
	if h == nil {
		return nil, err
	}
	h.Version += " (buildah inside), `build --layers --isolation oci`, overlay, " + harness.ToolVersion(*flagRuntime)
	// buildah takes --cgroup-parent as the cgroup of its RUN containers itself (runc removes it
	// after each): not the run's parent, where podman run leaves a conmon cgroup, a child that
	// makes runc's write of devices.deny fail (EINVAL).
	build := []string{"--layers", "--network", "none", "--pull=never", "--isolation", "oci", "--cgroup-parent", cgroupParent + "-build"}
	for _, u := range harness.PodmanUlimits {
		build = append(build, "--ulimit", u)
	}
	return &eng{Engine: h, build: build, runArgs: []string{"--network", "none", "--cgroup-parent", cgroupParent}}, err
}
