package berthtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A berthd killed by Kill9 leaves its children (the shims, and any runtime command or shim
// start in flight) without a parent. The kernel gives them to the nearest child subreaper
// among their ancestors, else to PID 1, which on some hosts never reaps: they would stay
// zombies once they exit. Kill9 therefore makes the test process a child subreaper before it
// kills berthd, and records the children berthd had; cleanup reaps exactly those pids once
// they are zombies, and never waits for any child (wait4(-1) would steal the exits that
// os/exec waits for).

// becomeSubreaper makes the test process a child subreaper: processes orphaned below it are
// reparented to it instead of to PID 1. The attribute belongs to the whole process, so it is
// held only while a Kill9 is under way (endSubreaper): left on, it would also collect what
// other daemons of the test binary orphan (a runtime exec killed with a health probe leaves
// its process in the container to the subreaper), and such a zombie, never reaped, keeps its
// container's PID namespace, and so the container, from ever exiting.
func becomeSubreaper() error {
	subreaper.Lock()
	defer subreaper.Unlock()
	if subreaper.holders == 0 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
		}
	}
	subreaper.holders++
	return nil
}

// endSubreaper ends a becomeSubreaper once the killed berthd is gone (its children were
// reparented when it died).
func endSubreaper() {
	subreaper.Lock()
	defer subreaper.Unlock()
	if subreaper.holders--; subreaper.holders == 0 {
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	}
}

var subreaper struct {
	sync.Mutex
	holders int
}

// procStat is what /proc/<pid>/stat says of a process: its name, state, parent and start
// time (which, with the pid, names a process for good).
type procStat struct {
	comm  string
	state byte
	ppid  int
	start string
}

func readProcStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, false
	}
	return procStat{comm: s[open+1 : end], state: f[0][0], ppid: ppid, start: f[19]}, true
}

// orphan is a child of a killed berthd: its pid and start time.
type orphan struct {
	pid   int
	start string
}

// childrenOf lists the processes whose parent is pid, zombies included.
func childrenOf(pid int) []orphan {
	var out []orphan
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(p); ok && st.ppid == pid {
			out = append(out, orphan{p, st.start})
		}
	}
	return out
}

// awaitStopped waits until every thread of pid is stopped (SIGSTOP delivered), or the
// process is gone, or timeout; it reports whether all threads were seen stopped.
func awaitStopped(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			return false
		}
		stopped := true
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue // the thread is gone
			}
			s := string(b)
			if end := strings.LastIndexByte(s, ')'); end < 0 || end+2 >= len(s) || (s[end+2] != 'T' && s[end+2] != 't' && s[end+2] != 'Z' && s[end+2] != 'X') {
				stopped = false
				break
			}
		}
		if stopped {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill9 stops berthd, records its children (they are about to become the test process's)
// and kills it. A stopped process forks nothing, so the record is complete.
func (d *Daemon) kill9() error {
	if err := becomeSubreaper(); err != nil {
		return err
	}
	pid := d.PID()
	syscall.Kill(pid, syscall.SIGSTOP)
	if !awaitStopped(pid, 10*time.Second) {
		d.t.Logf("berthd (pid %d) did not stop on SIGSTOP within 10 s; recording its children anyway", pid)
	}
	d.orphans = append(d.orphans, childrenOf(pid)...)
	return syscall.Kill(pid, syscall.SIGKILL)
}

// reapOrphans waits up to timeout for the processes that Kill9 orphaned to exit and reaps
// each one that is the test process's zombie child; it returns those still alive (a leak).
// A recorded pid whose parent is no longer the test process was reaped by someone else (it
// exited before berthd died, or berthd's successor reaped it) and is skipped.
func (d *Daemon) reapOrphans(timeout time.Duration) []int {
	self := os.Getpid()
	deadline := time.Now().Add(timeout)
	for {
		var alive []orphan
		for _, o := range d.orphans {
			st, ok := readProcStat(o.pid)
			if !ok || st.ppid != self || st.start != o.start {
				continue
			}
			if st.state == 'Z' {
				var ws unix.WaitStatus
				unix.Wait4(o.pid, &ws, unix.WNOHANG, nil)
				continue
			}
			alive = append(alive, o)
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			d.orphans = alive
			pids := make([]int, len(alive))
			for i, o := range alive {
				pids[i] = o.pid
			}
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}
