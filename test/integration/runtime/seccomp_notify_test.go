package runtime_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

// TestSeccompNotifyListener: a SCMP_ACT_NOTIFY rule hands the notify fd to the agent listening at
// listenerPath, with the container process state; once the agent closes it, the notified syscall
// fails (ENOSYS) and the container goes on.
func TestSeccompNotifyListener(t *testing.T) {
	e := newEnv(t)
	dir, err := os.MkdirTemp("", "sn") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type got struct {
		state specs.ContainerProcessState
		fds   int
		err   error
	}
	ch := make(chan got, 1)
	go func() {
		var g got
		defer func() { ch <- g }()
		l.SetDeadline(time.Now().Add(30 * time.Second))
		c, err := l.AcceptUnix()
		if err != nil {
			g.err = err
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		oob := make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			g.err = err
			return
		}
		g.err = json.Unmarshal(buf[:n], &g.state)
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			if fds, err := unix.ParseUnixRights(&m); err == nil {
				for _, fd := range fds {
					g.fds++
					unix.Close(fd) // no agent logic: the notified syscalls then fail
				}
			}
		}
	}()
	r := runIn(t, e, "mkdir /tmp/x; echo rc=$?; echo done",
		bundle.WithReadonlyRootfs(false),
		bundle.WithSpec(func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{
				DefaultAction:    specs.ActAllow,
				ListenerPath:     sock,
				ListenerMetadata: "berth-test",
				Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
			}
		}))
	g := <-ch
	if g.err != nil {
		t.Fatalf("agent: %v (runtime: %s)", g.err, r)
	}
	if g.fds != 1 || len(g.state.Fds) != 1 || g.state.Fds[0] != specs.SeccompFdName || g.state.Pid <= 0 || g.state.Metadata != "berth-test" || g.state.State.ID == "" {
		t.Errorf("agent got %d fds and state %+v", g.fds, g.state)
	}
	wantOut(t, r, "rc=1\ndone\n")
}
