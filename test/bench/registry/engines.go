package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"berth/test/bench/harness"
	"berth/test/engine"
)

// eng is one engine under measurement with its registry, both in a network namespace of
// their own, on a file system of their own, driven through the docker CLI.
type eng struct {
	*harness.Engine
	netns string    // the namespace (a file in Dir) where the daemon and its registry run
	fs    *benchFS  // the file system mounted on Dir (-fs loop)
	reg   *registry // the registry running now, nil between two

	// regArgv is the registry's command line for a storage directory (root) and a
	// configuration file in Dir it may write (conf); regVersion says what it is.
	regArgv    func(root, conf string) ([]string, error)
	regVersion string
	// storeDirs are directories of the engine's store that hold the image's blobs or
	// layers: empty once the image is removed.
	storeDirs []string

	imageID string        // the loaded image's ID, which every pull must give back
	load    time.Duration // the docker load of prepare (unmeasured)

	push, pull []time.Duration
	pushed     []int64  // bytes of the blobs a measured push put in the registry
	mediaTypes []string // the layers' media types in the registry (its manifest)
	notes      []string // what went wrong without failing a measurement
}

// note records something odd once per kind (the report lists them).
func (e *eng) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(e.notes, msg) {
		e.notes = append(e.notes, msg)
		logf("%s: %s", e.Name, msg)
	}
}

// hostCmd is a command run in the engine's network namespace.
func (e *eng) hostCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + e.netns, "--", name}, args...)...)
	cmd.Env = engine.BaseEnv()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// prepare loads the image into the engine (`docker load`, once, unmeasured) and records its
// ID; the image must have every layer of the archive.
func prepare(ctx context.Context, e *eng, in *inputs) error {
	if err := e.checkGone(ctx, "before the image is loaded"); err != nil {
		return err
	}
	_, d, err := e.RunFor(ctx, *flagTimeout, "load", "--quiet", "-i", in.archive)
	if err != nil {
		return err
	}
	e.load = d
	if e.imageID, err = e.imageIDOf(ctx, in.ref); err != nil {
		return err
	}
	n, err := e.Out(ctx, "image", "inspect", "--format", "{{len .RootFS.Layers}}", in.ref)
	if err != nil {
		return err
	}
	if n != strconv.Itoa(in.layers) {
		return fmt.Errorf("loaded image %s has %s layers, the archive %d", in.ref, n, in.layers)
	}
	return nil
}

// imageIDOf is the ID of an image (its config digest).
func (e *eng) imageIDOf(ctx context.Context, name string) (string, error) {
	id, err := e.Out(ctx, "image", "inspect", "--format", "{{.Id}}", name)
	if err != nil {
		return "", err
	}
	return harness.NormID(id), nil
}

// checkGone checks that the engine has no image and that its store keeps no blob or layer.
func (e *eng) checkGone(ctx context.Context, when string) error {
	ids, err := e.ListIDs(ctx, "images")
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		return fmt.Errorf("%s: the engine has %d images: %.12s", when, len(ids), ids)
	}
	for _, dir := range e.storeDirs {
		ents, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		for _, ent := range ents {
			if ent.Name() != "l" { // overlay2's directory of short links
				return fmt.Errorf("%s: the engine still has %s", when, filepath.Join(dir, ent.Name()))
			}
		}
	}
	return nil
}

// Cleanup stops the registry, removes every container and image through the engine (when
// its daemon started), and ends it: processes under its directory or in its namespace are
// leftovers; then the namespace, its file system and its directory go.
func (e *eng) Cleanup() int {
	leftovers := e.stopRegistry()
	if e.Stop != nil {
		ctx := context.Background()
		if _, err := e.RemoveContainers(ctx); err == nil {
			for pass := 0; pass < 3; pass++ {
				ids, err := e.ListIDs(ctx, "images")
				if err != nil || len(ids) == 0 {
					break
				}
				e.Out(ctx, append([]string{"rmi", "--force"}, ids...)...)
			}
		}
	}
	return leftovers + e.Shutdown(e.removeNetNS)
}

