package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testWriter writes a json-file log as berth-shim does: one write(2) per
// message, rotation before a write that would pass maxSize (path.N-2 to
// path.N-1, ..., path to path.1, new path; or remove and recreate with
// one file).
type testWriter struct {
	t       testing.TB
	mu      sync.Mutex
	path    string
	f       *os.File
	size    int64
	maxSize int64
	maxFile int
	clock   time.Time
	seq     int
}

func newTestWriter(t testing.TB, path string, maxSize int64, maxFile int) *testWriter {
	return &testWriter{t: t, path: path, maxSize: maxSize, maxFile: maxFile,
		clock: time.Now().UTC().Truncate(time.Second)}
}

// write logs text on stream and returns the message's time.
func (w *testWriter) write(stream, text string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeLocked(stream, text)
}

// skip moves the writer's clock forward by d.
func (w *testWriter) skip(d time.Duration) {
	w.mu.Lock()
	w.clock = w.clock.Add(d)
	w.mu.Unlock()
}

func (w *testWriter) writeLocked(stream, text string) time.Time {
	w.clock = w.clock.Add(time.Millisecond)
	b := Encode(nil, Message{Stream: stream, Time: w.clock, Line: []byte(text)})
	if w.f == nil || w.maxSize > 0 && w.size > 0 && w.size+int64(len(b)) > w.maxSize {
		w.rotate()
	}
	n, err := w.f.Write(b)
	if err != nil || n != len(b) {
		w.t.Errorf("write: %d, %v", n, err)
	}
	w.size += int64(n)
	return w.clock
}

// next logs "<seq>\n" on stdout and returns seq.
func (w *testWriter) next() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.seq
	w.seq++
	w.writeLocked("stdout", strconv.Itoa(s)+"\n")
	return s
}

