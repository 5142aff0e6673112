package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"berth/internal/network"
	"berth/test/bench/harness"
	"berth/test/engine"
)

// eng is one engine under measurement, in its own network namespace, driven through the
// docker CLI.
type eng struct {
	name    string // table column: berth, dockerd
	cli     string
	env     []string // the CLI's environment
	dir     string   // the engine's private directory: all its processes name a path in it
	netns   string   // its network namespace (a file in dir): "the host" of its containers
	version string
	stop    func() int // stops the daemon after the containers are gone; returns leftovers
	logs    []string   // the daemons' logs, kept (copied next to dir) with -keep
	pid     int        // the daemon's: its /proc/<pid>/net is the namespace's

	// The containers: busybox httpd with the published port, its twin without (for the
	// direct path), iperf3 -s, and an idle client for container to container; the addresses
	// on the engine's default bridge of the twin and of iperf3 -s.
	web, webDirect, iperf, client string
	webIP, iperfIP                string

	fails    int
	dropped  bool
	firstErr string
}

const maxFailures = 3

// check records a failure; it reports whether err is nil.
func (e *eng) check(err error, what string) bool {
	if err == nil {
		return true
	}
	if stopping.Load() {
		return false // killed by the interrupt: not the engine's failure
	}
	e.fails++
	msg := fmt.Sprintf("%s: %v", what, err)
	if e.firstErr == "" {
		e.firstErr = msg
	}
	logf("%s: %s", e.name, msg)
	if e.fails >= maxFailures && !e.dropped {
		logf("%s: %d failures, dropping it", e.name, e.fails)
		e.dropped = true
	}
	return false
}

// do runs the CLI with args and returns its standard output (trimmed); the error has its
// standard error.
func (e *eng) do(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cli, args...)
	cmd.Env, cmd.Dir = e.env, e.dir
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", filepath.Base(e.cli), strings.Join(args, " "), err,
			engine.Tail(strings.TrimSpace(errb.String()+" "+out.String()), 1500))
	}
	return strings.TrimSpace(out.String()), nil
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
func (e *eng) prepare(ctx context.Context, rootfs string) error {
	if _, err := e.do(ctx, "import", rootfs, image); err != nil {
		return err
	}
	var err error
	if e.web, err = e.do(ctx, "run", "-d", "--name", "bench-web", "-p", fmt.Sprintf("127.0.0.1:%d:80", httpHostPort),
		image, "httpd", "-f", "-p", "80", "-h", "/www"); err != nil {
		return err
	}
	if e.webDirect, err = e.do(ctx, "run", "-d", "--name", "bench-web-direct", image, "httpd", "-f", "-p", "80", "-h", "/www"); err != nil {
		return err
	}
	if e.iperf, err = e.do(ctx, "run", "-d", "--name", "bench-iperf", "-p", fmt.Sprintf("127.0.0.1:%d:%d", iperfHostPort, iperfPort),
		image, "iperf3", "-s", "-p", strconv.Itoa(iperfPort)); err != nil {
		return err
	}
	if e.client, err = e.do(ctx, "run", "-d", "--name", "bench-client", image, "sleep", "1000000"); err != nil {
		return err
	}
	for _, c := range []struct {
		id string
		ip *string
	}{{e.webDirect, &e.webIP}, {e.iperf, &e.iperfIP}} {
		ip, err := e.do(ctx, "inspect", "--format", "{{.NetworkSettings.IPAddress}}", c.id)
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

// removeAll removes every container and the image through the engine; it returns the
// number of containers there were.
func (e *eng) removeAll() int {
	ctx := context.Background()
	ids, err := e.do(ctx, "ps", "--all", "--quiet", "--no-trunc")
	if err != nil {
		logf("%s: %v", e.name, err)
		return 0
	}
	n := len(strings.Fields(ids))
	if n > 0 {
		if _, err := e.do(ctx, append([]string{"rm", "--force"}, strings.Fields(ids)...)...); err != nil {
			logf("%s: %v", e.name, err)
		}
	}
	if out, err := e.do(ctx, "images", "--quiet"); err == nil && out != "" {
		if _, err := e.do(ctx, "rmi", "--force", image); err != nil {
			logf("%s: %v", e.name, err)
		}
	}
	return n
}

// cleanup removes the engine's containers and image, stops it, and removes what is left of
// it: processes under its directory or in its namespace (leftovers), the namespace, its
// mounts and its directory.
func (e *eng) cleanup() int {
	leftovers := 0
	if e.stop != nil {
		e.removeAll()
		leftovers += e.stop()
	}
	for _, pid := range engine.AwaitProcessesGone(e.dir, 15*time.Second) {
		logf("LEFTOVER: %s: process %d: %s", e.name, pid, engine.Cmdline(pid))
		syscall.Kill(pid, syscall.SIGKILL)
		leftovers++
	}
	if e.netns != "" {
		// docker-proxy and the load generators name no path in dir: find them by namespace.
		for _, pid := range awaitNetNSEmpty(e.netns, 10*time.Second) {
			logf("LEFTOVER: %s: process %d in the engine's network namespace: %s", e.name, pid, engine.Cmdline(pid))
			syscall.Kill(pid, syscall.SIGKILL)
			leftovers++
		}
		if err := network.RemoveNetNS(e.netns); err != nil {
			logf("LEFTOVER: %v", err)
			leftovers++
		}
	}
	if *flagKeep {
		harness.KeepLogs(e.name, e.dir, e.logs, logf)
	}
	n := harness.UnmountUnder(e.dir, logf)
	if n > 0 {
		logf("LEFTOVER: %s: %d mounts under %s", e.name, n, e.dir)
	}
	leftovers += n
	if err := os.RemoveAll(e.dir); err != nil {
		logf("LEFTOVER: %v", err)
		leftovers++
	}
	return leftovers
}

// --- network namespaces ---

// makeNetNS makes a network namespace at path (a bind mount of the namespace, in this mount
// namespace) with lo up and nothing else, as test/berthtest makes berthd's.
func makeNetNS(path string) (err error) {
	if err := network.NewNetNS(path); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			network.RemoveNetNS(path)
		}
	}()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return err
	}
	// The load generator's side: wrk closes some connections before the server does, and
	// its TIME_WAIT sockets to CONTAINER-IP:80 (not loopback, where the default 2 reuses
	// them) would use up the ephemeral ports in a few rounds of the direct path.
	out, err := exec.Command("nsenter", "--net="+path, "--", "sh", "-c", "echo 1 >/proc/sys/net/ipv4/tcp_tw_reuse").CombinedOutput()
	if err != nil {
		return fmt.Errorf("net.ipv4.tcp_tw_reuse=1 in the namespace: %v: %s", err, out)
	}
	return nil
}

