package main

// Where berth's load time goes, without touching internal/image: one more
// berth load, unmeasured in the tables, while a sampler takes every
// goroutine's stack every few milliseconds (runtime.Stack). The goroutine
// running Store.Load says which phase the load is in (ingest of the
// archive's blobs, unpack, syncfs, record); the goroutines inside
// berth's packages say what the work in that phase is (sha256, write,
// read, file metadata system calls, fsync, tar parsing, waiting on a
// channel); runtime frames are hidden in these tracebacks, so memmove and
// allocation show as "Go code/runtime in <innermost berth function>", and
// a goroutine woken but not yet running as "runnable in <function>". Wall
// time between two samples goes to what the later sample saw. Optionally a
// CPU profile of the same load (go tool pprof).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const sampleEvery = 10 * time.Millisecond

type phaseReport struct {
	wall       time.Duration
	user, sys  time.Duration
	readBytes  int64 // /proc/self/io read_bytes and write_bytes (block layer)
	writeBytes int64
	samples    int
	order      []string                  // phases in first-seen order
	phase      map[string]time.Duration  // wall time per phase
	work       map[string]map[string]int // phase -> worker state -> samples
	workDur    map[string]map[string]time.Duration
	cpuProfile string
}

// loadPhases are the markers of the goroutine running Store.Load, checked
// innermost frame first.
var loadPhases = []marker{
	{"content.(*Writer).Commit", "ingest: fsync + rename of a small blob"},
	{"image.(*early).finish", "wait for the last layers to be stored and unpacked"},
	{"image.(*op).entryAt", "read the archive's headers and documents (file: layers after)"},
	{"image.(*op).readArchiveAt", "read the archive's headers and documents (file: layers after)"},
	{"image.(*op).readEntry", "read the archive; each layer stored and unpacked as it streams"},
	{"image.(*op).readArchive", "read the archive; each layer stored and unpacked as it streams"},
	{"snapshot.(*Store).Sync", "syncfs of the unpacked layers"},
	{"image.(*op).unpack(", "unpack layers not unpacked while streaming"},
	{"image.(*Store).commitLayers", "commit layers"},
	{"content.(*Store).Sync", "record: fsync blobs dir + db commit"},
	{"image.(*op).record", "record: fsync blobs dir + db commit"},
	{"image.(*op).from", "documents (manifest, config)"},
	{"image.(*op).layoutManifests", "documents (manifest, config)"},
	{"image.Open", "open store"},
}

// workStates classify what a worker goroutine does, innermost frame first.
var workStates = []marker{
	{"sha256", "sha256"},
	{"unix.Fsync", "fsync"},
	{"(*File).Sync", "fsync"},
	{"unix.Syncfs", "syncfs"},
	{"unix.Pwritev", "blob write (O_DIRECT)"},
	{"syscall.pwrite", "write()"},
	{"unix.write(", "write()"},
	{"syscall.write(", "write()"},
	{"unix.read(", "read()"},
	{"syscall.read(", "read()"},
	{"syscall.pread", "read()"},
	{"unix.openat2(", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.openat(", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Fchownat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Fchmodat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.fchmodat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.UtimesNanoAt", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.utimensat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Lsetxattr", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Fsetxattr", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Mkdirat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Mknodat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Symlinkat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Linkat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Unlinkat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Close", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"unix.Fstatat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"syscall.openat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"syscall.renameat", "metadata syscalls (open, chown, chmod, utimes, mkdir, xattr, link, close)"},
	{"archive/tar", "tar parsing"},
	{"runtime.memmove", "memmove"},
	{"runtime.mallocgc", "allocation / GC"},
	{"runtime.gcBgMarkWorker", "allocation / GC"},
	{"runtime.gopark", "waiting"},
	{"runtime.semacquire", "waiting"},
	{"runtime.Gosched", "waiting"},
}

// profiledLoad loads the image once more into a fresh store while sampling.
func (t *berthTool) profiledLoad(ctx context.Context, cpuProfile string) (*phaseReport, error) {
	root := t.root + "-profiled"
	defer os.RemoveAll(root)
	unix.Sync()
	rep := &phaseReport{phase: map[string]time.Duration{}, work: map[string]map[string]int{}, workDur: map[string]map[string]time.Duration{}, cpuProfile: cpuProfile}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		buf := make([]byte, 4<<20)
		last := time.Now()
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			n := runtime.Stack(buf, true)
			now := time.Now()
			rep.add(string(buf[:n]), now.Sub(last))
			last = now
		}
	}()
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	r0, w0 := procIO()
	t0 := time.Now()
	err := berthLoad(ctx, root, t.img)
	rep.wall = time.Since(t0)
	r1, w1 := procIO()
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	close(stop)
	<-done
	rep.user = time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano())
	rep.sys = time.Duration(ru1.Stime.Nano() - ru0.Stime.Nano())
	rep.readBytes, rep.writeBytes = r1-r0, w1-w0
	return rep, err
}

// tracedLoad loads the image once more into a fresh store with an execution
// trace written to path.
func (t *berthTool) tracedLoad(ctx context.Context, path string) error {
	root := t.root + "-traced"
	defer os.RemoveAll(root)
	unix.Sync()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := trace.Start(f); err != nil {
		return err
	}
	t0 := time.Now()
	err = berthLoad(ctx, root, t.img)
	trace.Stop()
	logf("traced load: %.2f s, trace in %s (go tool trace %s)", time.Since(t0).Seconds(), path, path)
	return err
}