func (w *testWriter) rotate() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
		if w.maxFile <= 1 {
			if err := os.Remove(w.path); err != nil {
				w.t.Errorf("remove: %v", err)
			}
		} else {
			for i := w.maxFile - 1; i > 1; i-- {
				err := os.Rename(fmt.Sprintf("%s.%d", w.path, i-1), fmt.Sprintf("%s.%d", w.path, i))
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					w.t.Errorf("rename: %v", err)
				}
			}
			if err := os.Rename(w.path, w.path+".1"); err != nil {
				w.t.Errorf("rename: %v", err)
			}
		}
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		w.t.Fatalf("create: %v", err)
	}
	w.f, w.size = f, 0
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// collect runs Read and returns the messages.
func collect(t *testing.T, path string, maxFiles int, opts Options) []Message {
	t.Helper()
	var got []Message
	err := Read(context.Background(), path, maxFiles, opts, func(m Message) error {
		got = append(got, m)
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got
}

func texts(ms []Message) []string {
	var s []string
	for _, m := range ms {
		s = append(s, string(m.Line))
	}
	return s
}

// seqs parses messages written by testWriter.next.
func seqs(t *testing.T, ms []Message) []int {
	t.Helper()
	var out []int
	for _, m := range ms {
		n, err := strconv.Atoi(strings.TrimSuffix(string(m.Line), "\n"))
		if err != nil {
			t.Fatalf("message %q", m.Line)
		}
		out = append(out, n)
	}
	return out
}

func checkRun(t *testing.T, got []int, first, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d messages, want %d (%v)", len(got), n, got)
	}
	for i, s := range got {
		if s != first+i {
			t.Fatalf("message %d is %d, want %d (%v)", i, s, first+i, got)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("x", 3600))
	b := Encode(nil, Message{Stream: "stderr", Time: at, Line: []byte("a \"q\" <b>\tc\n")})
	want := `{"log":"a \"q\" \u003cb\u003e\tc\n","stream":"stderr","time":"2025-06-07T07:09:10.123456789Z"}` + "\n"
	if string(b) != want {
		t.Fatalf("Encode = %s, want %s", b, want)
	}
	m, err := decode(bytes.TrimSuffix(b, []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	if m.Stream != "stderr" || !m.Time.Equal(at) || string(m.Line) != "a \"q\" <b>\tc\n" || m.Partial {
		t.Fatalf("decode = %+v", m)
	}
	// The shim's escaping (\u00XX for control characters) decodes too.
	m, err = decode([]byte(`{"log":"x\u0001\u003c\ufffd","stream":"stdout","time":"2025-01-01T00:00:00.5Z"}`))
	if err != nil || string(m.Line) != "x\x01<\ufffd" || !m.Partial {
		t.Fatalf("decode = %+v, %v", m, err)
	}
	for _, bad := range []string{``, `{}`, `{"log":"x"}`, `{"log":"x","stream":"stdout","time":"yesterday"}`, `{"log":"x","stream":"stdout","time":"2025-01-01T00:00:00Z"`} {
		if _, err := decode([]byte(bad)); err == nil {
			t.Errorf("decode(%q) succeeded", bad)
		}
	}
}

func TestReadAllAndPartial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w := newTestWriter(t, path, 0, 1)
	w.write("stdout", "one\n")
	w.write("stderr", strings.Repeat("x", 100)) // a piece of a long line
	w.write("stderr", "end of it\n")
	w.write("stdout", "no newline at exit")
	w.close()
	got := collect(t, path, 1, Options{Tail: -1, Stdout: true, Stderr: true})
	want := []string{"one\n", strings.Repeat("x", 100), "end of it\n", "no newline at exit"}
	if fmt.Sprint(texts(got)) != fmt.Sprint(want) {
		t.Fatalf("got %q", texts(got))
	}
	partial := []bool{false, true, false, true}
	streams := []string{"stdout", "stderr", "stderr", "stdout"}
	for i, m := range got {
		if m.Partial != partial[i] || m.Stream != streams[i] {
			t.Errorf("message %d: %+v", i, m)
		}
		if i > 0 && !m.Time.After(got[i-1].Time) {
			t.Errorf("message %d: time %v not after %v", i, m.Time, got[i-1].Time)
		}
	}
	// Neither stream chosen reads both; one stream filters.
	if n := len(collect(t, path, 1, Options{Tail: -1})); n != 4 {
		t.Errorf("no stream chosen: %d messages", n)
	}
	if got := texts(collect(t, path, 1, Options{Tail: -1, Stderr: true})); len(got) != 2 || got[1] != "end of it\n" {
		t.Errorf("stderr only: %q", got)
	}
}

func TestMissingLog(t *testing.T) {
	dir := t.TempDir()
	if got := collect(t, filepath.Join(dir, "none.log"), 3, Options{Tail: -1}); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
	err := Read(context.Background(), filepath.Join(dir, "nodir", "x.log"), 1, Options{Follow: true}, func(Message) error { return nil })
	if err == nil {
		t.Fatal("following in a missing directory succeeded")
	}
}

func TestTailAcrossFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	// About 8 messages per file, 4 files kept.
	w := newTestWriter(t, path, 8*80, 4)
	for range 100 {
		w.next()
	}
	w.close()
	all := seqs(t, collect(t, path, 4, Options{Tail: -1}))
	if len(all) == 0 || all[len(all)-1] != 99 || len(all) > 40 {
		t.Fatalf("all: %v", all)
	}
	checkRun(t, all, all[0], len(all))
	for _, n := range []int{0, 1, 2, 7, 8, 9, 15, 16, 17, 24, len(all) - 1, len(all), len(all) + 1, 1000} {
		got := seqs(t, collect(t, path, 4, Options{Tail: n}))
		want := min(n, len(all))
		checkRun(t, got, 100-want, want)
	}
	// With fewer files than the writer keeps, the older ones are not read.
	if got := seqs(t, collect(t, path, 2, Options{Tail: -1})); got[0] <= all[0] {
		t.Fatalf("max-file 2 read %v", got)
	}
	// Tail counts every message, the streams are filtered after.
	w2 := newTestWriter(t, filepath.Join(t.TempDir(), "l"), 0, 1)
	for i := range 10 {
		w2.write([]string{"stdout", "stderr"}[i%2], fmt.Sprintf("%d\n", i))
	}
	w2.close()
	if got := texts(collect(t, w2.path, 1, Options{Tail: 4, Stdout: true})); fmt.Sprint(got) != fmt.Sprint([]string{"6\n", "8\n"}) {
		t.Fatalf("tail 4 of stdout: %q", got)
	}
}

func TestTailLongLines(t *testing.T) {
	// Lines longer than the read chunk, and a file of one line.
	path := filepath.Join(t.TempDir(), "c-json.log")
	w := newTestWriter(t, path, 0, 1)
	var want []string
	for i := range 5 {
		s := strings.Repeat(string(rune('a'+i)), readChunk+i*1000) + "\n"
		w.write("stdout", s)
		want = append(want, s)
	}
	w.close()
	for n := 1; n <= 6; n++ {
		got := texts(collect(t, path, 1, Options{Tail: n}))
		k := min(n, 5)
		if fmt.Sprint(got) != fmt.Sprint(want[5-k:]) {
			t.Fatalf("tail %d: %d messages", n, len(got))
		}
	}
}

func TestSinceUntil(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w := newTestWriter(t, path, 300, 3)
	var times []time.Time
	for range 20 {
		w.next()
		times = append(times, w.clock)
	}
	w.close()
	all := seqs(t, collect(t, path, 3, Options{Tail: -1}))
	first := all[0]
	at := func(s int) time.Time { return times[s] }
	// Since keeps messages at or after it.
	got := seqs(t, collect(t, path, 3, Options{Tail: -1, Since: at(15)}))
	checkRun(t, got, 15, 5)
	// Until keeps messages at or before it.
	got = seqs(t, collect(t, path, 3, Options{Tail: -1, Until: at(first + 2)}))
	checkRun(t, got, first, 3)
	got = seqs(t, collect(t, path, 3, Options{Tail: -1, Since: at(16), Until: at(17)}))
	checkRun(t, got, 16, 2)
	// Tail first, then Since (as dockerd): the last 3 of which those since 18.
	got = seqs(t, collect(t, path, 3, Options{Tail: 3, Since: at(18)}))
	checkRun(t, got, 18, 2)
	// A Since after everything gives nothing.
	if got := collect(t, path, 3, Options{Tail: -1, Since: at(19).Add(time.Nanosecond)}); len(got) != 0 {
		t.Fatalf("since after the end: %v", got)
	}
}

func TestTornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w := newTestWriter(t, path, 0, 1)
	w.write("stdout", "a\n")
	w.write("stdout", "b\n")
	w.close()
	// A write in progress: half a record at the end.
	rec := Encode(nil, Message{Stream: "stdout", Time: time.Now(), Line: []byte("c\n")})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(rec[:10]); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int][]string{-1: {"a\n", "b\n"}, 1: {"b\n"}, 2: {"a\n", "b\n"}, 3: {"a\n", "b\n"}} {
		got := texts(collect(t, path, 1, Options{Tail: n}))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("tail %d: %q, want %q", n, got, want)
		}
	}
	// A follower gets the line once the write completes, whole and once.
	done := make(chan struct{})
	msgs := make(chan Message, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- Read(context.Background(), path, 1, Options{Tail: 1, Follow: true, Done: done}, func(m Message) error {
			msgs <- m
			return nil
		})
	}()
	if m := <-msgs; string(m.Line) != "b\n" {
		t.Fatalf("first message %q", m.Line)
	}
	if _, err := f.Write(rec[10:]); err != nil {
		t.Fatal(err)
	}
	if m := <-msgs; string(m.Line) != "c\n" {
		t.Fatalf("completed message %q", m.Line)
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 0 {
		t.Fatalf("extra message %q", (<-msgs).Line)
	}
}

func TestSkipsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	var b []byte
	b = Encode(b, Message{Stream: "stdout", Time: time.Now(), Line: []byte("1\n")})
	b = append(b, "not json\n\n{\"log\":1}\n"...)
	b = Encode(b, Message{Stream: "stdout", Time: time.Now(), Line: []byte("2\n")})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := texts(collect(t, path, 1, Options{Tail: -1})); fmt.Sprint(got) != fmt.Sprint([]string{"1\n", "2\n"}) {
		t.Fatalf("got %q", got)
	}
}

func TestEmitErrorAndCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w := newTestWriter(t, path, 0, 1)
	w.next()
	w.next()
	defer w.close()
	stop := errors.New("client went away")
	n := 0
	err := Read(context.Background(), path, 1, Options{Tail: -1, Follow: true}, func(Message) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Read = %v after %d messages", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan struct{}, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- Read(ctx, path, 1, Options{Tail: -1, Follow: true}, func(Message) error {
			got <- struct{}{}
			return nil
		})
	}()
	<-got
	<-got
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v", err)
	}
}

// follower runs a following Read on a goroutine and hands its messages
// over one at a time.
type follower struct {
	msgs chan Message
	errc chan error
	done chan struct{}
}

func follow(path string, maxFiles int, opts Options) *follower {
	f := &follower{msgs: make(chan Message), errc: make(chan error, 1), done: make(chan struct{})}
	opts.Follow = true
	if opts.Done == nil {
		opts.Done = f.done
	}
	go func() {
		f.errc <- Read(context.Background(), path, maxFiles, opts, func(m Message) error {
			f.msgs <- m
			return nil
		})
		close(f.msgs)
	}()
	return f
}

