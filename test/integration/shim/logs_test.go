package shim_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/test/bundle"
)

// TestLogsJSONFile: stdout and stderr lines in dockerd's json-file format, byte for byte.
func TestLogsJSONFile(t *testing.T) {
	script := `echo out1; echo err1 >&2; printf 'q"<&>\t\\\n'; printf '\342\200\250\377\n'; printf 'no-newline'`
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", script)})
	f.start()
	if e := f.wait(); e.Code != 0 || e.OOMKilled {
		t.Fatalf("exit %+v", e)
	}
	entries := readLog(t, f.cfg.LogPath)
	out, errs := messages(entries, "stdout"), messages(entries, "stderr")
	want := []string{"out1\n", "q\"<&>\t\\\n", "\u2028\ufffd\n", "no-newline"}
	if strings.Join(out, "|") != strings.Join(want, "|") {
		t.Errorf("stdout messages %q, want %q", out, want)
	}
	if len(errs) != 1 || errs[0] != "err1\n" {
		t.Errorf("stderr messages %q, want [\"err1\\n\"]", errs)
	}
	// dockerd's encoder: \u00XX for < > & and control characters, \u2028, \ufffd
	raw := map[string]bool{}
	for _, e := range entries {
		raw[e.Raw[:strings.Index(e.Raw, `,"time":`)]] = true
	}
	for _, w := range []string{
		`{"log":"out1\n","stream":"stdout"`,
		`{"log":"err1\n","stream":"stderr"`,
		`{"log":"q\"\u003c\u0026\u003e\u0009\\\n","stream":"stdout"`,
		`{"log":"\u2028\ufffd\n","stream":"stdout"`,
		`{"log":"no-newline","stream":"stdout"`,
	} {
		if !raw[w] {
			t.Errorf("no log line starting %s in:\n%s", w, rawLines(entries))
		}
	}
	st, err := os.Stat(f.cfg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("log mode %v, want 0640", st.Mode().Perm())
	}
}

func rawLines(entries []logEntry) string {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Raw + "\n")
	}
	return b.String()
}

// TestLogsLongLines: a line longer than 16 KiB is logged as 16 KiB partial messages (without a
// newline) sharing one time, as dockerd does; so is what is left when the output ends.
func TestLogsLongLines(t *testing.T) {
	script := `head -c 40000 /dev/zero | tr '\0' a; echo; head -c 16384 /dev/zero | tr '\0' b; echo; echo short; head -c 100 /dev/zero | tr '\0' c`
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", script)})
	f.start()
	if e := f.wait(); e.Code != 0 {
		t.Fatalf("exit %+v", e)
	}
	entries := readLog(t, f.cfg.LogPath)
	out := messages(entries, "stdout")
	want := []string{
		strings.Repeat("a", 16384), strings.Repeat("a", 16384), strings.Repeat("a", 40000-2*16384) + "\n",
		strings.Repeat("b", 16384), "\n",
		"short\n",
		strings.Repeat("c", 100),
	}
	if len(out) != len(want) {
		t.Fatalf("%d stdout messages (%s), want %d (%s)", len(out), summarize(out), len(want), summarize(want))
	}
	for i := range want {
		if out[i] != want[i] {
			t.Errorf("message %d: %s, want %s", i, summarize(out[i:i+1]), summarize(want[i:i+1]))
		}
	}
	if entries[0].Time != entries[1].Time || entries[1].Time != entries[2].Time {
		t.Errorf("pieces of one line have different times: %s %s %s", entries[0].Time, entries[1].Time, entries[2].Time)
	}
}

// summarize shows messages as length and first byte.
func summarize(msgs []string) string {
	var parts []string
	for _, m := range msgs {
		if len(m) > 20 {
			parts = append(parts, fmt.Sprintf("%d×%q+%q", len(m), m[0], m[len(m)-1]))
		} else {
			parts = append(parts, fmt.Sprintf("%q", m))
		}
	}
	return strings.Join(parts, " ")
}

const countScript = `i=1; while [ $i -le 200 ]; do echo line-$i; i=$((i+1)); done`

// TestLogRotation: with max-size and max-file 3, the log rotates before it would grow past
// max-size into path.1 and path.2, the oldest dropped, and nothing is lost in the files kept.
func TestLogRotation(t *testing.T) {
	const maxSize = 2000
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", countScript)}, withLog(maxSize, 3))
	f.start()
	if e := f.wait(); e.Code != 0 {
		t.Fatalf("exit %+v", e)
	}
	var all []string
	for _, p := range []string{f.cfg.LogPath + ".2", f.cfg.LogPath + ".1", f.cfg.LogPath} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("rotated log: %v", err)
		}
		if st.Size() > maxSize {
			t.Errorf("%s: %d bytes, more than max-size %d", filepath.Base(p), st.Size(), maxSize)
		}
		if st.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, want 0640", filepath.Base(p), st.Mode().Perm())
		}
		msgs := messages(readLog(t, p), "stdout")
		if p != f.cfg.LogPath && st.Size() <= maxSize-100 { // messages are about 80 bytes
			t.Errorf("%s: rotated before it was full (%d bytes)", filepath.Base(p), st.Size())
		}
		all = append(all, msgs...)
	}
	if _, err := os.Stat(f.cfg.LogPath + ".3"); err == nil {
		t.Errorf("%s.3 exists with max-file 3", filepath.Base(f.cfg.LogPath))
	}
	checkConsecutive(t, all)
}

// TestLogRotationOneFile: with max-file 1 the log is removed and started again.
func TestLogRotationOneFile(t *testing.T) {
	const maxSize = 2000
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", countScript)}, withLog(maxSize, 1))
	f.start()
	if e := f.wait(); e.Code != 0 {
		t.Fatalf("exit %+v", e)
	}
	st, err := os.Stat(f.cfg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > maxSize {
		t.Errorf("log is %d bytes, more than max-size %d", st.Size(), maxSize)
	}
	if matches, _ := filepath.Glob(f.cfg.LogPath + ".*"); len(matches) > 0 {
		t.Errorf("rotated files with max-file 1: %v", matches)
	}
	msgs := messages(readLog(t, f.cfg.LogPath), "stdout")
	if len(msgs) == 0 || msgs[0] == "line-1\n" {
		t.Fatalf("log was not rotated: %q", msgs)
	}
	checkConsecutive(t, msgs)
}

// checkConsecutive checks that msgs are "line-k\n" ... "line-200\n".
func checkConsecutive(t *testing.T, msgs []string) {
	t.Helper()
	if len(msgs) == 0 {
		t.Fatal("no messages")
	}
	var first int
	if _, err := fmt.Sscanf(msgs[0], "line-%d\n", &first); err != nil {
		t.Fatalf("first message %q", msgs[0])
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("line-%d\n", first+i); m != want {
			t.Fatalf("message %d is %q, want %q (lost or reordered)", i, m, want)
		}
	}
	if last := msgs[len(msgs)-1]; last != "line-200\n" {
		t.Errorf("last message %q, want line-200", last)
	}
}
