package daemon

import (
	"context"
	"os/exec"
	"syscall"
)

func execCommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// killPid sends SIGKILL to a process the caller started (an exec's process).
func killPid(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
