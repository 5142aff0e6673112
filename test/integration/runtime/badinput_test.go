package runtime_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/test/bundle"
)

// hostSnapshot is the host state a failed create must leave as it was. (Cgroups are checked
// by the bundle's own cgroupsPath: in the v1 hierarchies where our cgroup is the root, the
// shared berth-test parent also holds the containers of other test runs.)
type hostSnapshot struct {
	mounts  []string
	orphans []procInfo
}

func snapshot(t testing.TB) hostSnapshot {
	return hostSnapshot{mounts: mountinfo(t), orphans: orphans()}
}

// nothingLeft checks that container c left no state dir, cgroup, mount or process behind.
func (c *ctr) nothingLeft(before hostSnapshot) {
	t := c.t
	t.Helper()
	if slices.Contains(dirEntries(c.e.root), c.id) {
		t.Errorf("state dir %s left under --root", c.id)
	}
	if r := c.do("state"); r.Code == 0 {
		t.Errorf("container still known: %s", r)
	}
	if dirs, _ := c.b.CgroupDirs(); len(dirs) > 0 {
		t.Errorf("cgroups left: %v", dirs)
	}
	if removed, added := bundle.DiffLines(before.mounts, mountinfo(t)); len(removed)+len(added) > 0 {
		t.Errorf("host mounts changed: removed %q added %q", removed, added)
	}
	if p := c.procs(); len(p) > 0 {
		t.Errorf("container processes left: %v", p)
	}
	// orphans of the runtime that were not there before
	for _, p := range orphans() {
		if !slices.ContainsFunc(before.orphans, func(o procInfo) bool { return o.pid == p.pid }) {
			t.Errorf("process left behind: %+v", p)
		}
	}
}

// badCase is a config.json (or invocation) that create and run must refuse.
type badCase struct {
	name string
	opts []bundle.Option
	// raw, if set, is written as config.json verbatim
	raw  string
	edit func(t *testing.T, c *ctr) // after the bundle is made
	want []string
	// parse is set for errors of config.json parsing and validation, which create and run
	// share: only create is tried
	parse bool
}

