package runtime_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/internal/runtime/caps"
	"berth/internal/runtime/seccomp"
	"berth/test/bundle"
)

// runIn runs a foreground container with the given shell script and options, and returns
// its result (failing the test if the runtime itself failed before the process ran).
func runIn(t *testing.T, e *env, script string, opts ...bundle.Option) result {
	t.Helper()
	c := e.ctr(append(opts, bundle.WithArgs("sh", "-c", script))...)
	return c.run()
}

func wantOut(t *testing.T, r result, want string) {
	t.Helper()
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("want exit 0 and stdout %q, got %s", want, r)
	}
}

func TestSpecProcess(t *testing.T) {
	e := newEnv(t)
	t.Run("hostname", func(t *testing.T) {
		wantOut(t, runIn(t, e, "hostname", bundle.WithHostname("berth-host")), "berth-host\n")
	})
	t.Run("domainname", func(t *testing.T) {
		wantOut(t, runIn(t, e, "cat /proc/sys/kernel/domainname", bundle.WithSpec(func(s *specs.Spec) { s.Domainname = "example.org" })), "example.org\n")
	})
	t.Run("env", func(t *testing.T) {
		wantOut(t, runIn(t, e, `echo "$FOO|$EMPTY|$TERM|$HOME"`, bundle.WithEnv("FOO=bar baz=qux", "EMPTY=")), "bar baz=qux||xterm|/root\n")
	})
	t.Run("args", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("echo", "a b", "", "$c", "*"))
		wantOut(t, c.run(), "a b  $c *\n")
	})
	t.Run("cwd-created", func(t *testing.T) {
		// runc makes a missing cwd (before the rootfs is made read-only)
		for _, ro := range []bool{true, false} {
			r := runIn(t, e, "pwd; ls -ld . | cut -c1", bundle.WithReadonlyRootfs(ro), bundle.WithSpec(func(s *specs.Spec) { s.Process.Cwd = "/does/not/exist" }))
			if r.Code != 0 || r.Stdout != "/does/not/exist\nd\n" {
				t.Errorf("missing cwd /does/not/exist (readonly rootfs %v) not created: %s", ro, r)
			}
		}
	})
	t.Run("user", func(t *testing.T) {
		r := runIn(t, e, "id -u; id -g; id -G; umask; echo > /tmp/f; stat -c '%a %u %g' /tmp/f",
			bundle.WithReadonlyRootfs(false),
			bundle.WithSpec(func(s *specs.Spec) {
				umask := uint32(0o027)
				s.Process.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{10, 20}, Umask: &umask}
			}))
		wantOut(t, r, "1000\n1001\n1001 10 20\n0027\n640 1000 1001\n")
	})
	t.Run("rlimits", func(t *testing.T) {
		wantOut(t, runIn(t, e, "ulimit -n; ulimit -Hn"), "1024\n1024\n")
		r := runIn(t, e, "ulimit -n; ulimit -Hn; ulimit -Su; ulimit -Hu", bundle.WithSpec(func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 1024},
				{Type: "RLIMIT_NPROC", Soft: 300, Hard: 400},
			}
		}))
		wantOut(t, r, "512\n1024\n300\n400\n")
	})
	t.Run("readonly-rootfs", func(t *testing.T) {
		r := runIn(t, e, "touch /x; echo rc=$?; awk '$5 == \"/\" { split($6, o, \",\"); print o[1] }' /proc/self/mountinfo")
		if r.Code != 0 || !strings.Contains(r.Stderr, "Read-only file system") || !strings.Contains(r.Stdout, "rc=1\nro\n") {
			t.Errorf("readonly rootfs: %s", r)
		}
		r = runIn(t, e, "touch /x && echo writable", bundle.WithReadonlyRootfs(false))
		wantOut(t, r, "writable\n")
	})
	t.Run("masked-paths", func(t *testing.T) {
		// files are masked with /dev/null, directories with an empty read-only tmpfs; paths
		// missing on this kernel are skipped
		var script strings.Builder
		var want strings.Builder
		for _, p := range bundle.DefaultSpec().Linux.MaskedPaths {
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			if fi.IsDir() {
				fmt.Fprintf(&script, "echo %s $(ls -A %s | wc -l); touch %s/x 2>/dev/null || echo %s ro;", p, p, p, p)
				fmt.Fprintf(&want, "%s 0\n%s ro\n", p, p)
			} else {
				fmt.Fprintf(&script, "echo %s $(cat %s | wc -c);", p, p)
				fmt.Fprintf(&want, "%s 0\n", p)
			}
		}
		if want.Len() == 0 {
			t.Skip("none of the default masked paths exists here")
		}
		// a masked path of our own that surely exists
		r := runIn(t, e, script.String()+"wc -c < /proc/cpuinfo", bundle.WithSpec(func(s *specs.Spec) {
			s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/proc/cpuinfo", "/proc/does-not-exist")
		}))
		wantOut(t, r, want.String()+"0\n")
	})
	t.Run("readonly-paths", func(t *testing.T) {
		r := runIn(t, e, "echo foo > /proc/sys/kernel/domainname; echo rc=$?; cat /proc/sys/kernel/hostname")
		if r.Code != 0 || r.Stdout != "rc=1\nrunc\n" || !strings.Contains(r.Stderr, "Read-only file system") {
			t.Errorf("/proc/sys writable: %s", r)
		}
		// every existing default readonly path is a read-only mount
		var script, want strings.Builder
		for _, p := range bundle.DefaultSpec().Linux.ReadonlyPaths {
			if _, err := os.Stat(p); err == nil {
				fmt.Fprintf(&script, "awk '$5 == %q { split($6, o, \",\"); print $5, o[1] }' /proc/self/mountinfo;", p)
				fmt.Fprintf(&want, "%s ro\n", p)
			}
		}
		wantOut(t, runIn(t, e, script.String()), want.String())
	})
	t.Run("sysctl", func(t *testing.T) {
		r := runIn(t, e, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni", bundle.WithSpec(func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
		}))
		wantOut(t, r, "1\n1234\n")
		host, _ := os.ReadFile("/proc/sys/kernel/shmmni")
		if strings.TrimSpace(string(host)) == "1234" {
			t.Errorf("sysctl leaked to the host")
		}
	})
	t.Run("no-new-privileges", func(t *testing.T) {
		wantOut(t, runIn(t, e, "grep NoNewPrivs /proc/self/status"), "NoNewPrivs:\t1\n")
		wantOut(t, runIn(t, e, "grep NoNewPrivs /proc/self/status", bundle.WithSpec(func(s *specs.Spec) { s.Process.NoNewPrivileges = false })), "NoNewPrivs:\t0\n")
	})
	t.Run("oom-score-adj", func(t *testing.T) {
		self, _ := os.ReadFile("/proc/self/oom_score_adj")
		v := 500
		if n := strings.TrimSpace(string(self)); n == "1000" {
			t.Skip("oom_score_adj is already 1000")
		}
		wantOut(t, runIn(t, e, "cat /proc/self/oom_score_adj", bundle.WithSpec(func(s *specs.Spec) { s.Process.OOMScoreAdj = &v })), "500\n")
	})
}

