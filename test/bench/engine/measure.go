package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"berth/test/bench/harness"
	"berth/test/engine"
)

// rotations runs one iteration of fn per engine, -warmup + -n times, in an order that
// rotates per iteration; measured tells fn whether the iteration counts.
func rotations(what string, engines []*eng, fn func(e *eng, measured bool)) {
	total := *flagWarmup + *flagN
	for i := 0; i < total && !bench.Stopping(); i++ {
		for _, e := range harness.Rotated(engines, i) {
			if !e.Dropped && !bench.Stopping() {
				fn(e, i >= *flagWarmup)
			}
		}
		if (i+1)%10 == 0 || i+1 == total {
			logf("%s: iteration %d/%d", what, i+1, total)
		}
	}
}

// measureRun times `run --rm --network none IMAGE true`, and in the same iterations the
// floor of every command: the CLI's `version` (docker: its start and two requests, /_ping
// and /version; podman: its start).
func measureRun(ctx context.Context, engines []*eng) {
	rotations("run", engines, func(e *eng, measured bool) {
		_, d, err := e.Run(ctx, e.runCmd("--rm", image, "true")...)
		if e.Check(err, "run --rm") && measured {
			e.run = append(e.run, d)
		}
		_, d, err = e.Run(ctx, e.versionCmd()...)
		if e.Check(err, "version") && measured {
			e.floor = append(e.floor, d)
		}
	})
}

// versionCmd is the floor command: `version` with the server's version (podman has none).
func (e *eng) versionCmd() []string {
	if e.Name == "podman" {
		return []string{"version", "--format", "{{.Client.Version}}"}
	}
	return []string{"version", "--format", "{{.Server.Version}}"}
}

// measureExec times `exec CONTAINER true` into one running `sleep` container per engine,
// removed afterwards.
func measureExec(ctx context.Context, engines []*eng) {
	ids := map[*eng]string{}
	var live []*eng
	for _, e := range engines {
		if e.Dropped || bench.Stopping() {
			continue
		}
		id, _, err := e.Run(ctx, e.runCmd("-d", image, "sleep", "1000000")...)
		if e.Check(err, "run -d (exec target)") {
			ids[e] = id
			live = append(live, e)
		}
	}
	if len(live) > 0 {
		rotations("exec", live, func(e *eng, measured bool) {
			_, d, err := e.Run(ctx, "exec", ids[e], "true")
			if e.Check(err, "exec") && measured {
				e.exec = append(e.exec, d)
			}
		})
	}
	for e, id := range ids {
		if _, _, err := e.Run(context.Background(), e.RmArgs(id)...); err != nil {
			logf("%s: %v", e.Name, err)
		}
	}
}

// idleResult is the memory of an engine with its idle containers.
type idleResult struct {
	containers int
	shims      []procMem // one per container's engine process
	daemons    []procMem // the engine's other processes
	note       string    // what did not go as planned
}

// measureIdle starts n idle containers in e (`run -d ... sleep 1000000`, timed), waits
// -settle, reads the memory of the engine's processes, and removes the containers.
func measureIdle(ctx context.Context, e *eng, n int) {
	logf("%s: starting %d idle containers", e.Name, n)
	var ids []string
	for i := 0; i < n && !e.Dropped && !bench.Stopping(); i++ {
		id, d, err := e.Run(ctx, e.runCmd("-d", image, "sleep", "1000000")...)
		if e.Check(err, "run -d (idle)") {
			ids = append(ids, id)
			e.runDetached = append(e.runDetached, d)
		}
	}
	defer func() {
		if len(ids) == 0 {
			return
		}
		if _, _, err := e.Run(context.Background(), e.RmArgs(ids...)...); err != nil {
			logf("%s: %v", e.Name, err)
		}
		if bench.Stopping() {
			return // the cleanup removes and checks everything
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(processesOf(e.Dir, e.shim)) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if left := processesOf(e.Dir, e.shim); len(left) > 0 {
			e.Check(fmt.Errorf("%d %s processes still there 30 s after rm -f of the idle containers", len(left), e.shim), "idle")
		}
	}()
	if len(ids) == 0 || bench.Stopping() {
		return
	}
	select {
	case <-time.After(*flagSettle):
	case <-ctx.Done():
		return
	}
	r := &idleResult{containers: len(ids)}
	for _, pid := range processesOf(e.Dir, e.shim) {
		if m, err := readProcMem(pid); err == nil {
			r.shims = append(r.shims, m)
		}
	}
	if len(r.shims) != len(ids) {
		r.note = fmt.Sprintf("%d %s processes for %d containers", len(r.shims), e.shim, len(ids))
		logf("%s: %s", e.Name, r.note)
	}
	for _, pid := range e.daemons() {
		if m, err := readProcMem(pid); err == nil {
			r.daemons = append(r.daemons, m)
		}
	}
	e.idle = r
}

// processesOf lists the processes whose executable is named exe among those whose command
// line names a path in dir (an engine's private directory).
func processesOf(dir, exe string) []int {
	var pids []int
	for _, pid := range engine.ProcessesUsing(dir) {
		if exeName(pid) == exe {
			pids = append(pids, pid)
		}
	}
	return pids
}

func exeName(pid int) string {
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	return filepath.Base(strings.TrimSuffix(p, " (deleted)"))
}

// procMem is one process's memory, in kB.
type procMem struct {
	pid     int
	name    string
	rss     int64 // VmRSS
	pss     int64 // Pss of smaps_rollup: shared pages divided among their users
	private int64 // Private_Clean + Private_Dirty: what the process alone holds (USS)
	threads int64
}

func readProcMem(pid int) (procMem, error) {
	m := procMem{pid: pid, name: exeName(pid)}
	status, err := readKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS", "Threads")
	if err != nil {
		return m, err
	}
	rollup, err := readKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss", "Private_Clean", "Private_Dirty")
	if err != nil {
		return m, err
	}
	m.rss, m.threads = status["VmRSS"], status["Threads"]
	m.pss, m.private = rollup["Pss"], rollup["Private_Clean"]+rollup["Private_Dirty"]
	return m, nil
}

// readKB reads "Name:   N kB" (or "Name: N") fields of a /proc file; every one must be there.
func readKB(path string, names ...string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !slices.Contains(names, k) {
			continue
		}
		if f := strings.Fields(v); len(f) > 0 {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("%s: no %s", path, n)
		}
	}
	return out, nil
}