// expect receives the messages seq first..first+n-1.
func (f *follower) expect(t *testing.T, first, n int) {
	t.Helper()
	for i := range n {
		m, ok := <-f.msgs
		if !ok {
			t.Fatalf("reader ended (%v) before message %d", <-f.errc, first+i)
		}
		s, err := strconv.Atoi(strings.TrimSpace(string(m.Line)))
		if err != nil || s != first+i {
			t.Fatalf("got message %q, want %d", m.Line, first+i)
		}
	}
}

// finish tells the reader the writer is done and checks it ends with no
// more messages.
func (f *follower) finish(t *testing.T) {
	t.Helper()
	close(f.done)
	if m, ok := <-f.msgs; ok {
		t.Fatalf("extra message %q", m.Line)
	}
	if err := <-f.errc; err != nil {
		t.Fatalf("Read: %v", err)
	}
}

func TestFollowAcrossRotations(t *testing.T) {
	for _, maxFile := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("max-file=%d", maxFile), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c-json.log")
			w := newTestWriter(t, path, 5*80, maxFile) // about 5 messages a file
			defer w.close()
			for range 12 {
				w.next()
			}
			f := follow(path, maxFile, Options{Tail: 2})
			f.expect(t, 10, 2)
			// One message at a time: every rotation happens while the
			// reader waits at the end of the live file.
			for i := 12; i < 40; i++ {
				w.next()
				f.expect(t, i, 1)
			}
			// Bursts that rotate before the reader looks, as many times as
			// the kept files allow without dropping the one it reads.
			burst := 4 * max(maxFile-1, 1)
			for i := 40; i < 40+5*burst; i += burst {
				for range burst {
					w.next()
				}
				f.expect(t, i, burst)
			}
			f.finish(t)
		})
	}
}

func TestFollowBeforeCreation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	f := follow(path, 2, Options{Tail: -1})
	w := newTestWriter(t, path, 3*80, 2)
	defer w.close()
	for i := range 10 {
		w.next()
		f.expect(t, i, 1)
	}
	f.finish(t)
}

func TestFollowDoneReadsToEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w := newTestWriter(t, path, 0, 1)
	for range 5 {
		w.next()
	}
	w.close()
	done := make(chan struct{})
	close(done) // the writer finished before the reader started
	got := seqs(t, collect(t, path, 1, Options{Tail: -1, Follow: true, Done: done}))
	checkRun(t, got, 0, 5)
}