func TestBadInput(t *testing.T) {
	requireSetup(t)
	regular := filepath.Join(t.TempDir(), "regular-file")
	os.WriteFile(regular, []byte("x"), 0o644)
	valid, err := os.ReadFile(writeDefaultConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []badCase{
		{name: "malformed-json", parse: true, raw: "{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {\"args\": [\"sh\"],, }\n}\n",
			want: []string{"config.json", "line 3", "column"}},
		{name: "truncated-json", parse: true, raw: string(valid[:len(valid)/2]), want: []string{"config.json", "JSON"}},
		{name: "args-wrong-type", parse: true, raw: editJSON(t, valid, func(m map[string]any) { m["process"].(map[string]any)["args"] = "sh" }),
			want: []string{"process.args", "line", "string"}},
		{name: "root-wrong-type", parse: true, raw: editJSON(t, valid, func(m map[string]any) { m["root"] = []string{"rootfs"} }),
			want: []string{"root", "line"}},
		{name: "root-path-missing", parse: true, opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) { s.Root.Path = "" })}, want: []string{"root.path"}},
		{name: "root-missing", parse: true, opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) { s.Root = nil })}, want: []string{"root"}},
		{name: "ociVersion-missing", parse: true, opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) { s.Version = "" })}, want: []string{"ociVersion"}},
		{name: "ociVersion-unsupported", parse: true, opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) { s.Version = "2.0.0" })}, want: []string{"2.0.0"}},
		{name: "process-missing", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) { s.Process = nil })}, want: []string{"process"}},
		{name: "args-empty", parse: true, opts: []bundle.Option{bundle.WithArgs()}, want: []string{"process.args"}},
		{name: "cwd-relative", parse: true, opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) { s.Process.Cwd = "tmp" })}, want: []string{"cwd", `"tmp"`}},
		{name: "rootfs-missing", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) { s.Root.Path = "no-such-rootfs" })},
			want: []string{"no-such-rootfs", "no such file or directory"}},
		{name: "rootfs-not-dir", edit: func(t *testing.T, c *ctr) {
			c.b.Spec.Root.Path = regular
			c.save()
		}, want: []string{regular, "not a directory"}},
		{name: "unknown-namespace", parse: true, opts: []bundle.Option{bundle.WithNamespace("foo", "")}, want: []string{`"foo"`, "namespace"}},
		{name: "duplicate-namespace", parse: true, opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		})}, want: []string{"pid", "twice"}},
		{name: "netns-nonexistent", opts: []bundle.Option{bundle.WithNamespace(specs.NetworkNamespace, "/run/netns/berth-no-such-ns")},
			want: []string{"/run/netns/berth-no-such-ns", "no such file or directory"}},
		{name: "netns-regular-file", opts: []bundle.Option{bundle.WithNamespace(specs.NetworkNamespace, regular)},
			want: []string{regular, "namespace"}},
		{name: "netns-wrong-type", opts: []bundle.Option{bundle.WithNamespace(specs.NetworkNamespace, "/proc/self/ns/uts")},
			want: []string{"/proc/self/ns/uts", "network"}},
		{name: "netns-relative", parse: true, opts: []bundle.Option{bundle.WithNamespace(specs.NetworkNamespace, "run/netns/x")}, want: []string{"run/netns/x", "absolute"}},
		{name: "prestart-hook-fails", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			//lint:ignore SA1019 prestart hooks are deprecated but still in the spec
			s.Hooks = &specs.Hooks{Prestart: []specs.Hook{shHook("echo prestart-hook-says-no >&2; exit 3")}}
		})}, want: []string{"prestart", "prestart-hook-says-no", "exit status 3"}},
		{name: "createRuntime-hook-fails", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{shHook("echo createRuntime-hook-says-no; exit 4")}}
		})}, want: []string{"createRuntime", "createRuntime-hook-says-no", "exit status 4"}},
		{name: "createContainer-hook-fails", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{shHook("echo createContainer-hook-says-no; exit 5")}}
		})}, want: []string{"createContainer", "createContainer-hook-says-no"}},
		{name: "hook-not-found", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			//lint:ignore SA1019 prestart hooks are deprecated but still in the spec
			s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/no/such/hook"}}}
		})}, want: []string{"/no/such/hook"}},
		{name: "hook-timeout", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			one := 1
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}, Timeout: &one}}}
		})}, want: []string{"createRuntime", "timed out"}},
		{name: "seccomp-unknown-action", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: "SCMP_ACT_BOGUS"}}}
		})}, want: []string{"seccomp", "SCMP_ACT_BOGUS"}},
		{name: "seccomp-unknown-default-action", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_WHATEVER"}
		})}, want: []string{"seccomp", "SCMP_ACT_WHATEVER"}},
		{name: "executable-not-in-path", opts: []bundle.Option{bundle.WithArgs("no-such-command", "arg")}, want: []string{"no-such-command", "not found"}},
		{name: "executable-absolute-missing", opts: []bundle.Option{bundle.WithArgs("/bin/no-such-command")}, want: []string{"/bin/no-such-command"}},
		{name: "executable-not-executable", opts: []bundle.Option{bundle.WithFile("etc/not-exec", "x"), bundle.WithArgs("/etc/not-exec")},
			want: []string{"/etc/not-exec", "permission denied"}},
		{name: "executable-is-dir", opts: []bundle.Option{bundle.WithArgs("/etc")}, want: []string{"/etc"}},
		{name: "mount-bad-type", opts: []bundle.Option{bundle.WithMounts(specs.Mount{Destination: "/mnt/x", Type: "nosuchfs", Source: "none"})},
			want: []string{"nosuchfs", "/mnt/x"}},
		{name: "mount-bad-option", opts: []bundle.Option{bundle.WithMounts(specs.Mount{Destination: "/mnt/x", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=lots"}})},
			want: []string{"/mnt/x"}},
		{name: "mount-relative-destination", parse: true, opts: []bundle.Option{bundle.WithMounts(specs.Mount{Destination: "mnt", Type: "tmpfs", Source: "tmpfs"})},
			want: []string{"mounts", `"mnt"`}},
		{name: "bind-source-missing", opts: []bundle.Option{bundle.WithMounts(specs.Mount{Destination: "/mnt/x", Type: "bind", Source: "/no/such/dir", Options: []string{"bind"}})},
			want: []string{"/no/such/dir"}},
		{name: "sysctl-not-namespaced", parse: true, opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"vm.swappiness": "10"} })},
			want: []string{"vm.swappiness"}},
		{name: "sysctl-unknown", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.ipv4.no_such_knob": "1"} })},
			want: []string{"net.ipv4.no_such_knob"}},
		{name: "rlimit-unknown", parse: true, opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_BOGUS", Soft: 1, Hard: 1})
		})}, want: []string{"RLIMIT_BOGUS"}},
		{name: "rlimit-above-hard", opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1 << 30, Hard: 1 << 30}}
		})}, want: []string{"RLIMIT_NOFILE"}},
		{name: "hostname-without-uts", parse: true, opts: []bundle.Option{bundle.WithoutNamespace(specs.UTSNamespace)}, want: []string{"hostname", "uts"}},
		{name: "device-bad-type", parse: true, opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "q", Major: 1, Minor: 1}}
		})}, want: []string{"/dev/x", `"q"`}},
		{name: "mappings-without-userns", parse: true, opts: []bundle.Option{bundle.WithSpec(func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 1}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 1}}
		})}, want: []string{"user namespace"}},
		{name: "bad-id", edit: func(t *testing.T, c *ctr) { c.id = "../escape" }, want: []string{"invalid container id"}},
	}
	for _, tc := range cases {
		subs := []string{"create", "run"}
		if tc.parse {
			subs = subs[:1]
		}
		for _, sub := range subs {
			t.Run(tc.name+"/"+sub, func(t *testing.T) {
				e := newEnv(t)
				c := e.ctr(tc.opts...)
				if tc.raw != "" {
					os.WriteFile(c.b.ConfigPath(), []byte(tc.raw), 0o644)
				}
				if tc.edit != nil {
					tc.edit(t, c)
				}
				before := snapshot(t)
				start := time.Now()
				var r result
				if sub == "create" {
					r = c.create()
				} else {
					r = c.run()
				}
				fails(t, r, tc.want...)
				t.Logf("error: %s", lastLine(r.Stderr))
				if d := time.Since(start); d > 15*time.Second {
					t.Errorf("%s took %v to fail", sub, d)
				}
				c.nothingLeft(before)
			})
		}
	}
}