// removeNetNS removes the engine's namespace (harness.Engine.RemoveNetNS); it returns the
// leftovers.
func (e *eng) removeNetNS() int {
	if e.netns == "" {
		return 0
	}
	return e.RemoveNetNS(e.netns)
}

// newEng makes the engine's directory (harness.NewEngine), its file system and its network
// namespace.
func newEng(name, dir, sock string) (*eng, error) {
	h, err := bench.NewEngine(name, dir, sock)
	if err != nil {
		return nil, err
	}
	e := &eng{Engine: h}
	e.Remove = func() int { return e.fs.unmount() + e.RemoveDir() }
	if e.fs, err = mountFS(dir); err != nil {
		return e, fmt.Errorf("file system: %w", err)
	}
	e.netns = filepath.Join(dir, "host.netns")
	if err := harness.MakeNetNS(e.netns); err != nil {
		e.netns = ""
		return e, fmt.Errorf("network namespace: %w", err)
	}
	return e, nil
}

// --- berthd and berth registry serve ---

// startBerth starts a private berthd in its own namespace (harness.Engine.StartBerthd, from
// a copy of -bin); its registry is `berth registry serve` from the same copy.
func startBerth(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	if _, err := exec.LookPath(*flagDocker); err != nil {
		return nil, err
	}
	e, err := newEng("berth", dir, filepath.Join(dir, "berth.sock"))
	if err != nil {
		return e, err
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return e, err
	}
	berth := filepath.Join(bin, "berth")
	if err := harness.CopyFile(filepath.Join(*flagBin, "berth"), berth); err != nil {
		return e, fmt.Errorf("%v (make build first)", err)
	}
	if err := e.StartBerthd(ctx, harness.BerthOptions{Bin: *flagBin, Docker: *flagDocker, CgroupParent: cgroupParent, NetNS: e.netns}); err != nil {
		return e, err
	}
	e.regArgv = func(root, _ string) ([]string, error) {
		return []string{berth, "registry", "serve", "--addr", registryAddr, "--root", root, "--gc-interval", "0"}, nil
	}
	e.regVersion = fmt.Sprintf("`berth registry serve` (%s)", filepath.Join(*flagBin, "berth"))
	data := filepath.Join(dir, "data", "image")
	e.storeDirs = []string{filepath.Join(data, "content", "blobs", "sha256"), filepath.Join(data, "snapshots", "layers")}
	return e, nil
}

// --- dockerd and docker-registry ---

// startDockerd starts a private dockerd in its own namespace, as test/engine.StartDockerd
// does (its own data root, exec root, socket, pid file, daemon.json with the key path, no
// bridge, no iptables, cgroupfs) with overlay2; its registry is Debian's docker-registry
// (the distribution project's registry 2.8) with filesystem storage.
func startDockerd(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	for _, b := range []string{*flagDockerd, *flagDocker, *flagRegistry, "containerd"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("%v (apt-get install -y docker.io docker-registry)", err)
		}
	}
	e, err := newEng("dockerd", dir, filepath.Join(dir, "docker.sock"))
	if err != nil {
		return e, err
	}
	v, err := e.StartDockerdIn(ctx, harness.NetNSDockerd{Dockerd: *flagDockerd, Docker: *flagDocker, CgroupParent: cgroupParent, NetNS: e.netns,
		Args: []string{"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false"}})
	if err != nil {
		return e, err
	}
	e.Version = v + ", overlay2"
	e.regArgv = func(root, conf string) ([]string, error) {
		c := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", root, registryAddr)
		if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
			return nil, err
		}
		return []string{*flagRegistry, "serve", conf}, nil
	}
	e.regVersion = harness.ToolVersion(*flagRegistry) + " (filesystem storage)"
	data := filepath.Join(dir, "data")
	e.storeDirs = []string{filepath.Join(data, "overlay2"), filepath.Join(data, "image", "overlay2", "layerdb", "sha256"),
		filepath.Join(data, "image", "overlay2", "imagedb", "content", "sha256")}
	return e, nil
}
