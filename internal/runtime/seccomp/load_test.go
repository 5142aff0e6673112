package seccomp

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"berth/internal/runtime/caps"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The load tests run the test binary again as a helper process that loads a
// compiled program with seccomp(2), the way the container child does, and
// reports what its system calls return.
const (
	envScenario = "BERTH_SECCOMP_TEST_HELPER"
	envProgram  = "BERTH_SECCOMP_TEST_PROGRAM"
	envDir      = "BERTH_SECCOMP_TEST_DIR"
)

func TestMain(m *testing.M) {
	if s := os.Getenv(envScenario); s != "" {
		helper(s)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writeProgram stores flags and filter as plain bytes, as the child gets them.
func writeProgram(t *testing.T, p *Program) string {
	t.Helper()
	b := binary.NativeEndian.AppendUint64(nil, uint64(p.Flags))
	b = append(b, encode(p.Filter)...)
	path := filepath.Join(t.TempDir(), "filter.bpf")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runHelper(t *testing.T, scenario string, p *Program) (string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envScenario+"="+scenario, envProgram+"="+writeProgram(t, p), envDir+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s: %v\nstdout:\n%s\nstderr:\n%s", scenario, err, out, stderr.String())
	}
	return string(out), dir
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(3)
}

func errnoOf(r1 uintptr, e unix.Errno) string {
	if e != 0 {
		return fmt.Sprintf("errno %d", int(e))
	}
	return fmt.Sprintf("ok %d", int(r1))
}

func helper(scenario string) {
	raw, err := os.ReadFile(os.Getenv(envProgram))
	if err != nil {
		fail("%v", err)
	}
	flags := uintptr(binary.NativeEndian.Uint64(raw))
	prog, err := decode(raw[8:])
	if err != nil {
		fail("%v", err)
	}
	dir := os.Getenv(envDir)
	pid := os.Getpid()

	// Load the filter on this (locked) thread only, as the single-threaded
	// child would, then make system calls from the same thread.
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fail("no_new_privs: %v", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	fd, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if e != 0 {
		fail("seccomp(SECCOMP_SET_MODE_FILTER, %#x): %v", flags, e)
	}

	fdcwd := unix.AT_FDCWD
	path, _ := unix.BytePtrFromString(filepath.Join(dir, "made"))
	devnull, _ := unix.BytePtrFromString("/dev/null")
	switch scenario {
	case "errno":
		r, _, e := unix.RawSyscall(unix.SYS_MKDIRAT, uintptr(fdcwd), uintptr(unsafe.Pointer(path)), 0o755)
		fmt.Println("mkdirat", errnoOf(r, e))
		r, _, e = unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
		fmt.Println("getpid", errnoOf(r, e), "want", pid)
		_, _, e = unix.RawSyscall6(unix.SYS_OPENAT, uintptr(fdcwd), uintptr(unsafe.Pointer(devnull)), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
		fmt.Println("openat", errnoOf(0, e))
		for _, who := range []uintptr{11111, 22222, 0} {
			r, _, e = unix.RawSyscall(unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, who, 0)
			fmt.Println("getpriority", who, errnoOf(r, e))
		}
		for _, p := range []uintptr{0x1234, 0} {
			r, _, e = unix.RawSyscall(unix.SYS_GETPGID, p, 0, 0)
			fmt.Printf("getpgid %#x %s\n", p, errnoOf(r, e))
		}
	case "exec":
		r, _, e := unix.RawSyscall(unix.SYS_SYSLOG, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, 0, 0)
		fmt.Println("syslog", errnoOf(r, e))
		r, _, e = unix.RawSyscall(1000, 0, 0, 0)
		fmt.Println("sys1000", errnoOf(r, e))
		r, _, e = unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		fmt.Println("clone3", errnoOf(r, e))
		os.Stdout.Sync()
		script := `echo exec ok; /bin/true && echo true ok; while read l; do case $l in Seccomp:*) echo $l;; esac; done </proc/self/status`
		err := unix.Exec("/bin/sh", []string{"sh", "-c", script}, []string{"PATH=/usr/bin:/bin"})
		fail("exec: %v", err)
	case "notify":
		if flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
			fail("no NEW_LISTENER flag")
		}
		_, _, e := unix.RawSyscall(unix.SYS_FCNTL, fd, unix.F_GETFD, 0)
		fdinfo, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		fmt.Println("listener", fd > 2, errnoOf(0, e), fdinfo)
	default:
		fail("unknown scenario %q", scenario)
	}
}

func TestLoadErrnoRules(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdirat", "mkdir"}, Action: specs.ActErrno, ErrnoRet: uintp(77)},
			{Names: []string{"getpriority"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{
				{Index: 1, Op: specs.OpEqualTo, Value: 11111},
				{Index: 1, Op: specs.OpEqualTo, Value: 22222},
			}},
			{Names: []string{"getpgid"}, Action: specs.ActErrno, ErrnoRet: uintp(38), Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpMaskedEqual, Value: 0xff00, ValueTwo: 0x1200},
			}},
		},
	})
	out, dir := runHelper(t, "errno", p)
	t.Logf("helper output:\n%s", out)
	for _, want := range []string{
		"mkdirat errno 77\n",
		"getpriority 11111 errno 1\n",
		"getpriority 22222 errno 1\n",
		"getpriority 0 ok ",
		"getpgid 0x1234 errno 38\n",
		"getpgid 0x0 ok ",
		"openat ok 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("helper output lacks %q", want)
		}
	}
	var got, want int
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "getpid ") {
			fmt.Sscanf(line, "getpid ok %d want %d", &got, &want)
		}
	}
	if got == 0 || got != want {
		t.Errorf("getpid returned %d, want %d", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "made")); !os.IsNotExist(err) {
		t.Errorf("mkdirat was not blocked: %v", err)
	}
}

func TestLoadDockerDefaultAndExec(t *testing.T) {
	p := dockerDefault(t, caps.DockerDefault())
	out, _ := runHelper(t, "exec", p)
	t.Logf("helper output:\n%s", out)
	for _, want := range []string{
		"syslog errno 1\n",   // EPERM: CAP_SYSLOG is not in the set
		"sys1000 errno 38\n", // ENOSYS from the stub, not EPERM
		"clone3 errno 38\n",  // Docker's rule: ENOSYS so glibc falls back to clone
		"exec ok\n",
		"true ok\n",
		"Seccomp: 2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("helper output lacks %q", want)
		}
	}
}

func TestLoadNotifyListener(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags:         []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv, specs.LinuxSeccompFlagLog},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActNotify}},
	})
	out, _ := runHelper(t, "notify", p)
	if !strings.Contains(out, "listener true ok 0 anon_inode:seccomp notify") {
		t.Errorf("helper output %q", out)
	}
}