// add attributes dt to what one all-goroutine stack dump shows.
func (rep *phaseReport) add(dump string, dt time.Duration) {
	phase := ""
	var workers []string
	for _, g := range strings.Split(dump, "\n\n") {
		frames := funcLines(g)
		has := func(s string) bool {
			return slices.ContainsFunc(frames, func(f string) bool { return strings.Contains(f, s) })
		}
		inLoad := has("image.(*Store).Load(")
		if inLoad {
			phase = classify(frames, loadPhases, "other (store open/close, bbolt)")
		}
		// Every goroutine working for berth (the unpack workers, their
		// read-ahead, the Load goroutine itself unless it only waits for
		// the workers), not the sampler.
		if has("berth/internal/") && !has("profiledLoad.func") && !(inLoad && has("image.(*op).unpack(")) {
			st := status(g)
			if st != "running" && st != "runnable" && st != "syscall" {
				// Parked: the traceback hides the runtime frames.
				workers = append(workers, "waiting ("+st+")")
			} else {
				// No system call, hash or tar frame: Go code whose runtime
				// frames (memmove, allocation) the traceback hides, or
				// (runnable) a goroutine woken but not yet on a CPU; the
				// stop-the-world of the dump also marks the goroutines it
				// preempts runnable, at the instruction they were at.
				dflt := "Go code/runtime in " + innermostBerth(frames)
				if st == "runnable" {
					dflt = "runnable in " + innermostBerth(frames)
				}
				workers = append(workers, classify(frames, workStates, dflt))
			}
		}
	}
	if phase == "" {
		return // before or after Load
	}
	rep.samples++
	if _, ok := rep.phase[phase]; !ok {
		rep.order = append(rep.order, phase)
		rep.work[phase] = map[string]int{}
		rep.workDur[phase] = map[string]time.Duration{}
	}
	rep.phase[phase] += dt
	for _, w := range workers {
		rep.work[phase][w]++
		rep.workDur[phase][w] += dt
	}
}

// status is the state in a traceback's header ("goroutine 7 [chan send]:"),
// without the wait time.
func status(g string) string {
	i := strings.IndexByte(g, '[')
	j := strings.IndexByte(g, ']')
	if i < 0 || j < i {
		return "?"
	}
	st, _, _ := strings.Cut(g[i+1:j], ",")
	return st
}

// funcLines returns the function lines of one goroutine's traceback,
// innermost first.
func funcLines(g string) []string {
	var out []string
	for _, l := range strings.Split(g, "\n") {
		if l == "" || strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "goroutine ") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// marker names what a traceback shows when one of its frames contains
// text.
type marker struct{ text, name string }

// classify returns the name of the first marker found, innermost frame
// first.
func classify(frames []string, table []marker, dflt string) string {
	for _, f := range frames {
		for _, m := range table {
			if strings.Contains(f, m.text) {
				return m.name
			}
		}
	}
	return dflt
}

// innermostBerth is the innermost berth function of a traceback.
func innermostBerth(frames []string) string {
	for _, f := range frames {
		if strings.HasPrefix(f, "berth/") {
			if i := strings.LastIndexByte(f, '('); i > 0 {
				f = f[:i]
			}
			return strings.TrimPrefix(f, "berth/internal/")
		}
	}
	if len(frames) > 0 {
		return frames[0]
	}
	return "?"
}

// procIO reads read_bytes and write_bytes of /proc/self/io (what this
// process made the block layer read and write, including writeback it
// caused, as far as the kernel attributes it).
func procIO() (r, w int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "read_bytes":
			r = n
		case "write_bytes":
			w = n
		}
	}
	return r, w
}

func (rep *phaseReport) print(img *cachedImage) {
	fmt.Printf("## where berth's load goes (one more load, sampled every %v)\n\n", sampleEvery)
	fmt.Printf("wall %.2f s, CPU user %.2f s + sys %.2f s (%.0f%% of one CPU), %d samples; block I/O written %.0f MB (image %.0f MB), read %.0f MB\n\n",
		rep.wall.Seconds(), rep.user.Seconds(), rep.sys.Seconds(), 100*(rep.user+rep.sys).Seconds()/rep.wall.Seconds(), rep.samples,
		mb(rep.writeBytes), mb(img.size()), mb(rep.readBytes))
	fmt.Println("| phase (goroutine running Store.Load) | s | share | what the working goroutines do (goroutine-seconds) |")
	fmt.Println("|---|---:|---:|---|")
	var total time.Duration
	for _, p := range rep.order {
		total += rep.phase[p]
	}
	for _, p := range rep.order {
		type kv struct {
			k string
			v time.Duration
		}
		var ws []kv
		for k, v := range rep.workDur[p] {
			ws = append(ws, kv{k, v})
		}
		slices.SortFunc(ws, func(a, b kv) int { return int(b.v - a.v) })
		var parts []string
		for _, w := range ws {
			if w.v >= 10*time.Millisecond {
				parts = append(parts, fmt.Sprintf("%s %.2f", w.k, w.v.Seconds()))
			}
		}
		fmt.Printf("| %s | %.2f | %.0f%% | %s |\n", p, rep.phase[p].Seconds(), 100*rep.phase[p].Seconds()/total.Seconds(), strings.Join(parts, "; "))
	}
	fmt.Println()
	if rep.cpuProfile != "" {
		abs, _ := filepath.Abs(rep.cpuProfile)
		fmt.Printf("CPU profile of this load: %s (`go tool pprof -top %s`)\n\n", abs, abs)
	}
}
