package runtime_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/test/bundle"
)

// netnsAdd makes a named network namespace with `ip netns add` and removes it at cleanup.
func netnsAdd(t *testing.T) (name, path string) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip(8)")
	}
	var buf [6]byte
	rand.Read(buf[:])
	name = "berth-test-" + hex.EncodeToString(buf[:])
	if out, err := combinedOutput(exec.Command("ip", "netns", "add", name)); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := combinedOutput(exec.Command("ip", "netns", "del", name)); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	return name, "/run/netns/" + name
}

func nsLink(t *testing.T, path string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	typ := filepath.Base(path)
	if strings.HasPrefix(path, "/run/netns/") {
		typ = "net"
	}
	return fmt.Sprintf("%s:[%d]", typ, st.Ino)
}

func TestJoinNetworkNamespace(t *testing.T) {
	e := newEnv(t)
	name, path := netnsAdd(t)
	want := nsLink(t, path)
	r := runIn(t, e, "readlink /proc/self/ns/net; cat /proc/sys/net/ipv4/ip_forward; ls /sys/class/net",
		bundle.WithNamespace(specs.NetworkNamespace, path),
		bundle.WithSpec(func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"} }))
	wantOut(t, r, want+"\n1\nlo\n")
	// the sysctl went to the joined namespace, not the host's
	out, err := combinedOutput(exec.Command("ip", "netns", "exec", name, "cat", "/proc/sys/net/ipv4/ip_forward"))
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("ip_forward in %s: %q %v", name, out, err)
	}
	// exec into a container that joined a netns lands in it too
	c := e.ctr(bundle.WithArgs("sleep", "1000"), bundle.WithNamespace(specs.NetworkNamespace, path))
	c.startDetached()
	r = ok(t, e.berth("exec", c.id, "readlink", "/proc/self/ns/net"))
	if strings.TrimSpace(r.Stdout) != want {
		t.Errorf("exec in a container with a joined netns: %q, want %q", r.Stdout, want)
	}
}

func TestSharedPidNamespace(t *testing.T) {
	e := newEnv(t)
	a := e.ctr(bundle.WithArgs("sleep", "1000"))
	aPid := a.startDetached()
	nsPath := fmt.Sprintf("/proc/%d/ns/pid", aPid)
	want := nsLink(t, nsPath)

	r := runIn(t, e, `cat /proc/1/cmdline | tr "\0" " "; echo; readlink /proc/self/ns/pid; [ $$ != 1 ] && echo not-init`,
		bundle.WithNamespace(specs.PIDNamespace, nsPath))
	wantOut(t, r, "sleep 1000 \n"+want+"\nnot-init\n")

	// a detached container in A's pid namespace dies with A's init
	b := e.ctr(bundle.WithArgs("sleep", "1000"), bundle.WithNamespace(specs.PIDNamespace, nsPath))
	bPid := b.startDetached()
	if got := nsLink(t, fmt.Sprintf("/proc/%d/ns/pid", bPid)); got != want {
		t.Errorf("B's pid ns %s, want A's %s", got, want)
	}
	ok(t, e.berth("kill", a.id, "KILL"))
	a.waitStatus("stopped")
	if !waitPidExit(bPid, 5*time.Second) {
		t.Errorf("B's init %d survived A's init", bPid)
	}
	b.waitStatus("stopped")
	ok(t, b.do("delete"))
	ok(t, a.do("delete"))
}

func TestJoinOtherNamespaces(t *testing.T) {
	e := newEnv(t)
	a := e.ctr(bundle.WithArgs("sleep", "1000"), bundle.WithHostname("host-a"))
	aPid := a.startDetached()
	p := func(ns string) string { return "/proc/" + strconv.Itoa(aPid) + "/ns/" + ns }
	// B joins A's uts, ipc and network namespaces (hostname must then not be set)
	r := runIn(t, e, "hostname; readlink /proc/self/ns/ipc; readlink /proc/self/ns/net",
		bundle.WithHostname(""),
		bundle.WithNamespace(specs.UTSNamespace, p("uts")),
		bundle.WithNamespace(specs.IPCNamespace, p("ipc")),
		bundle.WithNamespace(specs.NetworkNamespace, p("net")))
	wantOut(t, r, "host-a\n"+nsLink(t, p("ipc"))+"\n"+nsLink(t, p("net"))+"\n")
}

func TestCgroupNamespace(t *testing.T) {
	e := newEnv(t)
	r := runIn(t, e, "grep -E ':(memory|pids):' /proc/self/cgroup", bundle.WithNamespace(specs.CgroupNamespace, ""))
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if r.Code != 0 || len(lines) != 2 {
		t.Fatalf("cgroup namespace: %s", r)
	}
	for _, line := range lines {
		if !strings.HasSuffix(line, ":/") {
			t.Errorf("cgroup namespace not rooted at the container's cgroup: %q", line)
		}
	}
}
