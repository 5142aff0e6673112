package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"berth/test/imagetest"
)

// rootfsTar writes the busybox-static root filesystem of test/berthtest.BusyboxTar
// (imagetest.BusyboxRootfs, then GNU tar) to dir/rootfs.tar and returns its path.
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
	imagetest.TarDir(t, root, path)
	return path, nil
}

// failer is the testing.TB that test/imagetest's helpers take, outside a test: a failure
// panics (rootfsTar recovers it into an error). The helpers call no other method.
type failer struct{ testing.TB }

func (failer) Helper()                      {}
func (failer) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (failer) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
