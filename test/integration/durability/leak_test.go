package durability_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/test/bundle"
	"berth/test/engine"
)

const (
	// cycles is how many docker run --rm cycles TestRunRmCycles runs.
	cycles = 500
	// warmup cycles run before berthd's descriptors are counted for reference.
	warmup = 10
	// workers run the cycles after the warm-up, two at a time.
	workers = 2
	// fdSlack is how many more open descriptors berthd may hold after all cycles than after
	// the warm-up (an idle keep-alive connection, a cached file).
	fdSlack = 8
)

// TestRunRmCycles is acceptance 4 of issue 5: 500 `docker run --rm busybox true` leave
// nothing behind (mounts, shims, cgroups, runtime state, shim and container directories,
// containers) and berthd's open descriptors do not grow with them.
func TestRunRmCycles(t *testing.T) {
	d, img := start(t)
	cids := t.TempDir()

	var mu sync.Mutex
	var ids []string
	var latency time.Duration
	cycle := func(i int) error {
		cidfile := filepath.Join(cids, fmt.Sprintf("%d.cid", i))
		t0 := time.Now()
		out, errOut, code := d.Docker("run", "--rm", "--cidfile", cidfile, img, "true")
		took := time.Since(t0)
		id, _ := os.ReadFile(cidfile)
		mu.Lock()
		if len(id) > 0 {
			ids = append(ids, strings.TrimSpace(string(id)))
		}
		latency += took
		mu.Unlock()
		if code != 0 || out != "" {
			return fmt.Errorf("cycle %d: docker run --rm %s true: exit %d\nstdout: %s\nstderr: %s", i, img, code, out, errOut)
		}
		return nil
	}

	begin := time.Now()
	for i := 0; i < warmup; i++ {
		if err := cycle(i); err != nil {
			t.Fatalf("%v\nberthd log:\n%s", err, d.LogTail(2000))
		}
	}
	fdsWarm := fdCount(d.PID())
	next := make(chan int)
	var wg sync.WaitGroup
	var failed sync.Once
	stop := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := cycle(i); err != nil {
					failed.Do(func() {
						t.Errorf("%v\nberthd log:\n%s", err, d.LogTail(2000))
						close(stop)
					})
					return
				}
			}
		}()
	}
feed:
	for i := warmup; i < cycles; i++ {
		select {
		case next <- i:
		case <-stop:
			break feed
		}
	}
	close(next)
	wg.Wait()
	wall := time.Since(begin)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d cycles of docker run --rm %s true (%d at first, then %d at a time): %v per cycle of wall time, mean latency of a cycle %v",
		len(ids), img, warmup, workers, (wall / time.Duration(len(ids))).Round(time.Microsecond), (latency / time.Duration(len(ids))).Round(time.Microsecond))
	if len(ids) != cycles {
		t.Errorf("%d container IDs written by --cidfile, want %d", len(ids), cycles)
	}

	// Nothing is left.
	if left := d.Must("ps", "-aq"); left != "" {
		t.Errorf("docker ps -a after the cycles: %q", left)
	}
	waitFor(t, "no shim process is left", func() (bool, string) {
		var left []string
		for _, p := range engine.ProcessesUsing(d.Dir) {
			if p != d.PID() {
				left = append(left, fmt.Sprintf("%d (%s)", p, engine.Cmdline(p)))
			}
		}
		return len(left) == 0, strings.Join(left, ", ")
	})
	if left := mountsUnder(t, d.DataRoot, d.ExecRoot); len(left) > 0 {
		t.Errorf("%d mounts left under berthd's directories: %q", len(left), left[:min(len(left), 10)])
	}
	var cgroups []string
	for _, id := range ids {
		dirs, err := bundle.CgroupDirs(bundle.CgroupParent() + "/" + id)
		if err != nil {
			t.Errorf("cgroups of %s: %v", id, err)
		}
		cgroups = append(cgroups, dirs...)
	}
	if len(cgroups) > 0 {
		t.Errorf("%d cgroups left: %q", len(cgroups), cgroups[:min(len(cgroups), 10)])
	}
	for _, dir := range []string{filepath.Join(d.ExecRoot, "runtime"), filepath.Join(d.ExecRoot, "shims"), filepath.Join(d.DataRoot, "containers")} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Errorf("%v", err)
		}
		var left []string
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") { // the runtime's .seccomp-cache
				left = append(left, e.Name())
			}
		}
		if len(left) > 0 {
			t.Errorf("%d entries left in %s: %q", len(left), dir, left[:min(len(left), 10)])
		}
	}
	// Descriptors of connections the CLI just closed may take a moment to go.
	fdsEnd := fdCount(d.PID())
	deadline := time.Now().Add(10 * time.Second)
	for fdsEnd > fdsWarm+fdSlack && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		fdsEnd = fdCount(d.PID())
	}
	t.Logf("berthd's open descriptors: %d after %d cycles, %d after %d", fdsWarm, warmup, fdsEnd, len(ids))
	if fdsEnd > fdsWarm+fdSlack {
		t.Errorf("berthd holds %d open descriptors after %d cycles, %d after the first %d: a leak\n%s", fdsEnd, len(ids), fdsWarm, warmup, fdList(d.PID()))
	}
}

// mountsUnder lists the mount points under the directories.
func mountsUnder(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, dir := range dirs {
		m, err := engine.MountsUnder(dir)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}

// fdList describes pid's open descriptors, for a leak report.
func fdList(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "  fd %s -> %s\n", e.Name(), target)
	}
	return b.String()
}
