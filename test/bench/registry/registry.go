package main

// The registries: one per engine, in the engine's network namespace on registryAddr, started
// again with an empty storage directory before every iteration (unmeasured), so that every
// push uploads every blob. The bench starts each by its PID (nsenter execs it) and stops it
// by that PID.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"berth/test/engine"
)

// registryAddr is where both registries listen, each in its engine's namespace: a loopback
// registry that dockerd and berthd both treat as insecure (plain HTTP).
const registryAddr = "127.0.0.1:5000"

// registry is a registry process the bench started.
type registry struct {
	root   string // its storage directory
	cmd    *exec.Cmd
	exited chan struct{}
}

// freshRegistry stops the engine's registry, removes its storage and starts it again on an
// empty storage directory (root/<i>), then waits for it to answer GET /v2/.
func (e *eng) freshRegistry(ctx context.Context, i int) error {
	if n := e.stopRegistry(); n > 0 {
		return fmt.Errorf("the registry of the last iteration did not stop")
	}
	root := filepath.Join(e.Dir, "registry", strconv.Itoa(i))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	argv, err := e.regArgv(root, filepath.Join(e.Dir, "registry", "config.yml"))
	if err != nil {
		return err
	}
	logPath := filepath.Join(e.Dir, e.Name+"-registry.log")
	if !slices.Contains(e.Logs, logPath) {
		e.Logs = append(e.Logs, logPath)
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "--- iteration %d: %s\n", i, strings.Join(argv, " "))
	cmd := exec.Command("nsenter", append([]string{"--net=" + e.netns, "--"}, argv...)...)
	cmd.Env = engine.BaseEnv()
	cmd.Dir = e.Dir
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	r := &registry{root: root, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(r.exited) }()
	e.reg = r
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := e.hostCmd(ctx, "curl", "-sSf", "-o", "/dev/null", "--max-time", "2", "http://"+registryAddr+"/v2/").Run()
		if err == nil {
			return nil
		}
		select {
		case <-r.exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s exited at start: %s", filepath.Base(argv[0]), engine.Tail(string(b), 2000))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s does not answer GET http://%s/v2/ after 15 s: %v", filepath.Base(argv[0]), registryAddr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopRegistry stops the engine's registry, if one runs (SIGTERM to its PID, SIGKILL after
// 15 s: a leftover), and removes its storage; it returns the leftovers.
func (e *eng) stopRegistry() int {
	r := e.reg
	if r == nil {
		return 0
	}
	e.reg = nil
	n := 0
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(15 * time.Second):
		logf("LEFTOVER: %s: the registry (PID %d) did not exit 15 s after SIGTERM: killed it", e.Name, r.cmd.Process.Pid)
		r.cmd.Process.Kill()
		<-r.exited
		n++
	}
	if err := os.RemoveAll(r.root); err != nil {
		logf("LEFTOVER: %v", err)
		n++
	}
	return n
}

// manifest is what the bench reads of an image manifest in the registry.
type manifest struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		Size int64 `json:"size"`
	} `json:"config"`
	Layers []struct {
		MediaType string `json:"mediaType"`
		Size      int64  `json:"size"`
	} `json:"layers"`
}

// registryManifest reads the manifest of repo:tag from the engine's registry (from the engine's
// namespace) and returns it with the bytes of its config and layers: what the push uploaded
// into the empty registry.
func (e *eng) registryManifest(ctx context.Context, repo, tag string) (*manifest, int64, error) {
	url := fmt.Sprintf("http://%s/v2/%s/manifests/%s", registryAddr, repo, tag)
	out, err := e.hostCmd(ctx, "curl", "-sSf", "--max-time", "10",
		"-H", "Accept: application/vnd.docker.distribution.manifest.v2+json",
		"-H", "Accept: application/vnd.oci.image.manifest.v1+json", url).Output()
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %v", url, err)
	}
	var m manifest
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, 0, fmt.Errorf("GET %s: %v: %.200s", url, err, out)
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return &m, n, nil
}