func TestSpecCapabilities(t *testing.T) {
	e := newEnv(t)
	set := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"}
	want, unknown := caps.Parse(set)
	if len(unknown) > 0 {
		t.Fatal(unknown)
	}
	r := runIn(t, e, "cat /proc/self/status", bundle.WithSpec(func(s *specs.Spec) {
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: set, Effective: set, Permitted: set}
	}))
	if r.Code != 0 {
		t.Fatal(r)
	}
	for _, f := range []string{"CapBnd", "CapEff", "CapPrm"} {
		if got := hexField(t, r.Stdout, f); got != want {
			t.Errorf("%s %x, want %x (%v)", f, got, want, set)
		}
	}
	if got := hexField(t, r.Stdout, "CapInh"); got != 0 {
		t.Errorf("CapInh %x, want 0", got)
	}
	// the default spec's caps, ambient included, for root
	r = runIn(t, e, "cat /proc/self/status")
	def, _ := caps.Parse([]string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"})
	if got := hexField(t, r.Stdout, "CapBnd"); got != def {
		t.Errorf("default CapBnd %x, want %x", got, def)
	}
	// ambient capabilities reach a non-root process (they need inheritable too)
	r = runIn(t, e, "grep Cap /proc/self/status", bundle.WithSpec(func(s *specs.Spec) {
		s.Process.User.UID = 1000
		c := []string{"CAP_NET_BIND_SERVICE"}
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: c, Effective: c, Permitted: c, Inheritable: c, Ambient: c}
	}))
	nbs, _ := caps.Parse([]string{"CAP_NET_BIND_SERVICE"})
	if r.Code != 0 || hexField(t, r.Stdout, "CapEff") != nbs || hexField(t, r.Stdout, "CapAmb") != nbs {
		t.Errorf("ambient CAP_NET_BIND_SERVICE for uid 1000: %s", r)
	}
}

