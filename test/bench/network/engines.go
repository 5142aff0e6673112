package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"berth/internal/network"
	"berth/test/bench/harness"
	"berth/test/engine"
)

// eng is one engine under measurement, in its own network namespace, driven through the
// docker CLI.
type eng struct {
	*harness.Engine
	netns string // its network namespace (a file in Dir): "the host" of its containers

	// The containers: busybox httpd with the published port, its twin without (for the
	// direct path), iperf3 -s, and an idle client for container to container; the addresses
	// on the engine's default bridge of the twin and of iperf3 -s.
	web, webDirect, iperf, client string
	webIP, iperfIP                string
}

// hostCmd is a command run in the engine's network namespace, as a process of its "host".
func (e *eng) hostCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + e.netns, "--", name}, args...)...)
	cmd.Env = engine.BaseEnv()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// prepare imports the bench's root filesystem as its image and starts the containers: the
// web server and the iperf3 server with their published ports, the web server's twin without
// one, and the idle client; then waits for the web servers to answer.
//
// The direct path goes to the twin, not to the published container: the masquerade of a
// connection from 127.0.0.1 keeps its source port, so a published and a direct connection
// reach the server as the same 4-tuple (BRIDGE-IP:port -> CONTAINER-IP:80), but with TCP
// timestamps of different offsets (the kernel derives them from the addresses the client
// used: 127.0.0.1 vs BRIDGE-IP). With a connection per request the server's TIME_WAIT
// sockets then reject (PAWS) the SYNs of the other path, which wait 1 s to retransmit:
// both paths collapse after a few rounds, an artefact of measuring them on one server.
func prepare(ctx context.Context, e *eng, rootfs string) error {
	if _, err := e.Out(ctx, "import", rootfs, image); err != nil {
		return err
	}
	var err error
	if e.web, err = e.Out(ctx, "run", "-d", "--name", "bench-web", "-p", fmt.Sprintf("127.0.0.1:%d:80", httpHostPort),
		image, "httpd", "-f", "-p", "80", "-h", "/www"); err != nil {
		return err
	}
	if e.webDirect, err = e.Out(ctx, "run", "-d", "--name", "bench-web-direct", image, "httpd", "-f", "-p", "80", "-h", "/www"); err != nil {
		return err
	}
	if e.iperf, err = e.Out(ctx, "run", "-d", "--name", "bench-iperf", "-p", fmt.Sprintf("127.0.0.1:%d:%d", iperfHostPort, iperfPort),
		image, "iperf3", "-s", "-p", strconv.Itoa(iperfPort)); err != nil {
		return err
	}
	if e.client, err = e.Out(ctx, "run", "-d", "--name", "bench-client", image, "sleep", "1000000"); err != nil {
		return err
	}
	for _, c := range []struct {
		id string
		ip *string
	}{{e.webDirect, &e.webIP}, {e.iperf, &e.iperfIP}} {
		ip, err := e.Out(ctx, "inspect", "--format", "{{.NetworkSettings.IPAddress}}", c.id)
		if err != nil {
			return err
		}
		if ip == "" {
			return fmt.Errorf("container %.12s has no address on the default bridge", c.id)
		}
		*c.ip = ip
	}
	for _, url := range []string{e.publishedURL(), e.directURL()} {
		if err := e.probeHTTP(ctx, url); err != nil {
			return err
		}
	}
	return nil
}

func (e *eng) publishedURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d/index.html", httpHostPort)
}

func (e *eng) directURL() string { return fmt.Sprintf("http://%s:80/index.html", e.webIP) }

// probeHTTP waits up to 15 s for one successful GET of url from the engine's namespace.
func (e *eng) probeHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := goLoad(ctx, e, url, time.Second, 1, 1)
		if err == nil && r.Requests > 0 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%d errors", r.Errors)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("GET %s from the engine's namespace: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Cleanup removes the engine's containers and image through it (when its daemon started),
// and ends it: processes under its directory or in its namespace are leftovers; then the
// namespace, its mounts and its directory go.
func (e *eng) Cleanup() int {
	if e.Stop != nil {
		e.RemoveAll(image)
	}
	return e.Shutdown(e.removeNetNS)
}

