package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/test/bundle"
)

// TestExecFailureAfterStart: an executable that passes create's checks but cannot be executed
// (no ELF, no #!) fails after start; the error reaches the process's stderr, which an engine
// logs, instead of vanishing.
func TestExecFailureAfterStart(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithFile("bin/noelf", "echo not an elf\n"), bundle.WithArgs("/bin/noelf"))
	if err := os.Chmod(filepath.Join(c.b.Dir, "rootfs/bin/noelf"), 0o755); err != nil {
		t.Fatal(err)
	}
	errf, err := os.CreateTemp("", "berth-stderr-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	cmd := e.command("create", "--bundle", c.b.Dir, c.id)
	cmd.Stderr = errf
	if err := startTracked(cmd); err != nil {
		t.Fatal(err)
	}
	if err := waitTracked(cmd); err != nil {
		t.Fatalf("create: %v", err)
	}
	ok(t, c.do("start"))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.do("state").Stdout, `"stopped"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	data, _ := os.ReadFile(errf.Name())
	if want := "exec /bin/noelf: exec format error"; !strings.Contains(string(data), want) {
		t.Errorf("stderr %q lacks %q", data, want)
	}
	ok(t, c.do("delete"))
}
