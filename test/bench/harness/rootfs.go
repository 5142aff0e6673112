package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"berth/test/imagetest"
)

// BusyboxTar writes the busybox-static root filesystem of test/berthtest.BusyboxTar
// (imagetest.BusyboxRootfs), with what add (when not nil) puts into it, to dir/rootfs.tar
// (GNU tar) and returns its path: the image the engine benches import.
func BusyboxTar(dir string, add func(root string) error) (path string, err error) {
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
	if add != nil {
		if err := add(root); err != nil {
			return "", err
		}
	}
	imagetest.TarDir(t, root, path)
	return path, nil
}

// failer is the testing.TB that test/imagetest's helpers take, outside a test: a failure
// panics (BusyboxTar recovers it into an error). The helpers call no other method.
type failer struct{ testing.TB }

func (failer) Helper()                      {}
func (failer) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (failer) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
