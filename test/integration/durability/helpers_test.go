package durability_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/test/berthtest"
)

// waitTimeout bounds every wait for something a healthy berthd, shim or container does
// promptly. It is a bound against hangs, never an assertion on how long things take.
const waitTimeout = 60 * time.Second

// start starts a private berthd with a busybox image, or skips the test when not root.
func start(t *testing.T) (*berthtest.Daemon, string) {
	t.Helper()
	if skipAll != "" {
		t.Skip(skipAll)
	}
	d := berthtest.Start(t, berthtest.Options{})
	return d, d.Busybox("busybox:durability")
}

// waitFor polls cond until it holds or waitTimeout passes, then fails the test with what
// was awaited and cond's last explanation.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v: %s", what, waitTimeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stream is a `docker logs -f` (or any docker command) whose output lines are collected as
// they come.
type stream struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{} // closed when the command has exited
	err    error         // its exit, once done is closed

	mu     sync.Mutex
	lines  []string
	stderr strings.Builder
}

// follow starts the docker CLI with args and collects its standard output line by line.
func follow(t *testing.T, d *berthtest.Daemon, args ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{cancel: cancel, done: make(chan struct{})}
	s.cmd = d.Cmd(ctx, args...)
	s.cmd.WaitDelay = 5 * time.Second
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.stderr.Write(p)
	})
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Lines is a copy of the lines read so far.
func (s *stream) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// Stderr is what the command wrote on its standard error so far.
func (s *stream) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// exited reports whether the command has exited.
func (s *stream) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// lastNumber is the number on the last line read (0 when none).
func (s *stream) lastNumber() int {
	l := s.Lines()
	if len(l) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(l[len(l)-1]))
	return n
}

// checkSequence reports the first problem with lines being exactly "1", "2", ... "len".
func checkSequence(lines []string) error {
	for i, l := range lines {
		n, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil {
			return fmt.Errorf("line %d is %q, not a number", i+1, l)
		}
		if n != i+1 {
			return fmt.Errorf("line %d is %d (after %v): a gap or a repeat", i+1, n, lines[max(0, i-3):i])
		}
	}
	return nil
}

// fileSize is the size of path (-1 when it cannot be read).
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	return end > 0 && end+2 < len(s) && s[end+2] != 'Z' && s[end+2] != 'X'
}

// shimDir is the shim directory of container id.
func shimDir(d *berthtest.Daemon, id string) string {
	return filepath.Join(d.ExecRoot, "shims", id)
}

// fdCount is the number of open descriptors of pid.
func fdCount(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
