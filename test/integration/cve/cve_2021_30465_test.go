package cve_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

// CVE-2021-30465: runc checked a mount target with securejoin and then mounted by path, so a
// directory swapped for a symlink in between (renameat2 RENAME_EXCHANGE, from another container
// sharing the volume) sent the mount, and the mkdir of its parents, onto a host path. A racer
// swaps rootfs/mnt/race between a directory and a symlink to a host directory while containers
// with a tmpfs and a bind mount below /mnt/race are created over and over: the host directory
// must never be mounted on or written to, whatever the interleaving.
func TestCVE_2021_30465_SymlinkExchangeRace(t *testing.T) {
	tries := 100
	if testing.Short() {
		tries = 10
	}
	for _, flavour := range []string{"absolute", "relative"} {
		t.Run(flavour, func(t *testing.T) {
			raceMounts(t, flavour, tries)
		})
	}
}

func raceMounts(t *testing.T, flavour string, tries int) {
	r := newRT(t)
	hostDir := t.TempDir() // the attacker's aim: a host directory outside the rootfs
	src, _ := markerDir(t)
	b := newBundle(t, bundle.WithArgs("true"), bundle.WithMounts(
		specs.Mount{Destination: "/mnt/race/tmp/sub", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=64k"}},
		specs.Mount{Destination: "/mnt/race/bind", Type: "bind", Source: src, Options: []string{"rbind"}},
	))
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	race := filepath.Join(b.Rootfs, "mnt", "race")
	link := filepath.Join(b.Rootfs, "mnt", "racelink")
	if err := os.MkdirAll(race, 0o755); err != nil {
		t.Fatal(err)
	}
	target := hostDir
	if flavour == "relative" {
		target = strings.Repeat("../", 16) + strings.TrimPrefix(hostDir, "/")
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// Inside the root the symlink resolves to rootfs/<hostDir>: let that exist so that the
	// mounts can land there.
	if err := os.MkdirAll(filepath.Join(b.Rootfs, hostDir), 0o755); err != nil {
		t.Fatal(err)
	}
	bundleBefore := listDir(t, b.Dir)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var swaps atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if err := unix.Renameat2(unix.AT_FDCWD, race, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("renameat2: %v", err)
				return
			}
			swaps.Add(1)
		}
	}()
	var mu sync.Mutex
	var seen []string
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) < 20 {
			seen = append(seen, s)
		}
	}
	// watch the host while the containers are made
	go func() {
		defer wg.Done()
		for !stop.Load() {
			for _, m := range hostMountsBelow(hostDir, b.Dir) {
				note("host mount " + m)
			}
			if ents, _ := os.ReadDir(hostDir); len(ents) > 0 {
				note("host directory " + hostDir + " got " + ents[0].Name())
			}
			time.Sleep(500 * time.Microsecond)
		}
	}()
	ok, failed := 0, 0
	var lastErr string
	for i := 0; i < tries; i++ {
		res := r.runBundle(b, containerID("cve-2021-30465"))
		if res.Err == nil {
			ok++
		} else {
			failed++
			lastErr = strings.TrimSpace(res.Stderr)
		}
	}
	stop.Store(true)
	wg.Wait()
	// leave the directory in place for the checks below
	if fi, err := os.Lstat(race); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		unix.Renameat2(unix.AT_FDCWD, race, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE)
	}
	t.Logf("%d containers started, %d refused (last: %s); %d swaps", ok, failed, lastErr, swaps.Load())
	for _, s := range seen {
		t.Errorf("during the race: %s", s)
	}
	if m := hostMountsBelow(hostDir, b.Dir); len(m) > 0 {
		t.Errorf("host mounts left: %v", m)
	}
	if got := listDir(t, hostDir); got != "" {
		t.Errorf("the host directory %s outside the rootfs was written to: %s", hostDir, got)
	}
	if got := listDir(t, b.Dir); got != bundleBefore {
		t.Errorf("the bundle directory changed: %q -> %q", bundleBefore, got)
	}
	if ents, _ := os.ReadDir(src); len(ents) != 1 {
		t.Errorf("the bind source %s changed: %v", src, ents)
	}
}

// hostMountsBelow lists the host's (this process's) mounts at or below any of dirs.
func hostMountsBelow(dirs ...string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return []string{err.Error()}
	}
	var res []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		p := bundle.UnescapeMountinfo(f[4])
		for _, d := range dirs {
			if p == d || strings.HasPrefix(p, d+"/") {
				res = append(res, l)
			}
		}
	}
	return res
}
