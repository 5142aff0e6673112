package cve_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

// CVE-2019-5736: a container process that executes the runtime's own binary (through
// "#!/proc/self/exe" while the runtime's clone is still that binary) must not be able to open that
// binary for writing through /proc/PID/exe, neither directly nor by keeping an O_PATH fd and
// re-opening it through /proc/self/fd/N once the process has exited.
//
// The script's interpreter argument "--log=/FIFO" and the script name "state" make the runtime
// run as "berth-runtime --log=/FIFO state cve": it blocks opening the fifo for its log, which
// keeps it alive (and its binary executing) until the attacker lets it go.

func TestCVE_2019_5736_Init(t *testing.T) {
	r := newRT(t)
	fifo := "fifo-" + randomHex(6)
	// No pid namespace: the attacker must outlive the init (the /proc/self/exe process), to
	// re-open its fd after the last process executing the binary is gone.
	b := newBundle(t, bundle.WithoutNamespace(specs.PIDNamespace), bundle.WithArgs("state", "cve"), bundle.WithEnv("PATH=."))
	exeRootfs(t, b, fifo)
	before := sha256File(t, runtimeBin)

	id := containerID("cve-2019-5736-init")
	r.prepare(b, id)
	pidFile := filepath.Join(b.Dir, "init.pid")
	if res := r.run("create", "--pid-file", pidFile, "--bundle", b.Dir, id); res.Err != nil {
		t.Fatalf("create: %v", res)
	}
	initPid := readPid(t, pidFile)
	r.execDetached(id, "/cvehelper", "exe-attack", "-fifo", "/"+fifo, "-out", "/result.json", "-pre", strconv.Itoa(initPid))
	waitFile(t, filepath.Join(b.Rootfs, "result.json.ready"), 30*time.Second)
	if res := r.run("start", id); res.Err != nil {
		t.Fatalf("start: %v", res)
	}
	var a attack
	readJSON(t, filepath.Join(b.Rootfs, "result.json"), &a)
	t.Logf("attack: %+v", a)
	// Before start the init is the runtime's clone: non-dumpable, so /proc/PID/exe is refused.
	if a.PreOpen != "EACCES" && a.PreOpen != "EPERM" {
		t.Errorf("O_PATH open of the created init's /proc/%d/exe: %s, want EACCES (the init must be non-dumpable until it execs)", initPid, a.PreOpen)
	}
	if a.TargetPid != initPid {
		t.Errorf("the runtime binary ran as pid %d, not as the container's init %d", a.TargetPid, initPid)
	}
	checkAttack(t, a, before)
}

func TestCVE_2019_5736_Exec(t *testing.T) {
	r := newRT(t)
	fifo := "fifo-" + randomHex(6)
	b := newBundle(t, bundle.WithArgs("sleep", "3600"))
	exeRootfs(t, b, fifo)
	before := sha256File(t, runtimeBin)
	id := containerID("cve-2019-5736-exec")
	r.start(b, id)
	r.execDetached(id, "/cvehelper", "exe-attack", "-fifo", "/"+fifo, "-out", "/result.json")
	// argv[0] is the script: the exec'd process is a clone of "berth-runtime exec" when it
	// execs it, so the kernel runs /proc/self/exe = the runtime binary.
	if res := r.run("exec", "-d", "--env", "PATH=.", id, "state", "cve"); res.Err != nil {
		t.Fatalf("exec of the #!/proc/self/exe script: %v", res)
	}
	var a attack
	readJSON(t, filepath.Join(b.Rootfs, "result.json"), &a)
	t.Logf("attack: %+v", a)
	checkAttack(t, a, before)
}

