package daemon_test

import (
	"strings"
	"testing"

	"berth/test/berthtest"
)

// TestSecurityAndLimits: --init, limits that bite (memory with OOMKilled, pids),
// capabilities (--cap-drop ALL, --cap-add, --privileged), --read-only with --tmpfs,
// --security-opt, -u/-w, --hostname/--add-host/--dns, --ulimit, --shm-size, --sysctl,
// --stop-signal/--stop-timeout and the network modes there are.
func TestSecurityAndLimits(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})

	t.Run("Init", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("init")
		out := c.must("run", "--rm", "--init", image, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
		lines := fields(out)
		if len(lines) != 2 || !strings.Contains(lines[0], "init") || lines[1] == "1" {
			t.Errorf("--init: PID 1 is %q and the command's pid %v, want an init as PID 1", lines[0], lines[1:])
		}
		// It reaps orphans: a grandchild whose parent exits is reparented to PID 1 and reaped.
		out = c.must("run", "--rm", "--init", image, "sh", "-c", "sh -c 'sleep 0.1 & exit 0'; sleep 0.5; ps -o stat,comm | grep -c '^Z' || true")
		want(t, "zombies under --init", out, "0")
		// Its exit code is the command's; it forwards signals (stop's SIGTERM ends a sleep, 143).
		_, _, code := c.run("run", "--rm", "--init", image, "sh", "-c", "exit 3")
		want(t, "--init's exit code", code, 3)
		c.must("run", "-d", "--init", "--name", "init", image, "sleep", "100000")
		// Once the command runs, the init forwards signals. A SIGTERM in the first
		// milliseconds, before the init's Go runtime has a handler, is dropped by the kernel
		// (a pid namespace's init with the default action), as with any init: not what this
		// checks.
		c.waitFor("the sleep under --init", func() bool {
			out, _ := c.quiet("top", "init")
			for _, l := range strings.Split(out, "\n") {
				if strings.HasSuffix(strings.TrimSpace(l), "sleep 100000") && !strings.Contains(l, "init") {
					return true
				}
			}
			return false
		})
		c.must("stop", "-t", "60", "init")
		want(t, "a sleep under --init stopped by SIGTERM", c.inspect("init", "{{.State.ExitCode}}"), "143")
	})

	t.Run("MemoryLimit", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("oom")
		since := now()
		_, _, code := c.run("run", "--name", "oom", "--memory", "8m", "--memory-swap", "8m", image, "sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done")
		want(t, "exit code of the OOM-killed container", code, 137)
		want(t, "OOMKilled and ExitCode", c.inspect("oom", "{{.State.OOMKilled}} {{.State.ExitCode}}"), "true 137")
		got := fields(c.must("events", "--since", since, "--until", now(), "--filter", "container=oom", "--filter", "event=oom", "--format", "{{.Action}}"))
		want(t, "oom events", strings.Join(got, ","), "oom")
		// Within the limit nothing happens.
		c.rmOnCleanup("nooom")
		c.must("run", "--name", "nooom", "--memory", "64m", image, "sh", "-c", "head -c 1000000 /dev/zero | tail -c 10 > /dev/null")
		want(t, "OOMKilled within the limit", c.inspect("nooom", "{{.State.OOMKilled}} {{.State.ExitCode}}"), "false 0")
	})

	t.Run("PidsLimit", func(t *testing.T) {
		c := d.on(t)
		out, _, code := c.run("run", "--rm", "--pids-limit", "5", image, "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max; for i in 1 2 3 4 5 6 7 8; do sleep 1 & done 2>&1; wait")
		contains(t, "pids.max in the container", out, "5")
		if code == 0 && !strings.Contains(out, "fork") {
			t.Errorf("8 processes under --pids-limit 5: exit %d, output %q, want a failed fork", code, out)
		}
		out, errOut, _ := c.run("run", "--rm", "--pids-limit", "5", image, "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait")
		contains(t, "the failed fork", out+errOut, "can't fork")
	})

	t.Run("Capabilities", func(t *testing.T) {
		c := d.on(t)
		out := c.must("run", "--rm", "--cap-drop", "ALL", image, "sh", "-c", "grep -E 'Cap(Eff|Prm|Bnd)' /proc/self/status; chown nobody /tmp 2>&1 || true")
		want(t, "--cap-drop ALL", out, "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nchown: /tmp: Operation not permitted")
		out = c.must("run", "--rm", "--cap-drop", "ALL", "--cap-add", "CHOWN", image, "sh", "-c", "grep CapEff /proc/self/status; chown nobody /tmp && echo chowned")
		want(t, "--cap-drop ALL --cap-add CHOWN", out, "CapEff:\t0000000000000001\nchowned")
		// The default set has no NET_ADMIN; --cap-add gives it. (lo is up with --network
		// none, as with Docker: busybox's ip changes only flags that differ.)
		out = c.must("run", "--rm", "--network", "none", image, "sh", "-c", "ip link set lo down 2>&1 || true")
		contains(t, "NET_ADMIN by default", out, "Operation not permitted")
		c.must("run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", image, "ip", "link", "set", "lo", "down")
		out = c.must("run", "--rm", "--network", "none", image, "ip", "link", "show", "lo")
		contains(t, "lo of a --network none container", out, "LOOPBACK,UP")
		c.must("run", "--rm", "--cap-drop", "CHOWN", image, "sh", "-c", "! chown nobody /tmp 2>/dev/null")
		// --privileged: every capability, the host's devices, mounts allowed.
		out = c.must("run", "--rm", "--privileged", image, "sh", "-c", "grep CapEff /proc/self/status; mount -t tmpfs t /tmp && echo mounted; ls /dev | wc -l")
		lines := fields(out)
		if len(lines) != 3 || lines[0] != "CapEff:\t"+hostCapBnd(t) || lines[1] != "mounted" || atoi(t, lines[2]) < 20 {
			t.Errorf("--privileged: %q", out)
		}
		out = c.must("run", "--rm", image, "sh", "-c", "mount -t tmpfs t /tmp 2>&1 || true; ls /dev | wc -l")
		lines = fields(out)
		if len(lines) != 2 || !strings.Contains(lines[0], "denied") || atoi(t, lines[1]) >= 20 {
			t.Errorf("without --privileged: %q", out)
		}
		c.fails(125, "", "run", "--rm", "--cap-add", "NOSUCHCAP", image, "true")
	})

	t.Run("ReadOnlySecurityOpt", func(t *testing.T) {
		c := d.on(t)
		out := c.must("run", "--rm", "--read-only", "--tmpfs", "/tmp", image, "sh", "-c", "touch /x 2>&1 || true; touch /tmp/y && echo tmp-ok")
		want(t, "--read-only --tmpfs", out, "touch: /x: Read-only file system\ntmp-ok")
		want(t, "no-new-privileges", c.must("run", "--rm", "--security-opt", "no-new-privileges", image, "grep", "NoNewPrivs", "/proc/self/status"), "NoNewPrivs:\t1")
		want(t, "new privileges by default", c.must("run", "--rm", image, "grep", "NoNewPrivs", "/proc/self/status"), "NoNewPrivs:\t0")
		want(t, "the default seccomp profile", c.must("run", "--rm", image, "grep", "^Seccomp:", "/proc/self/status"), "Seccomp:\t2")
		want(t, "seccomp=unconfined", c.must("run", "--rm", "--security-opt", "seccomp=unconfined", image, "grep", "^Seccomp:", "/proc/self/status"), "Seccomp:\t0")
		c.fails(125, "", "run", "--rm", "--security-opt", "seccomp=/nonexistent.json", image, "true")
		c.fails(125, "", "run", "--rm", "--security-opt", "bogus", image, "true")
	})

	t.Run("UserWorkdir", func(t *testing.T) {
		c := d.on(t)
		want(t, "-u nobody -w /tmp", c.must("run", "--rm", "-u", "nobody", "-w", "/tmp", image, "sh", "-c", "id; pwd"), "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n/tmp")
		want(t, "-u uid:gid", c.must("run", "--rm", "-u", "1234:5678", image, "id"), "uid=1234 gid=5678 groups=5678")
		want(t, "--group-add", c.must("run", "--rm", "-u", "nobody", "--group-add", "4242", image, "id", "-G"), "65534 4242")
		want(t, "-w makes a missing directory", c.must("run", "--rm", "-w", "/new/dir", image, "pwd"), "/new/dir")
		c.fails(125, "nosuchuser", "run", "--rm", "-u", "nosuchuser", image, "true")
	})

	t.Run("HostnameHostsDNS", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("names")
		out := c.must("run", "--name", "names", "--hostname", "myhost", "--add-host", "foo:10.1.2.3", "--add-host", "bar:10.1.2.4",
			"--dns", "10.0.0.53", "--dns-search", "example.com", "--dns-option", "ndots:2", image,
			"sh", "-c", "hostname; cat /etc/hostname; grep -E 'foo|bar' /etc/hosts; cat /etc/resolv.conf")
		want(t, "hostname, hosts and resolv.conf", out, "myhost\nmyhost\n10.1.2.3\tfoo\n10.1.2.4\tbar\nnameserver 10.0.0.53\nsearch example.com\noptions ndots:2")
		// The default hostname is the short ID.
		c.rmOnCleanup("defhost")
		want(t, "the default hostname", c.must("run", "--name", "defhost", image, "hostname"), c.inspect("defhost", "{{.Id}}")[:12])
		contains(t, "localhost in /etc/hosts", c.must("run", "--rm", image, "cat", "/etc/hosts"), "127.0.0.1\tlocalhost")
	})

	t.Run("UlimitShmSysctl", func(t *testing.T) {
		c := d.on(t)
		want(t, "--ulimit nofile", c.must("run", "--rm", "--ulimit", "nofile=1024:2048", image, "sh", "-c", "ulimit -n; ulimit -Hn"), "1024\n2048")
		want(t, "--ulimit nproc", c.must("run", "--rm", "--ulimit", "nproc=500:600", image, "sh", "-c", "ulimit -u; ulimit -Hu"), "500\n600")
		want(t, "--ulimit core", c.must("run", "--rm", "--ulimit", "core=0", image, "sh", "-c", "ulimit -c"), "0")
		want(t, "--shm-size", c.must("run", "--rm", "--shm-size", "16m", image, "sh", "-c", "df -k /dev/shm | tail -1 | awk '{print $2}'"), "16384")
		want(t, "the default /dev/shm", c.must("run", "--rm", image, "sh", "-c", "df -k /dev/shm | tail -1 | awk '{print $2}'"), "65536")
		want(t, "--sysctl net.*", c.must("run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", image, "cat", "/proc/sys/net/ipv4/ip_forward"), "1")
		want(t, "--sysctl kernel.shm*", c.must("run", "--rm", "--sysctl", "kernel.shmmax=12345678", image, "cat", "/proc/sys/kernel/shmmax"), "12345678")
		c.fails(125, "", "run", "--rm", "--sysctl", "kernel.hostname=x", image, "true")
		c.fails(125, "", "run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1", image, "true")
	})

	t.Run("StopSignalTimeout", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("ssig", "stmo")
		c.must("run", "-d", "--name", "ssig", "--stop-signal", "USR1", image, "sh", "-c", `trap "echo got-usr1; exit 5" USR1; trap "exit 6" TERM; while true; do sleep 0.05; done`)
		c.waitLooping("ssig")
		c.must("stop", "ssig")
		want(t, "exit code after stop with --stop-signal USR1", c.inspect("ssig", "{{.State.ExitCode}}"), "5")
		want(t, "logs", c.must("logs", "ssig"), "got-usr1")
		// stop -s overrides it.
		c.must("start", "ssig")
		c.waitLooping("ssig")
		c.must("stop", "-s", "TERM", "ssig")
		want(t, "exit code after stop -s TERM", c.inspect("ssig", "{{.State.ExitCode}}"), "6")
		// A container that ignores the signal is killed after --stop-timeout.
		c.must("run", "-d", "--name", "stmo", "--stop-timeout", "1", image, "sh", "-c", `trap "" TERM; while true; do sleep 0.05; done`)
		c.waitLooping("stmo")
		c.must("stop", "stmo")
		want(t, "exit code after the stop timeout", c.inspect("stmo", "{{.State.ExitCode}} {{.Config.StopTimeout}}"), "137 1")
	})

	t.Run("Network", func(t *testing.T) {
		c := d.on(t)
		want(t, "the default network: the bridge's eth0 and loopback", c.must("run", "--rm", image, "ls", "/sys/class/net"), "eth0\nlo")
		want(t, "--network none", c.must("run", "--rm", "--network", "none", image, "ls", "/sys/class/net"), "lo")
		host := c.must("run", "--rm", "--network", "host", image, "ls", "/sys/class/net")
		if len(fields(host)) < 2 {
			t.Errorf("--network host sees %q, want the host's interfaces", host)
		}
		hostname, _ := c.quiet("run", "--rm", "--network", "host", image, "hostname")
		if hostname == "" || len(hostname) == 12 && strings.Trim(hostname, "0123456789abcdef") == "" {
			t.Errorf("--network host's hostname = %q, want the host's", hostname)
		}
		// Another container's network namespace.
		c.rmOnCleanup("netpeer")
		c.must("run", "-d", "--name", "netpeer", "--network", "none", "--cap-add", "NET_ADMIN", image, "sh", "-c", "ip link add dummy0 type dummy 2>/dev/null; ip link add br9 type bridge 2>/dev/null; sleep 100000")
		c.waitFor("the peer's links", func() bool {
			out, _ := c.quiet("exec", "netpeer", "ls", "/sys/class/net")
			return len(fields(out)) > 1
		})
		peer, _ := c.quiet("exec", "netpeer", "ls", "/sys/class/net")
		want(t, "--network container:", c.must("run", "--rm", "--network", "container:netpeer", image, "ls", "/sys/class/net"), peer)
	})
}