// editJSON decodes a config.json into generic JSON, applies fn and re-encodes it.
func editJSON(t *testing.T, data []byte, fn func(map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// writeDefaultConfig writes the bundle package's default config.json (as MarshalIndent with
// tabs, as Bundle.Save writes it) and returns its path.
func writeDefaultConfig(t *testing.T) string {
	b, err := bundle.Create(t.TempDir(), bundle.WithTerminal(false))
	if err != nil {
		t.Fatal(err)
	}
	return b.ConfigPath()
}

func TestSeccompUnknownSyscallSkipped(t *testing.T) {
	// names this libseccomp does not know are skipped (with a warning), as runc does
	e := newEnv(t)
	c := e.ctr(bundle.WithReadonlyRootfs(false), bundle.WithArgs("sh", "-c", "mkdir /tmp/d; echo rc=$?"), bundle.WithSpec(func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"this_syscall_does_not_exist", "mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(1))},
			{Names: []string{"another_bogus_syscall"}, Action: specs.ActKill},
		}}
	}))
	r := c.run()
	if r.Code != 0 || r.Stdout != "rc=1\n" {
		t.Errorf("container with unknown syscall names: %s", r)
	}
}

func TestDuplicateID(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sleep", "1000"))
	pidFile := filepath.Join(t.TempDir(), "pid")
	ok(t, c.create("--pid-file", pidFile))
	pid := readPidFile(t, pidFile)
	cgBefore, _ := c.b.CgroupDirs()
	before := snapshot(t)
	// same id, same bundle; then same id, another bundle
	fails(t, c.create(), c.id, "already exists")
	other := e.ctr(bundle.WithArgs("true"))
	fails(t, e.berth("create", "--bundle", other.b.Dir, c.id), c.id, "already exists")
	fails(t, e.berth("run", "--bundle", other.b.Dir, c.id), c.id, "already exists")
	// the first container is untouched
	if st := c.state(); st.Status != "created" || st.Pid != pid {
		t.Errorf("first container after duplicate creates: %+v", st)
	}
	if cg, _ := c.b.CgroupDirs(); !slices.Equal(cg, cgBefore) {
		t.Errorf("cgroups of the first container changed: %v -> %v", cgBefore, cg)
	}
	if dirs, _ := other.b.CgroupDirs(); len(dirs) > 0 {
		t.Errorf("cgroups made for the refused duplicate: %v", dirs)
	}
	if removed, added := bundle.DiffLines(before.mounts, mountinfo(t)); len(removed)+len(added) > 0 {
		t.Errorf("host mounts changed: %q %q", removed, added)
	}
	ok(t, c.do("start"))
	if st := c.state(); st.Status != "running" {
		t.Errorf("first container does not start after duplicate creates: %+v", st)
	}
}

