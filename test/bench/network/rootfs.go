package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"berth/test/bench/harness"
)

// indexSize is the size of /www/index.html, the file the web server serves.
const indexSize = 1024

// rootfsTar writes the bench's root filesystem to dir/rootfs.tar and returns its path: the
// busybox-static root filesystem of test/berthtest.BusyboxTar (harness.BusyboxTar), with
// /www/index.html for httpd, and iperf3 with the shared libraries and the dynamic loader
// `ldd` lists for it.
func rootfsTar(dir string) (string, error) {
	return harness.BusyboxTar(dir, func(root string) error {
		if err := os.MkdirAll(filepath.Join(root, "www"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, "www/index.html"), indexHTML(), 0o644); err != nil {
			return err
		}
		return addIperf(root)
	})
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