func TestSpecMounts(t *testing.T) {
	e := newEnv(t)
	t.Run("bind", func(t *testing.T) {
		roDir, rwDir := t.TempDir(), t.TempDir()
		os.WriteFile(filepath.Join(roDir, "data"), []byte("ro-data\n"), 0o644)
		hostFile := filepath.Join(t.TempDir(), "hostfile")
		os.WriteFile(hostFile, []byte("file-data\n"), 0o644)
		r := runIn(t, e, "cat /mnt/ro/data; touch /mnt/ro/x || echo ro-refused; echo w > /mnt/rw/new && echo rw-ok; cat /etc/hostfile",
			bundle.WithMounts(
				specs.Mount{Destination: "/mnt/ro", Type: "bind", Source: roDir, Options: []string{"rbind", "ro"}},
				specs.Mount{Destination: "/mnt/rw", Type: "bind", Source: rwDir, Options: []string{"rbind", "rw"}},
				specs.Mount{Destination: "/etc/hostfile", Type: "bind", Source: hostFile, Options: []string{"bind", "ro"}},
			))
		wantOut(t, r, "ro-data\nro-refused\nrw-ok\nfile-data\n")
		if _, err := os.Stat(filepath.Join(roDir, "x")); err == nil {
			t.Error("file created through a ro bind mount")
		}
		if data, _ := os.ReadFile(filepath.Join(rwDir, "new")); string(data) != "w\n" {
			t.Errorf("rw bind mount: host sees %q", data)
		}
	})
	t.Run("tmpfs-options", func(t *testing.T) {
		r := runIn(t, e, "stat -c %a /scratch; grep ' /scratch ' /proc/self/mountinfo; dd if=/dev/zero of=/scratch/f bs=1024 count=2048 2>&1 | grep -c 'No space'",
			bundle.WithMounts(specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "mode=1770", "size=1m"}}))
		lines := strings.Split(r.Stdout, "\n")
		if r.Code != 0 || len(lines) < 3 || lines[0] != "1770" || lines[2] != "1" {
			t.Fatalf("tmpfs: %s", r)
		}
		mi := lines[1]
		for _, want := range []string{"nosuid", "nodev", "noexec", "size=1024k", "mode=1770", " - tmpfs "} {
			if !strings.Contains(mi, want) {
				t.Errorf("tmpfs mountinfo %q lacks %q", mi, want)
			}
		}
	})
	t.Run("propagation", func(t *testing.T) {
		// A shared host mount bound rshared (kubelet's Bidirectional) stays a peer of the
		// host's: a mount the container makes under it reaches the host, and one the host
		// makes reaches the container; rslave gets the host's only; the container's other
		// mounts stay its own.
		src := t.TempDir()
		if err := syscall.Mount(src, src, "", syscall.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		defer syscall.Unmount(src, syscall.MNT_DETACH)
		if err := syscall.Mount("", src, "", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"from-host", "from-shared", "from-slave", "host-dir"} {
			os.Mkdir(filepath.Join(src, d), 0o755)
		}
		os.WriteFile(filepath.Join(src, "host-dir", "marker"), []byte("x"), 0o644)
		// The host mounts under src while the container waits for it.
		go func() {
			for i := 0; i < 200; i++ {
				if _, err := os.Stat(filepath.Join(src, "from-shared", "passwd")); err == nil {
					break
				}
				time.Sleep(25 * time.Millisecond)
			}
			syscall.Mount(filepath.Join(src, "host-dir"), filepath.Join(src, "from-host"), "", syscall.MS_BIND, "")
		}()
		defer syscall.Unmount(filepath.Join(src, "from-host"), syscall.MNT_DETACH)
		defer syscall.Unmount(filepath.Join(src, "from-shared"), syscall.MNT_DETACH)
		r := runIn(t, e, `grep -E ' /(shared|slave) ' /proc/self/mountinfo | grep -c shared:
mount --bind /etc /shared/from-shared && mount -t tmpfs t /slave/from-slave && mount -t tmpfs t /tmp
for i in $(seq 100); do [ -e /shared/from-host/marker ] && [ -e /slave/from-host/marker ] && break; sleep 0.05; done
ls /shared/from-host; ls /slave/from-host`,
			bundle.WithReadonlyRootfs(false),
			bundle.WithSpec(func(s *specs.Spec) {
				s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
				s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN")
				s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, "CAP_SYS_ADMIN")
				s.Linux.RootfsPropagation = "shared"
				s.Linux.Seccomp = nil
				s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
			}),
			bundle.WithMounts(
				specs.Mount{Destination: "/shared", Type: "bind", Source: src, Options: []string{"rbind", "rshared"}},
				specs.Mount{Destination: "/slave", Type: "bind", Source: src, Options: []string{"rbind", "rslave"}},
			))
		wantOut(t, r, "1\nmarker\nmarker\n")
		if _, err := os.Stat(filepath.Join(src, "from-shared", "passwd")); err != nil {
			t.Errorf("the container's mount under its rshared bind did not reach the host: %v", err)
		}
		if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), filepath.Join(src, "from-slave")) {
			t.Errorf("the container's mount under its rslave bind reached the host")
		}
	})
	t.Run("bad-bind-source", func(t *testing.T) {
		c := e.ctr(bundle.WithMounts(specs.Mount{Destination: "/mnt", Type: "bind", Source: "/no/such/source", Options: []string{"bind"}}))
		fails(t, c.run(), "/no/such/source")
	})
	t.Run("devices", func(t *testing.T) {
		mode := os.FileMode(0o666)
		uid, gid := uint32(0), uint32(0)
		r := runIn(t, e, "stat -c '%F %t %T %a' /dev/fuse; for d in null zero full random urandom tty; do stat -c '%n %F %t %T' /dev/$d; done; echo hi > /dev/null && head -c 3 /dev/zero | wc -c",
			bundle.WithSpec(func(s *specs.Spec) {
				s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &mode, UID: &uid, GID: &gid})
				s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(10)), Minor: ptr(int64(229)), Access: "rwm"})
			}))
		want := "character special file a e5 666\n" +
			"/dev/null character special file 1 3\n" +
			"/dev/zero character special file 1 5\n" +
			"/dev/full character special file 1 7\n" +
			"/dev/random character special file 1 8\n" +
			"/dev/urandom character special file 1 9\n" +
			"/dev/tty character special file 5 0\n" +
			"3\n"
		wantOut(t, r, want)
	})
	t.Run("dev-symlinks", func(t *testing.T) {
		r := runIn(t, e, "for l in ptmx fd stdin stdout stderr; do echo $l=$(readlink /dev/$l); done; ls -d /dev/mqueue /dev/pts /dev/shm")
		wantOut(t, r, "ptmx=pts/ptmx\nfd=/proc/self/fd\nstdin=/proc/self/fd/0\nstdout=/proc/self/fd/1\nstderr=/proc/self/fd/2\n/dev/mqueue\n/dev/pts\n/dev/shm\n")
	})
	t.Run("device-cgroup", func(t *testing.T) {
		// the default spec denies every device but the defaults: mknod of a disk fails to open
		r := runIn(t, e, "mknod /dev/sdx b 8 0 && head -c1 /dev/sdx; echo rc=$?", bundle.WithSpec(func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_MKNOD")
			s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_MKNOD")
			s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, "CAP_MKNOD")
		}))
		if !strings.Contains(r.Stdout, "rc=1") || !strings.Contains(r.Stderr, "Operation not permitted") {
			t.Errorf("device cgroup let a disk through: %s", r)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestSpecSeccomp(t *testing.T) {
	e := newEnv(t)
	t.Run("errno-mkdir", func(t *testing.T) {
		r := runIn(t, e, "mkdir /tmp/x; echo rc=$?; touch /tmp/y && echo touched; grep Seccomp: /proc/self/status",
			bundle.WithReadonlyRootfs(false),
			bundle.WithSpec(func(s *specs.Spec) {
				s.Linux.Seccomp = &specs.LinuxSeccomp{
					DefaultAction: specs.ActAllow,
					Syscalls: []specs.LinuxSyscall{{
						Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(1)),
					}},
				}
			}))
		if r.Code != 0 || r.Stdout != "rc=1\ntouched\nSeccomp:\t2\n" || !strings.Contains(r.Stderr, "Operation not permitted") {
			t.Errorf("seccomp ERRNO for mkdir: %s", r)
		}
	})
	t.Run("docker-default", func(t *testing.T) {
		prof, err := seccomp.DefaultProfile(caps.DockerDefault())
		if err != nil {
			t.Fatal(err)
		}
		r := runIn(t, e, "true && grep Seccomp: /proc/self/status && unshare -U true; echo unshare=$?", bundle.WithSpec(func(s *specs.Spec) { s.Linux.Seccomp = prof }))
		// unshare(CLONE_NEWUSER) is blocked for a container without CAP_SYS_ADMIN
		wantOut(t, r, "Seccomp:\t2\nunshare=1\n")
	})
	t.Run("exec-inherits", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("sleep", "1000"), bundle.WithSpec(func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(1))}}}
		}))
		c.startDetached()
		r := e.berth("exec", c.id, "mkdir", "/dev/shm/x")
		fails(t, r, "Operation not permitted")
	})
}

func TestSpecUserNamespace(t *testing.T) {
	e := newEnv(t)
	mapping := func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	}
	c := e.ctr(bundle.WithArgs("sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u /bin/busybox; touch /tmp/f && stat -c %u /tmp/f"),
		bundle.WithReadonlyRootfs(false), bundle.WithSpec(mapping))
	// rootfs owned by the container's root, its ancestors (our 0700 temporary directories)
	// traversable by it
	chownTree(t, c.b.Rootfs, 100000, 100000)
	for d := c.b.Dir; strings.HasPrefix(d, testTmp); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	r := c.run()
	uidMap := fmt.Sprintf("%10d %10d %10d\n", 0, 100000, 65536)
	wantOut(t, r, uidMap+uidMap+"0\n0\n0\n")
	if fi, err := os.Stat(filepath.Join(c.b.Rootfs, "tmp/f")); err == nil {
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 100000 {
			t.Errorf("file made by container root has host uid %d, want 100000", st.Uid)
		}
	}
	// a user namespace container without mappings is refused
	c2 := e.ctr(bundle.WithNamespace(specs.UserNamespace, ""))
	fails(t, c2.run(), "uidMappings")
}

func chownTree(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}