func TestBadLifecycleOps(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sleep", "1000"))
	pid := c.startDetached()
	fails(t, c.do("start"), "running")
	fails(t, c.do("delete"), c.id, "running")
	if st := c.state(); st.Status != "running" || st.Pid != pid {
		t.Errorf("after refused start/delete: %+v", st)
	}
	if p, ok := readProc(pid); !ok || p.state == 'Z' {
		t.Errorf("init %d gone after a refused delete", pid)
	}
	// unknown ids
	for _, sub := range []string{"start", "delete", "state", "pause", "resume", "ps", "events", "update"} {
		fails(t, e.berth(sub, "no-such-id"), "no-such-id")
	}
	fails(t, e.berth("kill", "no-such-id", "KILL"), "no-such-id")
	// delete --force of an unknown id succeeds (runc semantics)
	ok(t, e.berth("delete", "--force", "no-such-id"))
	// start of a stopped container
	ok(t, e.berth("kill", c.id, "KILL"))
	c.waitStatus("stopped")
	fails(t, c.do("start"), "stopped")
	fails(t, c.do("pause"), "not running")
	fails(t, c.do("update", "--pids-limit", "10"), "stopped")
	ok(t, c.do("delete"))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestSetupErrorReporting repeats failures that happen inside the container's init during
// setup: the runtime must report the init's own error every time, whatever the timing of
// its exit (not "broken pipe" or "connection reset by peer" from the sync socket).
func TestSetupErrorReporting(t *testing.T) {
	e := newEnv(t)
	taskset, _ := exec.LookPath("taskset")
	cases := []struct {
		name string
		opt  bundle.Option
		want string
	}{
		{"sysctl", bundle.WithSpec(func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.ipv4.no_such_knob": "1"} }), "net.ipv4.no_such_knob"},
		{"mount", bundle.WithMounts(specs.Mount{Destination: "/mnt/x", Type: "nosuchfs", Source: "none"}), "nosuchfs"},
		// the same failure after a slow part of the setup (the runtime has long let the init
		// past its cgroup wait)
		{"late-mount", bundle.WithSpec(func(s *specs.Spec) {
			for i := 0; i < 60; i++ {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: fmt.Sprintf("/mnt/t%d", i), Type: "tmpfs", Source: "tmpfs"})
			}
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt/x", Type: "nosuchfs", Source: "none"})
		}), "nosuchfs"},
		{"rlimit", bundle.WithSpec(func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1 << 30, Hard: 1 << 30}}
		}), "RLIMIT_NOFILE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.ctr(tc.opt)
			bad := map[string]int{}
			const n = 20
			for i := 0; i < n; i++ {
				// on one CPU, the init tends to run (and die) as soon as the runtime wakes it
				var r result
				if i%2 == 1 && taskset != "" {
					r = runCmd(t, exec.Command(taskset, "-c", "0", berthBin, "--root", e.root, "create", "--bundle", c.b.Dir, c.id))
				} else {
					r = c.create()
				}
				if r.Code == 0 {
					t.Fatalf("create succeeded: %s", r)
				}
				if msg := lastLine(r.Stderr); !strings.Contains(msg, tc.want) {
					bad[msg]++
				}
			}
			for msg, k := range bad {
				t.Errorf("%d of %d failed creates reported %q instead of the init's error (naming %s)", k, n, msg, tc.want)
			}
		})
	}
}
