package daemon_test

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"berth/test/berthtest"
)

// TestPsAndInspect: docker ps with its filters, formats and sizes; docker inspect's State,
// HostConfig and Mounts; the container's Config merged with its image's (Env override,
// Entrypoint and Cmd rules, WorkingDir, User, Labels).
func TestPsAndInspect(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})

	t.Run("Ps", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("ps-run", "ps-exit3", "ps-exit0", "ps-created", "ps-other")
		// Another image (ancestor filters match image IDs, not names).
		c.must("commit", "-c", "LABEL other=1", mustCreate(c, "ps-src"), "other:1")
		c.must("rm", "ps-src")
		t.Cleanup(func() { d.d.Docker("rmi", "other:1") })
		run := c.must("run", "-d", "--name", "ps-run", "--label", "team=a", "--label", "tier=web", image, "sleep", "1000")
		exit3 := c.must("run", "-d", "--name", "ps-exit3", "--label", "team=a", image, "sh", "-c", "exit 3")
		exit0 := c.must("run", "-d", "--name", "ps-exit0", "--label", "team=b", image, "true")
		created := c.must("create", "--name", "ps-created", image, "true")
		other := c.must("create", "--name", "ps-other", "other:1", "true")
		c.must("wait", "ps-exit3", "ps-exit0")
		short := func(ids ...string) string {
			var out []string
			for _, id := range ids {
				out = append(out, id[:12])
			}
			slices.Sort(out)
			return strings.Join(out, ",")
		}
		ps := func(args ...string) string {
			got := c.ps(args...)
			slices.Sort(got)
			return strings.Join(got, ",")
		}
		want(t, "ps -q", ps("-q"), short(run))
		want(t, "ps -aq", ps("-aq"), short(run, exit3, exit0, created, other))
		want(t, "ps -aq --no-trunc", strings.Contains(ps("-aq", "--no-trunc"), run), true)
		want(t, "status=running", ps("-q", "--filter", "status=running"), short(run))
		want(t, "status=exited", ps("-aq", "--filter", "status=exited"), short(exit3, exit0))
		want(t, "status=created", ps("-aq", "--filter", "status=created"), short(created, other))
		want(t, "exited=3", ps("-aq", "--filter", "exited=3"), short(exit3))
		want(t, "exited=0", ps("-aq", "--filter", "exited=0"), short(exit0))
		want(t, "name=ps-exit", ps("-aq", "--filter", "name=ps-exit"), short(exit3, exit0))
		want(t, "name=ps-run", ps("-aq", "--filter", "name=ps-run"), short(run))
		want(t, "label=team", ps("-aq", "--filter", "label=team"), short(run, exit3, exit0))
		want(t, "label=team=a", ps("-aq", "--filter", "label=team=a"), short(run, exit3))
		want(t, "label=team=a label=tier=web", ps("-aq", "--filter", "label=team=a", "--filter", "label=tier=web"), short(run))
		want(t, "ancestor=other:1", ps("-aq", "--filter", "ancestor=other:1"), short(other))
		want(t, "ancestor=busybox", ps("-aq", "--filter", "ancestor="+image), short(run, exit3, exit0, created))
		want(t, "id=", ps("-aq", "--filter", "id="+exit0[:10]), short(exit0))
		want(t, "two status filters", ps("-aq", "--filter", "status=running", "--filter", "status=created"), short(run, created, other))
		want(t, "-n 2 (the newest)", ps("-q", "-n", "2"), short(created, other))
		want(t, "-l (the latest)", ps("-q", "-l"), short(other))
		c.fails(1, "invalid filter", "ps", "--filter", "bogus=1")

		want(t, "--format", c.must("ps", "--filter", "name=ps-run", "--format", "{{.Names}}|{{.Image}}|{{.Command}}|{{.Label \"team\"}}|{{.State}}"),
			`ps-run|busybox|"sleep 1000"|a|running`)
		contains(t, "--format Status", c.must("ps", "-a", "--filter", "name=ps-exit3", "--format", "{{.Status}}"), "Exited (3)")
		want(t, "--format Status of a created container", c.must("ps", "-a", "--filter", "name=ps-created", "--format", "{{.Status}}"), "Created")
		var js struct{ ID, Names, State, Labels string }
		if err := json.Unmarshal([]byte(c.must("ps", "--filter", "name=ps-run", "--format", "json")), &js); err != nil {
			t.Fatal(err)
		}
		want(t, "--format json", js.Names+" "+js.State+" "+js.ID, "ps-run running "+run[:12])
		table := c.must("ps", "-a", "--filter", "name=ps-run")
		contains(t, "the default table", table, "CONTAINER ID   IMAGE")
		contains(t, "the default table", table, "ps-run")

		// --size: the writable layer grows with what the container writes.
		c.must("exec", "ps-run", "sh", "-c", "head -c 300000 /dev/zero > /tmp/blob")
		size := c.must("ps", "--size", "--filter", "name=ps-run", "--format", "{{.Size}}")
		if !strings.Contains(size, "kB") || !strings.Contains(size, "virtual") {
			t.Errorf("ps --size = %q, want a writable size in kB and the virtual size", size)
		}
		if sizeRw := c.inspect("ps-run", "{{.SizeRw}}"); sizeRw != "<nil>" && sizeRw != "<no value>" {
			t.Errorf("inspect without --size: SizeRw = %s", sizeRw)
		}
		out := c.must("inspect", "--size", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "ps-run")
		f := strings.Fields(out)
		if len(f) != 2 || atoi(t, f[0]) < 300000 || atoi(t, f[1]) <= atoi(t, f[0]) {
			t.Errorf("inspect --size = %q, want SizeRw >= 300000 and SizeRootFs above it", out)
		}
	})

	t.Run("InspectHostConfig", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("hc")
		host := workDir(t)
		c.must("create", "--name", "hc",
			"--memory", "64m", "--memory-reservation", "32m", "--cpu-shares", "256", "--cpus", "1.5", "--pids-limit", "64",
			"--restart", "on-failure:5", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "--read-only",
			"--tmpfs", "/run:size=1m", "-v", host+":/host:ro", "-v", "named:/named", "-v", "/anon",
			"--shm-size", "8m", "--sysctl", "net.ipv4.ip_forward=1", "--ulimit", "nofile=1024:2048",
			"--add-host", "h1:10.0.0.1", "--dns", "10.0.0.53", "--init", "--stop-signal", "SIGUSR1", "--stop-timeout", "7",
			"--hostname", "hc-host", "--user", "nobody", "--workdir", "/tmp", "-e", "A=1", "--network", "none",
			"--security-opt", "no-new-privileges", image, "true")
		var hc struct {
			Memory, MemoryReservation, CpuShares, NanoCpus, ShmSize int64
			PidsLimit                                               *int64
			RestartPolicy                                           struct {
				Name              string
				MaximumRetryCount int
			}
			CapAdd, CapDrop, Binds, ExtraHosts, Dns, SecurityOpt []string
			ReadonlyRootfs                                       bool
			Init                                                 *bool
			Tmpfs, Sysctls                                       map[string]string
			Ulimits                                              []struct {
				Name       string
				Soft, Hard int64
			}
			NetworkMode string
			AutoRemove  bool
		}
		if err := json.Unmarshal([]byte(c.inspect("hc", "{{json .HostConfig}}")), &hc); err != nil {
			t.Fatal(err)
		}
		want(t, "Memory", hc.Memory, 64<<20)
		want(t, "MemoryReservation", hc.MemoryReservation, 32<<20)
		want(t, "CpuShares", hc.CpuShares, 256)
		want(t, "NanoCpus", hc.NanoCpus, 1500000000)
		want(t, "ShmSize", hc.ShmSize, 8<<20)
		if hc.PidsLimit == nil || *hc.PidsLimit != 64 {
			t.Errorf("PidsLimit = %v, want 64", hc.PidsLimit)
		}
		want(t, "RestartPolicy", hc.RestartPolicy.Name+":"+strconv.Itoa(hc.RestartPolicy.MaximumRetryCount), "on-failure:5")
		// The CLI sends capabilities with their CAP_ prefix.
		want(t, "CapAdd", strings.Join(hc.CapAdd, ","), "CAP_NET_ADMIN")
		want(t, "CapDrop", strings.Join(hc.CapDrop, ","), "CAP_MKNOD")
		want(t, "ReadonlyRootfs", hc.ReadonlyRootfs, true)
		want(t, "Tmpfs", hc.Tmpfs["/run"], "size=1m")
		want(t, "Sysctls", hc.Sysctls["net.ipv4.ip_forward"], "1")
		if len(hc.Ulimits) != 1 || hc.Ulimits[0].Name != "nofile" || hc.Ulimits[0].Soft != 1024 || hc.Ulimits[0].Hard != 2048 {
			t.Errorf("Ulimits = %+v", hc.Ulimits)
		}
		want(t, "ExtraHosts", strings.Join(hc.ExtraHosts, ","), "h1:10.0.0.1")
		want(t, "Dns", strings.Join(hc.Dns, ","), "10.0.0.53")
		want(t, "Init", hc.Init != nil && *hc.Init, true)
		want(t, "NetworkMode", hc.NetworkMode, "none")
		want(t, "SecurityOpt", strings.Join(hc.SecurityOpt, ","), "no-new-privileges")
		want(t, "AutoRemove", hc.AutoRemove, false)
		binds := strings.Join(hc.Binds, ",")
		contains(t, "Binds", binds, host+":/host:ro")
		contains(t, "Binds", binds, "named:/named")

		var mounts []struct {
			Type, Name, Source, Destination, Driver, Mode string
			RW                                            bool
		}
		if err := json.Unmarshal([]byte(c.inspect("hc", "{{json .Mounts}}")), &mounts); err != nil {
			t.Fatal(err)
		}
		byDst := map[string]int{}
		for i, m := range mounts {
			byDst[m.Destination] = i
		}
		if i, ok := byDst["/host"]; !ok || mounts[i].Type != "bind" || mounts[i].Source != host || mounts[i].RW {
			t.Errorf("the bind mount in Mounts: %+v", mounts)
		}
		if i, ok := byDst["/named"]; !ok || mounts[i].Type != "volume" || mounts[i].Name != "named" || mounts[i].Driver != "local" || !mounts[i].RW {
			t.Errorf("the named volume in Mounts: %+v", mounts)
		}
		if i, ok := byDst["/anon"]; !ok || mounts[i].Type != "volume" || len(mounts[i].Name) != 64 {
			t.Errorf("the anonymous volume in Mounts: %+v", mounts)
		}
		want(t, "Config",
			c.inspect("hc", "{{.Config.Hostname}} {{.Config.User}} {{.Config.WorkingDir}} {{.Config.StopSignal}} {{.Config.StopTimeout}}"),
			"hc-host nobody /tmp SIGUSR1 7")
		want(t, "State of a created container",
			c.inspect("hc", "{{.State.Status}} {{.State.Running}} {{.State.Pid}} {{.State.ExitCode}} {{.RestartCount}}"),
			"created false 0 0 0")
		want(t, "Name", c.inspect("hc", "{{.Name}}"), "/hc")
		c.must("rm", "-v", "hc")
		c.must("volume", "rm", "named")
	})

	t.Run("InspectState", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("st")
		c.must("run", "-d", "--name", "st", image, "sleep", "1000")
		want(t, "running State", c.inspect("st", "{{.State.Status}} {{.State.Running}} {{.State.Paused}} {{.State.Restarting}} {{.State.OOMKilled}} {{.State.Dead}}"),
			"running true false false false false")
		if pid := atoi(t, c.inspect("st", "{{.State.Pid}}")); pid <= 0 {
			t.Errorf("Pid = %d", pid)
		}
		want(t, "FinishedAt while running", c.inspect("st", "{{.State.FinishedAt}}"), "0001-01-01T00:00:00Z")
		c.must("kill", "st")
		c.must("wait", "st")
		want(t, "exited State", c.inspect("st", "{{.State.Status}} {{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}"), "exited false 0 137")
		if f := c.inspect("st", "{{.State.FinishedAt}}"); f == "0001-01-01T00:00:00Z" {
			t.Errorf("FinishedAt not set after the exit")
		}
		// A command that cannot run: exit 127 and State.Error.
		c.rmOnCleanup("st2")
		_, errOut, code := c.run("run", "--name", "st2", image, "nosuchcommand")
		state := c.inspect("st2", "{{.State.Status}} {{.State.ExitCode}}")
		if code != 127 || !strings.Contains(errOut, "nosuchcommand") || state != "created 127" || !strings.Contains(c.inspect("st2", "{{.State.Error}}"), "nosuchcommand") {
			t.Errorf("docker run of a missing command: exit %d (%q), state %q; want 127, the start's error, and a created container with ExitCode 127 and State.Error%s", code, errOut, state, missingCommandBug)
		}
	})

	t.Run("ConfigMerge", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("m1", "m2", "m3", "m4", "m5", "m6")
		// An image with Entrypoint, Cmd, Env, WorkingDir, User and Labels.
		c.must("commit",
			"-c", `ENTRYPOINT ["echo", "ep"]`, "-c", `CMD ["cmd"]`, "-c", "ENV A=1 B=2", "-c", "WORKDIR /tmp",
			"-c", "USER nobody", "-c", "LABEL from=image over=image", "-c", "STOPSIGNAL SIGUSR2",
			mustCreate(c, "m0src"), "merged:1")
		t.Cleanup(func() { d.d.Docker("rmi", "merged:1") })
		c.must("rm", "m0src")

		out := c.must("run", "--name", "m1", "merged:1")
		want(t, "entrypoint + the image's cmd", out, "ep cmd")
		want(t, "Path/Args", c.inspect("m1", "{{.Path}} {{json .Args}}"), `echo ["ep","cmd"]`)
		env := c.inspect("m1", "{{json .Config.Env}}")
		contains(t, "Env", env, `"A=1"`)
		contains(t, "Env", env, `"B=2"`)
		want(t, "WorkingDir, User and StopSignal from the image", c.inspect("m1", "{{.Config.WorkingDir}} {{.Config.User}} {{.Config.StopSignal}}"), "/tmp nobody SIGUSR2")

		want(t, "args replace the image's cmd", c.must("run", "--name", "m2", "merged:1", "x", "y"), "ep x y")
		want(t, "Config.Cmd", c.inspect("m2", "{{json .Config.Cmd}} {{json .Config.Entrypoint}}"), `["x","y"] ["echo","ep"]`)

		// --entrypoint drops the image's Cmd.
		want(t, "--entrypoint alone", c.must("run", "--name", "m3", "--entrypoint", "echo", "merged:1"), "")
		want(t, "Config after --entrypoint", c.inspect("m3", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}"), `["echo"] null`)
		// --entrypoint "" with a command runs just the command.
		want(t, `--entrypoint ""`, c.must("run", "--name", "m4", "--entrypoint", "", "merged:1", "sh", "-c", "echo $A-$B-$(id -u)-$(pwd)"), "1-2-65534-/tmp")

		// -e overrides by name and keeps the rest; -u, -w and labels override.
		out = c.must("run", "--name", "m5", "-e", "B=3", "-e", "C=4", "-u", "0", "-w", "/", "--label", "over=run", "--entrypoint", "", "merged:1",
			"sh", "-c", "echo $A-$B-$C-$(id -u)-$(pwd)")
		want(t, "overrides", out, "1-3-4-0-/")
		env = c.inspect("m5", "{{json .Config.Env}}")
		if strings.Contains(env, `"B=2"`) || !strings.Contains(env, `"B=3"`) || !strings.Contains(env, `"A=1"`) || !strings.Contains(env, `"C=4"`) {
			t.Errorf("Env = %s, want A=1, B=3 replacing B=2, and C=4", env)
		}
		want(t, "Labels", c.inspect("m5", `{{index .Config.Labels "from"}} {{index .Config.Labels "over"}}`), "image run")

		// No command at all.
		c.must("commit", "-c", `CMD []`, "-c", `ENTRYPOINT []`, mustCreate(c, "m6src"), "nocmd:1")
		t.Cleanup(func() { d.d.Docker("rmi", "nocmd:1") })
		c.must("rm", "m6src")
		c.fails(1, "no command specified", "create", "--name", "m6", "nocmd:1")
		c.fails(125, "no command specified", "run", "--name", "m6", "nocmd:1")
	})
}

// mustCreate creates a stopped busybox container named name and returns the name.
func mustCreate(c *cli, name string) string {
	c.t.Helper()
	c.must("create", "--name", name, image, "true")
	return name
}

// missingCommandBug names the cause of a missing command's start failing late, since
// berth-runtime's commit 5d8b45a: in internal/runtime/compile_process.go the exec check's
// Ignore(op, 4, ...) still skips 4 ops after a PATH candidate is not found, but a candidate's
// ops after its faccessat are now 2, so the check jumps to the next candidate's "found" and
// only execve, after start reported success, finds the command missing (exit 1, no error).
const missingCommandBug = " (berth-runtime bug since 5d8b45a: compile_process.go's exec check has Ignore(op, 4, ...) where a candidate now has 2 ops to skip)"
