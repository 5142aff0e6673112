package cri

import (
	"context"
	"io"
	"time"

	"github.com/moby/moby/api/types/container"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"berth/internal/daemon"
)

// maxExecSyncOutput bounds each of ExecSync's captured streams (as containerd's 16 MiB).
const maxExecSyncOutput = 16 << 20

// ExecSync runs a command in a running container and returns its output and exit code. A
// command past its timeout is killed and the call fails with DeadlineExceeded.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	c, err := s.object(kindContainer, req.ContainerId)
	if err != nil {
		return nil, err
	}
	if len(req.Cmd) == 0 {
		return nil, status.Error(codes.InvalidArgument, "exec command is empty")
	}
	stdout, stderr := daemon.LimitedBuffer{Max: maxExecSyncOutput}, daemon.LimitedBuffer{Max: maxExecSyncOutput}
	var timeout time.Duration
	if req.Timeout > 0 {
		timeout = time.Duration(req.Timeout) * time.Second
	}
	code, err := s.exec(ctx, c.ID, execIO{cmd: req.Cmd, stdout: &stdout, stderr: &stderr}, timeout)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
}

// execIO is an exec's command and streams.
type execIO struct {
	cmd            []string
	tty            bool
	stdin          io.Reader
	stdout, stderr io.Writer
	resize         <-chan [2]uint // height, width
}

// exec runs a command in container id and waits for it: its exit code. With a timeout,
// the process is killed when it passes and the call fails with DeadlineExceeded; when ctx
// ends first, the process is killed too.
func (s *Server) exec(ctx context.Context, id string, eio execIO, timeout time.Duration) (int, error) {
	eid, err := s.d.ExecCreate(ctx, id, container.ExecCreateRequest{Cmd: eio.cmd, Tty: eio.tty,
		AttachStdin: eio.stdin != nil, AttachStdout: eio.stdout != nil, AttachStderr: eio.stderr != nil})
	if err != nil {
		return 0, err
	}
	e, err := s.d.GetExec(eid)
	if err != nil {
		return 0, err
	}
	conn := &daemon.StreamConn{In: eio.stdin, Out: eio.stdout, Err: eio.stderr, TTY: eio.tty}
	errc := make(chan error, 1)
	go func() { errc <- s.d.ExecStart(context.WithoutCancel(ctx), eid, conn, eio.tty) }()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case err := <-errc:
			if err != nil {
				return 0, err
			}
			return e.ExitCode(), nil
		case sz, ok := <-eio.resize:
			if !ok {
				eio.resize = nil
				continue
			}
			s.d.ExecResize(eid, sz[0], sz[1])
		case <-expired:
			s.killExec(eid, errc)
			return 0, status.Errorf(codes.DeadlineExceeded, "command %q timed out after %s", eio.cmd, timeout)
		case <-ctx.Done():
			s.killExec(eid, errc)
			return 0, ctx.Err()
		}
	}
}

// killExec kills an exec's process and waits a little for its end: a child of the process
// that keeps the output pipes open is not waited for.
func (s *Server) killExec(eid string, errc <-chan error) {
	s.d.ExecKill(eid)
	select {
	case <-errc:
	case <-time.After(2 * time.Second):
	}
}
