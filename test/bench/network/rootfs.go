package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth/test/imagetest"
)

// indexSize is the size of /www/index.html, the file the web server serves.
const indexSize = 1024

// rootfsTar writes the bench's root filesystem to dir/rootfs.tar and returns its path: the
// busybox-static root filesystem of test/berthtest.BusyboxTar (imagetest.BusyboxRootfs),
// with /www/index.html for httpd, and iperf3 with the shared libraries and the dynamic
// loader `ldd` lists for it; then GNU tar.
func rootfsTar(dir string) (path string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	root := filepath.Join(dir, "rootfs")
	defer os.RemoveAll(root)
	path = filepath.Join(dir, "rootfs.tar")
	var t failer
	imagetest.BusyboxRootfs(t, root)
	if err := os.MkdirAll(filepath.Join(root, "www"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "www/index.html"), indexHTML(), 0o644); err != nil {
		return "", err
	}
	if err := addIperf(root); err != nil {
		return "", err
	}
	imagetest.TarDir(t, root, path)
	return path, nil
}

// indexHTML is a page of indexSize bytes.
func indexHTML() []byte {
	head, tail := "<!DOCTYPE html>\n<html><head><title>berth</title></head><body><p>", "</p></body></html>\n"
	return []byte(head + strings.Repeat("x", indexSize-len(head)-len(tail)) + tail)
}

// addIperf copies iperf3, as /usr/bin/iperf3, and what `ldd` lists for it (the shared
// libraries and the loader, at their paths) into root.
func addIperf(root string) error {
	bin, err := lookIperf()
	if err != nil {
		return err
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %v", bin, err)
	}
	files := map[string]string{bin: "/usr/bin/iperf3"}
	for _, l := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "/") {
				files[f] = f
			}
		}
	}
	for src, dst := range files {
		b, err := os.ReadFile(src) // through symlinks: the file itself
		if err != nil {
			return err
		}
		dst = filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// failer is the testing.TB that test/imagetest's helpers take, outside a test: a failure
// panics (rootfsTar recovers it into an error). The helpers call no other method.
type failer struct{ testing.TB }

func (failer) Helper()                      {}
func (failer) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (failer) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
