package server

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAppendJSONStringMatchesDockerd(t *testing.T) {
	for in, want := range map[string]string{
		"plain text\n":         `"plain text\n"`,
		"q\"\\":                `"q\"\\"`,
		"<a&b>":                `"\u003ca\u0026b\u003e"`,
		"tab\there\r\n":        `"tab\u0009here\r\n"`,
		"\x00\x1f\x7f":         `"\u0000\u001f` + "\x7f" + `"`,
		"é€😀":                  `"é€😀"`,
		"\u2028\u2029":         `"\u2028\u2029"`,
		"bad\xffutf8\xc3":      `"bad\ufffdutf8\ufffd"`,
		"":                     `""`,
		"mixed <\xff>\u2029ok": `"mixed \u003c\ufffd\u003e\u2029ok"`,
	} {
		got := string(appendJSONString(nil, []byte(in)))
		if got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%s is not JSON: %v", got, err)
		} else if strings.ToValidUTF8(in, "\ufffd") != back && !strings.Contains(in, "\xc3") {
			t.Errorf("%s decodes to %q, want %q", got, back, in)
		}
	}
}

func newTestLog(t *testing.T, maxSize int64, maxFile int) (*logFile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c-json.log")
	l, err := openLogFile(path, FormatJSON, maxSize, maxFile, func(msg string) { t.Errorf("log failure: %s", msg) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.close)
	return l, path
}

func TestJSONLogLine(t *testing.T) {
	l, path := newTestLog(t, 0, 1)
	ts := time.Date(2026, 11, 23, 4, 12, 0, 123456789, time.FixedZone("X", 3600))
	l.write("stdout", []byte("hello\n"), ts, false)
	l.write("stderr", []byte("partial"), ts.Truncate(time.Second), false)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"log":"hello\n","stream":"stdout","time":"2026-11-23T03:12:00.123456789Z"}` + "\n" +
		`{"log":"partial","stream":"stderr","time":"2026-11-23T03:12:00Z"}` + "\n"
	if string(data) != want {
		t.Errorf("log:\n%s\nwant:\n%s", data, want)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != LogMode {
		t.Errorf("mode %v", st.Mode().Perm())
	}
}

// splitAll feeds data to a splitter in chunks of random sizes and returns the messages, with
// the time of each as its index in the sequence of distinct times.
func splitAll(t *testing.T, data []byte, rng *rand.Rand) []string {
	t.Helper()
	l, path := newTestLog(t, 0, 1)
	tick := 0
	ls := &lineSplitter{stream: "stdout", log: l, now: func() time.Time {
		tick++
		return time.Unix(int64(tick), 0)
	}}
	for len(data) > 0 {
		n := 1 + rng.Intn(20000)
		if n > len(data) {
			n = len(data)
		}
		ls.feed(data[:n])
		data = data[n:]
	}
	ls.flush()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		var m struct{ Log, Stream, Time string }
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		ts, _ := time.Parse(time.RFC3339Nano, m.Time)
		out = append(out, strconv.FormatInt(ts.Unix(), 10)+":"+m.Log)
	}
	return out
}

func TestLineSplitter(t *testing.T) {
	a := strings.Repeat("a", 40000)
	b := strings.Repeat("b", MaxLogLine)
	input := "one\n\ntwo\n" + a + "\n" + b + "\nthree\n" + strings.Repeat("c", 100)
	// dockerd's copier: lines (with \n), 16 KiB partial pieces sharing the first piece's time,
	// the remainder at the end as a partial message
	want := []string{
		"1:one\n", "2:\n", "3:two\n",
		"4:" + a[:MaxLogLine], "4:" + a[MaxLogLine:2*MaxLogLine], "4:" + a[2*MaxLogLine:] + "\n",
		"5:" + b, "5:\n",
		"6:three\n",
		"7:" + strings.Repeat("c", 100),
	}
	for seed := int64(0); seed < 20; seed++ {
		got := splitAll(t, []byte(input), rand.New(rand.NewSource(seed)))
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("seed %d: %d messages, want %d\n got %.200q\nwant %.200q", seed, len(got), len(want), got, want)
		}
	}
}

func TestRotation(t *testing.T) {
	for _, maxFile := range []int{1, 2, 3} {
		t.Run("max-file-"+strconv.Itoa(maxFile), func(t *testing.T) {
			const maxSize = 500
			l, path := newTestLog(t, maxSize, maxFile)
			ts := time.Unix(1, 0)
			for i := 0; i < 100; i++ {
				l.write("stdout", []byte("message "+strconv.Itoa(i)+"\n"), ts, false)
			}
			var all []byte
			for i := maxFile - 1; i >= 0; i-- {
				p := path
				if i > 0 {
					p += "." + strconv.Itoa(i)
				}
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if len(data) > maxSize {
					t.Errorf("%s: %d bytes > %d", p, len(data), maxSize)
				}
				all = append(all, data...)
			}
			if _, err := os.Stat(path + "." + strconv.Itoa(maxFile)); err == nil {
				t.Errorf("%d files kept with max-file %d", maxFile+1, maxFile)
			}
			lines := strings.Split(strings.TrimSuffix(string(all), "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(last, `"message 99\n"`) {
				t.Errorf("last line %s", last)
			}
			first := len(lines)
			for i, line := range lines {
				if !strings.Contains(line, `"message `+strconv.Itoa(100-first+i)+`\n"`) {
					t.Fatalf("line %d of %d: %s (lost or reordered)", i, first, line)
				}
			}
		})
	}
}

func TestRotationReaderSeesNewInode(t *testing.T) {
	l, path := newTestLog(t, 200, 1)
	before, _ := os.Stat(path)
	for i := 0; i < 10; i++ {
		l.write("stdout", bytes.Repeat([]byte("x"), 50), time.Unix(1, 0), false)
	}
	after, _ := os.Stat(path)
	if os.SameFile(before, after) {
		t.Errorf("max-file 1 rotation kept the inode")
	}
}

func TestReadOOM(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]bool{
		"oom_kill_disable 0\nunder_oom 0\noom_kill 0\n":               false,
		"oom_kill_disable 0\nunder_oom 0\noom_kill 2\n":               true,
		"low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n":                   true,
		"low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n": false,
		"": false,
	} {
		p := filepath.Join(dir, "f")
		os.WriteFile(p, []byte(content), 0o644)
		if got := readOOM(p); got != want {
			t.Errorf("readOOM(%q) = %v", content, got)
		}
	}
	if readOOM(filepath.Join(dir, "missing")) {
		t.Errorf("a missing file reads as an OOM kill")
	}
}

func TestValidate(t *testing.T) {
	ok := Config{ID: strings.Repeat("ab", 32), Bundle: "b", Dir: "d", Runtime: "r", RuntimeRoot: "rr"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"short id":   func(c *Config) { c.ID = "abc" },
		"upper id":   func(c *Config) { c.ID = strings.Repeat("AB", 32) },
		"no bundle":  func(c *Config) { c.Bundle = "" },
		"no dir":     func(c *Config) { c.Dir = "" },
		"once alone": func(c *Config) { c.StdinOnce = true },
		"neg size":   func(c *Config) { c.LogMaxSize = -1 },
	} {
		c := ok
		mod(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestLogPathAllocations: logging allocates nothing per line once the buffers have grown.
func TestLogPathAllocations(t *testing.T) {
	l, _ := newTestLog(t, 1<<30, 1)
	ls := &lineSplitter{stream: "stdout", log: l, now: time.Now}
	chunk := []byte("first line\nsecond <line> with \"quotes\"\tand é\nand the start of a third ")
	ls.feed(chunk) // grow buffers
	ls.feed([]byte("end\n"))
	if n := testing.AllocsPerRun(200, func() {
		ls.feed(chunk)
		ls.feed([]byte("end\n"))
	}); n != 0 {
		t.Errorf("%v allocations per chunk of lines", n)
	}
}

// TestCRILog: the CRI format has F for a complete line (its newline dropped) and for what
// is left at the end of the stream, P for the 16 KiB pieces of a longer line; reopen starts
// a new file at the path after a rename (kubelet's rotation).
func TestCRILog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	l, err := openLogFile(path, FormatCRI, 0, 1, func(msg string) { t.Errorf("log failure: %s", msg) })
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	ls := &lineSplitter{stream: "stderr", log: l, now: func() time.Time { return time.Unix(1, 5).In(time.FixedZone("X", 3600)) }}
	long := strings.Repeat("x", MaxLogLine)
	ls.feed([]byte("one\ntw"))
	ls.feed([]byte("o\n" + long + "y\nlast"))
	ls.flush()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ts := "1970-01-01T00:00:01.000000005Z"
	want := ts + " stderr F one\n" + ts + " stderr F two\n" + ts + " stderr P " + long + "\n" +
		ts + " stderr F y\n" + ts + " stderr F last\n"
	if string(raw) != want {
		t.Errorf("log:\n%.300s\nwant:\n%.300s", raw, want)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.reopen(); err != nil {
		t.Fatal(err)
	}
	l.write("stdout", []byte("after\n"), time.Unix(2, 0), false)
	if raw, err = os.ReadFile(path); err != nil || string(raw) != "1970-01-01T00:00:02Z stdout F after\n" {
		t.Errorf("log after reopen: %q, %v", raw, err)
	}
}
