package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/internal/runtime/child"
)

// runHooks runs hooks in the runtime's namespaces, each with the state on stdin.
func runHooks(ctx context.Context, kind string, hooks []specs.Hook, st State) error {
	if len(hooks) == 0 {
		return nil
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for i, h := range hooks {
		hctx := ctx
		cancel := func() {}
		if h.Timeout != nil {
			if *h.Timeout <= 0 {
				return invalidf("%s hook %d: timeout must be positive", kind, i)
			}
			hctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		}
		cmd := exec.CommandContext(hctx, h.Path)
		if len(h.Args) > 0 {
			cmd.Args = h.Args
		}
		cmd.Env = h.Env
		if cmd.Env == nil {
			cmd.Env = []string{}
		}
		cmd.Stdin = bytes.NewReader(data)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		timedOut := hctx.Err() == context.DeadlineExceeded
		cancel()
		if err != nil {
			if timedOut {
				return fmt.Errorf("%s hook %s: timed out after %ds", kind, h.Path, *h.Timeout)
			}
			return fmt.Errorf("%s hook %s: %v: %s", kind, h.Path, err, strings.TrimSpace(out.String()))
		}
	}
	return nil
}

// runHooksWarn runs every hook even when some fail, logging each failure as a warning: poststart
// and poststop failures must not change the lifecycle (runtime spec).
func (r *Runtime) runHooksWarn(ctx context.Context, kind string, hooks []specs.Hook, st State) {
	for _, h := range hooks {
		if err := runHooks(ctx, kind, []specs.Hook{h}, st); err != nil {
			r.logger().Warn(err.Error())
		}
	}
}

// runHooksIn runs hooks inside the namespaces of process pid (createContainer before pivot_root,
// startContainer after it).
func (r *Runtime) runHooksIn(ctx context.Context, pid int, s *specs.Spec, kind string, hooks []specs.Hook, st State) error {
	if len(hooks) == 0 {
		return nil
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for _, h := range hooks {
		if err := r.runHookIn(ctx, pid, s, kind, h, data); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runtime) runHookIn(ctx context.Context, pid int, s *specs.Spec, kind string, h specs.Hook, state []byte) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("%s hook: container process: %w", kind, err)
	}
	defer unix.Close(pidfd)
	var in, out [2]int
	if err := unix.Pipe2(in[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	stdin := os.NewFile(uintptr(in[1]), "hook-stdin")
	defer stdin.Close()
	if err := unix.Pipe2(out[:], unix.O_CLOEXEC); err != nil {
		unix.Close(in[0])
		return err
	}
	output := os.NewFile(uintptr(out[0]), "hook-output")
	defer output.Close()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		unix.Close(in[0])
		unix.Close(out[1])
		return err
	}
	defer unix.Close(sp[0])
	b := child.NewBuilder(int32(maxFD()+8), sp[1])
	b.Special("reset signal handlers", child.KindResetSignals)
	var flags uintptr
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != specs.PIDNamespace && ns.Type != specs.TimeNamespace {
			flags |= cloneFlags[ns.Type]
		}
	}
	if flags != 0 {
		b.Sys("join container namespaces", unix.SYS_SETNS, uintptr(pidfd), flags)
	}
	b.Sys("stdin", unix.SYS_DUP3, uintptr(in[0]), 0, 0)
	b.Sys("stdout", unix.SYS_DUP3, uintptr(out[1]), 1, 0)
	b.Sys("stderr", unix.SYS_DUP3, uintptr(out[1]), 2, 0)
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	env := h.Env
	b.Sys("exec hook "+h.Path, unix.SYS_EXECVE, b.Str(h.Path), b.StrArray(args), b.StrArray(env))
	before := func() error {
		if hasNS(s, specs.PIDNamespace) {
			return unix.Setns(pidfd, unix.CLONE_NEWPID)
		}
		return nil
	}
	cpid, err := child.Spawn(b.Finish(), 0, before)
	unix.Close(sp[1])
	unix.Close(in[0])
	unix.Close(out[1])
	if err != nil {
		return fmt.Errorf("%s hook %s: %w", kind, h.Path, err)
	}
	execErr := awaitExec(sp[0], b, nil)
	stdin.Write(state)
	stdin.Close()
	outc := make(chan string, 1)
	go func() {
		var buf bytes.Buffer
		buf.ReadFrom(output)
		outc <- buf.String()
	}()
	timeout := time.Duration(1 << 62)
	if h.Timeout != nil {
		timeout = time.Duration(*h.Timeout) * time.Second
	}
	ws, timedOut := waitTimeout(cpid, timeout)
	if execErr != nil {
		return fmt.Errorf("%s hook %s: %w", kind, h.Path, execErr)
	}
	if timedOut {
		return fmt.Errorf("%s hook %s: timed out after %ds", kind, h.Path, *h.Timeout)
	}
	if ws.ExitStatus() != 0 || ws.Signaled() {
		msg := <-outc
		return fmt.Errorf("%s hook %s: exit status %d: %s", kind, h.Path, ws.ExitStatus(), strings.TrimSpace(msg))
	}
	return nil
}

// reap waits for our child pid in the background and delivers its wait status.
func reap(pid int) <-chan unix.WaitStatus {
	done := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		done <- ws
	}()
	return done
}

// waitTimeout reaps pid, killing it after timeout.
func waitTimeout(pid int, timeout time.Duration) (unix.WaitStatus, bool) {
	done := reap(pid)
	select {
	case ws := <-done:
		return ws, false
	case <-time.After(timeout):
		unix.Kill(pid, unix.SIGKILL)
		return <-done, true
	}
}
