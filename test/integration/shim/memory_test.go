package shim_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/test/bundle"
)

// procKB returns a "Name:   N kB" field of a /proc status-like file.
func procKB(t testing.TB, path, name string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == name {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatalf("no %s in %s", name, path)
	return 0
}

// TestIdleShimMemory logs what idle shims (each with a `sleep` container that has logged a
// line) hold: VmRSS (with its anonymous and file parts), PSS from smaps_rollup (the binary's
// pages are shared between shims), and threads. It checks nothing: the numbers are for the
// record (docs, the report).
func TestIdleShimMemory(t *testing.T) {
	const n = 3
	var fs []*fixture
	for i := 0; i < n; i++ {
		f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", "echo started; exec sleep 1000")})
		f.start()
		fs = append(fs, f)
	}
	for _, f := range fs {
		waitFor(t, "the container's first log line", func() bool {
			data, _ := os.ReadFile(f.cfg.LogPath)
			return len(data) > 0
		})
	}
	time.Sleep(time.Second) // let start-up garbage settle; not a measurement of time
	for i, f := range fs {
		pid := f.cmd.Process.Pid
		status := "/proc/" + itoa(pid) + "/status"
		rollup := "/proc/" + itoa(pid) + "/smaps_rollup"
		t.Logf("idle shim %d/%d (pid %d): VmRSS %d kB (RssAnon %d kB, RssFile %d kB), Pss %d kB (Pss_Anon %d kB, Pss_File %d kB), threads %d",
			i+1, n, pid, procKB(t, status, "VmRSS"), procKB(t, status, "RssAnon"), procKB(t, status, "RssFile"),
			procKB(t, rollup, "Pss"), procKB(t, rollup, "Pss_Anon"), procKB(t, rollup, "Pss_File"), procKB(t, status, "Threads"))
	}
}