// attack mirrors cvehelper's report.
type attack struct {
	PreOpen        string `json:"pre_open"`
	PreWrite       string `json:"pre_write"`
	TargetPid      int    `json:"target_pid"`
	ExeLink        string `json:"exe_link"`
	ExeIno         uint64 `json:"exe_ino"`
	ExeDev         uint64 `json:"exe_dev"`
	OPath          string `json:"opath"`
	WriteRunning   string `json:"write_running"`
	RDWRRunning    string `json:"rdwr_running"`
	ReopenRunning  string `json:"reopen_running"`
	Exited         bool   `json:"exited"`
	ReopenExited   string `json:"reopen_exited"`
	ReopenExitedRW string `json:"reopen_exited_rdwr"`
	Wrote          string `json:"wrote"`
	Error          string `json:"error"`
}

func checkAttack(t *testing.T, a attack, hashBefore string) {
	t.Helper()
	if after := sha256File(t, runtimeBin); after != hashBefore {
		t.Errorf("the runtime binary %s was modified from inside the container (sha256 %s -> %s); writes: %s", runtimeBin, hashBefore, after, a.Wrote)
	}
	if a.Error != "" {
		t.Fatalf("the attack could not be carried out (test setup problem): %s", a.Error)
	}
	// The attack must really have reached the runtime binary, or the test proves nothing.
	if a.OPath != "ok" {
		t.Fatalf("could not open /proc/%d/exe with O_PATH (%s): the #!/proc/self/exe process was not reached", a.TargetPid, a.OPath)
	}
	var st unix.Stat_t
	if err := unix.Stat(runtimeBin, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("target /proc/%d/exe -> %q (ino %d; host binary ino %d)", a.TargetPid, a.ExeLink, a.ExeIno, st.Ino)
	// A read-only bind of the binary is the same inode; a sealed memfd copy is a memfd.
	if (a.ExeIno != st.Ino || a.ExeDev != st.Dev) && !strings.Contains(a.ExeLink, "memfd:") {
		t.Errorf("/proc/%d/exe -> %q (dev %d ino %d) is not the runtime binary (dev %d ino %d)", a.TargetPid, a.ExeLink, a.ExeDev, a.ExeIno, st.Dev, st.Ino)
	}
	refused := func(what, got string) {
		t.Helper()
		if !isErrno(got, unix.EROFS, unix.ETXTBSY, unix.EACCES, unix.EPERM) {
			t.Errorf("%s: %s, want EROFS/ETXTBSY/EACCES", what, got)
		}
	}
	if a.PreWrite != "" {
		refused("O_WRONLY open of the created init's /proc/PID/exe", a.PreWrite)
	}
	refused("O_WRONLY open of /proc/PID/exe while it runs", a.WriteRunning)
	refused("O_RDWR open of /proc/PID/exe while it runs", a.RDWRRunning)
	refused("O_WRONLY re-open of the O_PATH fd while it runs", a.ReopenRunning)
	if !a.Exited {
		t.Fatalf("the #!/proc/self/exe process did not exit")
	}
	refused("O_WRONLY re-open of the O_PATH fd after the process exited", a.ReopenExited)
	refused("O_RDWR re-open of the O_PATH fd after the process exited", a.ReopenExitedRW)
}

// exeRootfs puts into the rootfs: the helper, the script /state ("#!/proc/self/exe
// --log=/FIFO"), the fifo, and the runtime binary's shared libraries (so that the runtime can
// run inside the container).
func exeRootfs(t *testing.T, b *bundle.Bundle, fifo string) {
	t.Helper()
	installHelper(t, b)
	script := filepath.Join(b.Rootfs, "state")
	if err := os.WriteFile(script, []byte("#!/proc/self/exe --log=/"+fifo+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(b.Rootfs, fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, lib := range sharedLibs(t, runtimeBin) {
		copyFile(t, lib, filepath.Join(b.Rootfs, lib), 0o755)
	}
}

// sharedLibs lists the ELF interpreter and libraries of a dynamically linked binary (none for a
// static one).
func sharedLibs(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil // static, or no ldd: nothing we can add
	}
	var libs []string
	for _, f := range strings.Fields(string(out)) {
		if filepath.IsAbs(f) {
			if _, err := os.Stat(f); err == nil {
				libs = append(libs, f)
			}
		}
	}
	return libs
}