// synRetrans is TcpExt TCPSynRetrans of the engine's namespace: the SYNs its clients sent
// again (1 s after the first, then more), -1 when it cannot be read.
func (e *eng) synRetrans() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netstat", e.pid))
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

// processesInNetNS lists the processes whose network namespace is the one bound at path.
func processesInNetNS(path string) []int {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nil
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", ent.Name(), "ns", "net")); err == nil && l == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// awaitNetNSEmpty waits up to timeout for the namespace at path to hold no process and
// returns those still there.
func awaitNetNSEmpty(path string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := processesInNetNS(path)
		if len(left) == 0 || !time.Now().Before(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// daemon starts the engine's daemon, argv, in the engine's namespace (nsenter execs it: the
// PID is the daemon's), logging to logPath; it returns the stop function (SIGTERM, then
// SIGKILL after grace) and a channel closed when the daemon exits.
func (e *eng) daemon(argv []string, logPath string, grace time.Duration) (exited chan struct{}, err error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command("nsenter", append([]string{"--net=" + e.netns, "--"}, argv...)...)
	cmd.Env = engine.BaseEnv()
	cmd.Dir = e.dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own session, as berthtest starts berthd; SIGTERM if the bench dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited = make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e.pid = cmd.Process.Pid
	e.logs = append(e.logs, logPath)
	name := filepath.Base(argv[0])
	e.stop = func() int {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return 0
		case <-time.After(grace):
			logf("LEFTOVER: %s did not exit %v after SIGTERM: killed it", name, grace)
			cmd.Process.Kill()
			<-exited
			return 1
		}
	}
	return exited, nil
}

// waitReady runs `docker version --format format` until it answers, for up to timeout.
func (e *eng) waitReady(ctx context.Context, exited chan struct{}, logPath string, timeout time.Duration, format string) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		v, err := e.do(ctx, "version", "--format", format)
		if err == nil {
			return v, nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return "", fmt.Errorf("%s exited at start: %s", e.name, engine.Tail(string(b), 2000))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b, _ := os.ReadFile(logPath)
			return "", fmt.Errorf("%s not ready after %v: %v\n%s", e.name, timeout, err, engine.Tail(string(b), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newEng makes the engine's directory and namespace.
func newEng(name, dir, sock string) (*eng, error) {
	if len(sock) >= 108 {
		return nil, fmt.Errorf("socket path %s is %d bytes, more than a unix socket takes: use a shorter -workdir", sock, len(sock))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	e := &eng{
		name: name, cli: *flagDocker, dir: dir, netns: filepath.Join(dir, "host.netns"),
		env: engine.BaseEnv("DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Join(dir, "cli")),
	}
	if err := makeNetNS(e.netns); err != nil {
		e.netns = ""
		return e, fmt.Errorf("network namespace: %w", err)
	}
	return e, nil
}

// --- berthd ---

// startBerth starts a private berthd in its own namespace, the way test/berthtest does (its
// own data root, exec root, socket and daemon.json with the cgroup parent), from a copy of
// -bin, and waits for it to answer.
func startBerth(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	e, err := newEng("berth", dir, filepath.Join(dir, "berth.sock"))
	if err != nil {
		return e, err
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return e, err
	}
	for _, b := range []string{"berthd", "berth-shim", "berth-runtime", "berth-init"} {
		if err := harness.CopyFile(filepath.Join(*flagBin, b), filepath.Join(bin, b)); err != nil {
			return e, fmt.Errorf("%v (make build first)", err)
		}
	}
	conf := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("{\"cgroup-parent\": %q}\n", cgroupParent)), 0o644); err != nil {
		return e, err
	}
	logPath := filepath.Join(dir, "berthd.log")
	exited, err := e.daemon([]string{filepath.Join(bin, "berthd"), "-H", "unix://" + filepath.Join(dir, "berth.sock"),
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"), "--config-file", conf}, logPath, 30*time.Second)
	if err != nil {
		return e, err
	}
	v, err := e.waitReady(ctx, exited, logPath, 30*time.Second, "{{.Server.Version}} {{.Client.Version}}")
	if err != nil {
		return e, err
	}
	sv, cv, _ := strings.Cut(v, " ")
	e.version = fmt.Sprintf("berthd %s (%s), docker CLI %s; ports published in nftables (DNAT, no userland proxy)", sv, *flagBin, cv)
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
	sock := filepath.Join(dir, "docker.sock")
	e, err := newEng("dockerd", dir, sock)
	if err != nil {
		return e, err
	}
	conf := filepath.Join(dir, "daemon.json")
	// The identity key in dir (by default /etc/docker/key.json: other tests watch /etc).
	b, _ := json.Marshal(map[string]string{"deprecated-key-path": filepath.Join(dir, "key.json"), "bip": *flagBip})
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		return e, err
	}
	logPath := filepath.Join(dir, "dockerd.log")
	exited, err := e.daemon([]string{*flagDockerd,
		"--config-file", conf,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--host", "unix://" + sock,
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		"--storage-driver", "overlay2",
		"--cgroup-parent", cgroupParent,
		"--iptables=true", "--userland-proxy=true",
	}, logPath, 40*time.Second)
	if err != nil {
		return e, err
	}
	v, err := e.waitReady(ctx, exited, logPath, 60*time.Second, "dockerd {{.Server.Version}} (API {{.Server.APIVersion}}), docker CLI {{.Client.Version}}")
	if err != nil {
		return e, err
	}
	proxy, _ := exec.LookPath("docker-proxy")
	e.version = fmt.Sprintf("%s, %s, %s; bridge docker0 %s, %s, userland proxy on (%s)", v,
		firstLine(toolVersion("containerd", "--version")), firstLine(toolVersion("runc", "--version")),
		*flagBip, firstLine(toolVersion("iptables", "--version")), proxy)
	return e, nil
}

func toolVersion(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return name + ": " + strings.TrimSpace(string(ee.Stderr))
		}
		return name + ": " + err.Error()
	}
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
