package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"berth/internal/network"
	"berth/test/engine"
)

// The benches' private network namespaces: an engine and its clients run in one of their
// own, so that nothing they do touches the host's network.

// MakeNetNS makes a network namespace at path (a bind mount of the namespace, in this mount
// namespace) with lo up and nothing else, as test/berthtest makes berthd's.
func MakeNetNS(path string) (err error) {
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
	return nl.LinkSetUp(lo)
}

// RemoveNetNS kills what is left in the engine's namespace at path (processes that name no
// path in the engine's directory, docker-proxy or a load generator, are found by namespace)
// and removes the namespace; it returns the leftovers, each reported.
func (e *Engine) RemoveNetNS(path string) int {
	leftovers := 0
	for _, pid := range AwaitNetNSEmpty(path, 10*time.Second) {
		e.Bench.Logf("LEFTOVER: %s: process %d in the engine's network namespace: %s", e.Name, pid, engine.Cmdline(pid))
		syscall.Kill(pid, syscall.SIGKILL)
		leftovers++
	}
	if err := network.RemoveNetNS(path); err != nil {
		e.Bench.Logf("LEFTOVER: %v", err)
		leftovers++
	}
	return leftovers
}

// ProcessesInNetNS lists the processes whose network namespace is the one bound at path.
func ProcessesInNetNS(path string) []int {
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

// AwaitNetNSEmpty waits up to timeout for the namespace at path to hold no process and
// returns those still there.
func AwaitNetNSEmpty(path string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := ProcessesInNetNS(path)
		if len(left) == 0 || !time.Now().Before(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}
