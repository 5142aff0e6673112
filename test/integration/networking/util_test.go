package networking_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// runCmd runs a command and returns its combined output and exit code.
func runCmd(name string, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}

var (
	udpechoOnce sync.Once
	udpechoBin  string
	udpechoErr  error
)

// udpecho builds test/tools/udpecho (static) once per test binary.
func udpecho(t *testing.T) string {
	t.Helper()
	udpechoOnce.Do(func() {
		dir, err := os.MkdirTemp("/var/tmp", "udpecho-")
		if err != nil {
			udpechoErr = err
			return
		}
		udpechoBin = filepath.Join(dir, "udpecho")
		cmd := exec.Command("go", "build", "-o", udpechoBin, "berth/test/tools/udpecho")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			udpechoErr = fmt.Errorf("go build udpecho: %v\n%s", err, out)
		}
	})
	if udpechoErr != nil {
		t.Fatal(udpechoErr)
	}
	return udpechoBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if udpechoBin != "" {
		os.RemoveAll(filepath.Dir(udpechoBin))
	}
	os.Exit(code)
}

// retry runs fn until it returns "" or attempts run out, and returns the last complaint.
func retry(attempts int, fn func() string) string {
	var last string
	for i := 0; i < attempts; i++ {
		if last = fn(); last == "" {
			return ""
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last
}