// removeNetNS removes the engine's namespace (harness.Engine.RemoveNetNS); it returns the
// leftovers.
func (e *eng) removeNetNS() int {
	if e.netns == "" {
		return 0
	}
	return e.RemoveNetNS(e.netns)
}

// --- network namespaces ---

// makeNetNS makes the engine's namespace (harness.MakeNetNS) and lets the load generator
// reuse its TIME_WAIT sockets: wrk closes some connections before the server does, and its
// TIME_WAIT sockets to CONTAINER-IP:80 (not loopback, where the default 2 reuses them) would
// use up the ephemeral ports in a few rounds of the direct path.
func makeNetNS(path string) error {
	if err := harness.MakeNetNS(path); err != nil {
		return err
	}
	out, err := exec.Command("nsenter", "--net="+path, "--", "sh", "-c", "echo 1 >/proc/sys/net/ipv4/tcp_tw_reuse").CombinedOutput()
	if err != nil {
		network.RemoveNetNS(path)
		return fmt.Errorf("net.ipv4.tcp_tw_reuse=1 in the namespace: %v: %s", err, out)
	}
	return nil
}

// synRetrans is TcpExt TCPSynRetrans of the engine's namespace: the SYNs its clients sent
// again (1 s after the first, then more), -1 when it cannot be read.
func (e *eng) synRetrans() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netstat", e.PID))
	if err != nil {
		return -1
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "TCPSynRetrans" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	return -1
}

// newEng makes the engine's directory (harness.NewEngine) and namespace.
func newEng(name, dir, sock string) (*eng, error) {
	h, err := bench.NewEngine(name, dir, sock)
	if err != nil {
		return nil, err
	}
	e := &eng{Engine: h, netns: filepath.Join(dir, "host.netns")}
	if err := makeNetNS(e.netns); err != nil {
		e.netns = ""
		return e, fmt.Errorf("network namespace: %w", err)
	}
	return e, nil
}

// --- berthd ---

// startBerth starts a private berthd in its own namespace (harness.Engine.StartBerthd, from
// a copy of -bin).
func startBerth(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	e, err := newEng("berth", dir, filepath.Join(dir, "berth.sock"))
	if err != nil {
		return e, err
	}
	if err := e.StartBerthd(ctx, harness.BerthOptions{Bin: *flagBin, Docker: *flagDocker, CgroupParent: cgroupParent, NetNS: e.netns}); err != nil {
		return e, err
	}
	e.Version += "; ports published in nftables (DNAT, no userland proxy)"
	return e, nil
}

// --- dockerd ---

// startDockerd starts a private dockerd in its own namespace, as test/engine.StartDockerd
// does (its own data root, exec root, socket, pid file, daemon.json with the key path, the
// cgroupfs driver, overlay2, the cgroup parent) but with its default networking: a bridge
// (docker0 at -bip), iptables and the userland proxy; and waits for it.
func startDockerd(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	for _, b := range []string{*flagDockerd, *flagDocker, "containerd", "containerd-shim-runc-v2", "docker-proxy", "iptables"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("%v (apt-get install -y docker.io)", err)
		}
	}
	e, err := newEng("dockerd", dir, filepath.Join(dir, "docker.sock"))
	if err != nil {
		return e, err
	}
	v, err := e.StartDockerdIn(ctx, harness.NetNSDockerd{Dockerd: *flagDockerd, Docker: *flagDocker, CgroupParent: cgroupParent, NetNS: e.netns,
		Config: []string{"bip", *flagBip},
		Args:   []string{"--iptables=true", "--userland-proxy=true"}})
	if err != nil {
		return e, err
	}
	proxy, _ := exec.LookPath("docker-proxy")
	e.Version = fmt.Sprintf("%s, %s, %s; bridge docker0 %s, %s, userland proxy on (%s)", v,
		harness.ToolVersion("containerd"), harness.ToolVersion("runc"), *flagBip, harness.ToolVersion("iptables"), proxy)
	return e, nil
}
