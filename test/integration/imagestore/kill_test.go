package imagestore_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"berth/internal/content"
	"berth/internal/image"
	"berth/test/imagetest"
)

// bulkyLayer is a layer of n files of size bytes each, random content.
func bulkyLayer(t *testing.T, seed int64, n, size int) []byte {
	rnd := rand.New(rand.NewSource(seed))
	var es []imagetest.Entry
	for i := 0; i < n; i++ {
		b := make([]byte, size)
		rnd.Read(b)
		es = append(es, imagetest.Entry{Name: fmt.Sprintf("d%d/f%04d", seed, i), Data: string(b)})
	}
	return imagetest.Tar(t, es)
}

// Acceptance 4: a process killed (SIGKILL) at any point of a load or an
// import leaves no partial image visible, and after the next GC no
// orphaned blob or layer; the store checks clean.
func TestKilledLoadOrImportLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var layers [][]byte
	for i := int64(0); i < 4; i++ {
		layers = append(layers, bulkyLayer(t, i, 400, 16<<10))
	}
	loadFile := filepath.Join(dir, "image.tar")
	os.WriteFile(loadFile, makeArchive(t, "berth-test/killed:1", layers, nil), 0o600)
	importFile := filepath.Join(dir, "rootfs.tar")
	os.WriteFile(importFile, bytes.Join(layers[:1], nil), 0o600)

	// load reads the file at any offset, load-stream reads it as a pipe.
	for _, mode := range []string{"load", "load-stream", "import"} {
		file := loadFile
		if mode == "import" {
			file = importFile
		}
		// How long an uninterrupted run takes, to spread the kills over it.
		full := func() time.Duration {
			root := filepath.Join(t.TempDir(), "store")
			start := time.Now()
			if out, err := childCmd(mode, root, file).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", mode, err, out)
			}
			return time.Since(start)
		}()
		t.Logf("%s takes %v", mode, full)
		for i := 0; i < 12; i++ {
			delay := full * time.Duration(i) / 12
			t.Run(fmt.Sprintf("%s/kill-after-%v", mode, delay.Round(time.Millisecond)), func(t *testing.T) {
				root := filepath.Join(t.TempDir(), "store")
				// A store with an image already in it, which must survive.
				s, err := image.Open(root, image.Options{})
				if err != nil {
					t.Fatal(err)
				}
				keep := imagetest.Tar(t, []imagetest.Entry{{Name: "keep", Data: "kept"}})
				if _, err := s.Load(ctx, bytes.NewReader(makeArchive(t, "berth-test/keep:1", [][]byte{keep}, nil))); err != nil {
					t.Fatal(err)
				}
				flush(t, s)
				s.Close()
				before := storeFiles(t, root)

				cmd := childCmd(mode, root, file)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(delay)
				cmd.Process.Signal(syscall.SIGKILL)
				werr := cmd.Wait()

				s, err = image.Open(root, image.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				ims, err := s.List()
				if err != nil {
					t.Fatal(err)
				}
				// The kill may land after the record was written and before
				// the process exits: then the image is complete. What must
				// never be seen is anything in between.
				finished := len(ims) == 2
				switch {
				case len(ims) != 1 && len(ims) != 2:
					t.Fatalf("%d images visible after a killed %s", len(ims), mode)
				case werr == nil && !finished:
					t.Fatalf("the %s finished, but its image is not visible", mode)
				}
				for _, im := range ims {
					if len(im.RepoTags) == 0 {
						t.Errorf("image %s without its tag", im.ID)
					}
				}
				if _, err := s.GC(ctx); err != nil {
					t.Fatal(err)
				}
				check(t, s)
				if !finished {
					// Nothing of the killed operation is left.
					if after := storeFiles(t, root); !equalIgnoringDB(before, after) {
						t.Errorf("store after kill and GC differs:\n%s", diff(before, after))
					}
				}
				var blobs int
				s.Content.Walk(func(content.Info) error { blobs++; return nil })
				t.Logf("finished=%v blobs=%d", finished, blobs)
			})
		}
	}
}

func childCmd(mode, root, file string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode+":"+root+":"+file)
	return cmd
}

// equalIgnoringDB compares store listings, ignoring the database file's
// size (bbolt grows its file in pages and keeps it).
func equalIgnoringDB(a, b []string) bool {
	strip := func(l []string) []string {
		var out []string
		for _, s := range l {
			if len(s) >= 9 && s[:9] == "images.db" {
				continue
			}
			out = append(out, s)
		}
		return out
	}
	x, y := strip(a), strip(b)
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}