func TestFollowUntil(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w := newTestWriter(t, path, 0, 1)
	defer w.close()
	for range 3 {
		w.next()
	}
	// A message after Until ends the follow.
	f := follow(path, 1, Options{Tail: -1, Until: w.clock.Add(time.Hour)})
	f.expect(t, 0, 3)
	w.next()
	f.expect(t, 3, 1)
	w.skip(2 * time.Hour)
	w.next() // after Until
	if m, ok := <-f.msgs; ok {
		t.Fatalf("message after Until: %q", m.Line)
	}
	if err := <-f.errc; err != nil {
		t.Fatal(err)
	}
	// So does the clock passing Until with nothing written.
	got := seqs(t, collect(t, path, 1, Options{Tail: 2, Follow: true, Until: time.Now().Add(20 * time.Millisecond)}))
	checkRun(t, got, 3, 1) // 4 is after Until
}

func TestConcurrentAppends(t *testing.T) {
	// Several goroutines write while readers follow and others read
	// snapshots: every snapshot is a contiguous run (no message twice or
	// missing, no torn line), and a follower gets every message once.
	path := filepath.Join(t.TempDir(), "c-json.log")
	w := newTestWriter(t, path, 4096, 1000)
	defer w.close()
	const writers, each = 4, 300
	f := follow(path, 1000, Options{Tail: -1})
	var got []int
	doneReading := make(chan struct{})
	go func() {
		defer close(doneReading)
		for m := range f.msgs {
			s, _ := strconv.Atoi(strings.TrimSpace(string(m.Line)))
			got = append(got, s)
		}
	}()
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				w.next()
			}
		}()
	}
	snapshots := make(chan []int, 8)
	var rg sync.WaitGroup
	for range 4 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for range 10 {
				var s []int
				err := Read(context.Background(), path, 1000, Options{Tail: -1}, func(m Message) error {
					n, _ := strconv.Atoi(strings.TrimSpace(string(m.Line)))
					s = append(s, n)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				snapshots <- s
			}
		}()
	}
	go func() { rg.Wait(); close(snapshots) }()
	for s := range snapshots {
		checkRun(t, s, 0, len(s))
	}
	wg.Wait()
	close(f.done)
	<-doneReading
	if err := <-f.errc; err != nil {
		t.Fatal(err)
	}
	seen := make(map[int]bool)
	for _, s := range got {
		if seen[s] {
			t.Fatalf("follower got %d twice", s)
		}
		seen[s] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("follower got %d messages, want %d", len(seen), writers*each)
	}
}

func TestLogName(t *testing.T) {
	for name, want := range map[string]bool{
		"c-json.log": true, "c-json.log.1": true, "c-json.log.12": true,
		"c-json.log.": false, "c-json.log.x": false, "c-json.logx": false, "hosts": false, "c-json.lo": false,
	} {
		if logName(name, "c-json.log") != want {
			t.Errorf("logName(%q) = %v", name, !want)
		}
	}
}

// rchar is the bytes this process has read so far (/proc/self/io).
func rchar(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Skip("no rchar in /proc/self/io")
	return 0
}

func TestTailReadsOnlyTheEnd(t *testing.T) {
	// A rotated file of 64 MiB (a hole, then records) and a small live
	// one: the last messages are found by reading a little of each, from
	// their ends.
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	seq := 0
	write := func(name string, hole int64, n int) {
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var b []byte
		if hole > 0 {
			if _, err := f.Seek(hole, 0); err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n') // ends the hole as a (garbage) line
		}
		for range n {
			b = Encode(b, Message{Stream: "stdout", Time: time.Now(), Line: []byte(fmt.Sprintf("%d\n", seq))})
			seq++
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	write(path+".1", 64<<20, 10)
	write(path, 0, 3)
	before := rchar(t)
	got := seqs(t, collect(t, path, 2, Options{Tail: 5}))
	read := rchar(t) - before
	checkRun(t, got, 8, 5)
	if read > 1<<20 {
		t.Fatalf("read %d bytes for the last 5 messages of 64 MiB", read)
	}
}
