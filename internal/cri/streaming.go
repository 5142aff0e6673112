package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"berth/internal/daemon"
	"berth/internal/network"
)

// ListenStreaming starts the streaming server that Exec, Attach and PortForward hand out
// URLs of (k8s.io/cri-streaming: SPDY and websocket), on addr (host:port; port 0 picks a
// free one). Stop ends it.
func (s *Server) ListenStreaming(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cri streaming server: %w", err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: l.Addr().String()}
	ss, err := streaming.NewServer(cfg, streamRuntime{s})
	if err != nil {
		l.Close()
		return fmt.Errorf("cri streaming server: %w", err)
	}
	s.stream = ss
	s.streamHTTP = &http.Server{Handler: ss, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := s.streamHTTP.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("cri streaming server", "err", err)
		}
	}()
	s.log.Info("CRI streaming server listening", "addr", cfg.BaseURL.String())
	return nil
}

// Exec hands out the URL of an exec session in a running container.
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if err := s.streamable(req.ContainerId); err != nil {
		return nil, err
	}
	if len(req.Cmd) == 0 {
		return nil, status.Error(codes.InvalidArgument, "exec command is empty")
	}
	if !req.Stdin && !req.Stdout && !req.Stderr {
		return nil, status.Error(codes.InvalidArgument, "one of stdin, stdout and stderr must be set")
	}
	if req.Tty && req.Stderr {
		return nil, status.Error(codes.InvalidArgument, "a tty merges stderr into stdout: stderr must not be set")
	}
	return s.stream.GetExec(req)
}

// Attach hands out the URL of an attach to a running container's stdio.
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := s.streamable(req.ContainerId); err != nil {
		return nil, err
	}
	return s.stream.GetAttach(req)
}

// PortForward hands out the URL that forwards to ports of a pod's network namespace.
func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if s.stream == nil {
		return nil, status.Error(codes.Unavailable, "the streaming server is not running")
	}
	sb, err := s.object(kindSandbox, req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	if !sb.State.Running {
		return nil, status.Errorf(codes.FailedPrecondition, "sandbox %s is not ready", sb.ID)
	}
	return s.stream.GetPortForward(req)
}

func (s *Server) streamable(id string) error {
	if s.stream == nil {
		return status.Error(codes.Unavailable, "the streaming server is not running")
	}
	c, err := s.object(kindContainer, id)
	if err != nil {
		return err
	}
	if !c.State.Running {
		return status.Errorf(codes.FailedPrecondition, "container %s is not running", c.ID)
	}
	return nil
}

// streamRuntime serves the streaming server's sessions with the daemon.
type streamRuntime struct{ s *Server }

func (r streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx = daemon.WithNamespace(ctx, Namespace)
	eio := execIO{cmd: cmd, tty: tty, stdin: in, resize: sizes(ctx, resize)}
	if out != nil {
		eio.stdout = out
	}
	if errw != nil {
		eio.stderr = errw
	}
	code, err := r.s.exec(ctx, id, eio, 0)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q exited with %d", cmd, code), Code: code}
	}
	return nil
}

func (r streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx = daemon.WithNamespace(ctx, Namespace)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn := &daemon.StreamConn{In: in, TTY: tty}
	if out != nil {
		conn.Out = out
	}
	if errw != nil {
		conn.Err = errw
	}
	go func() {
		for sz := range sizes(ctx, resize) {
			r.s.d.Resize(ctx, id, sz[0], sz[1])
		}
	}()
	return r.s.d.Attach(ctx, id, daemon.AttachOptions{Stdin: in != nil, Stdout: out != nil, Stderr: errw != nil, Stream: true}, conn)
}

// PortForward connects stream to port on the loopback of the pod's network namespace.
func (r streamRuntime) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	sb, err := r.s.object(kindSandbox, sandboxID)
	if err != nil {
		return err
	}
	if !sb.State.Running || sb.State.Pid <= 0 {
		return fmt.Errorf("sandbox %s is not ready", sb.ID)
	}
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port %d is out of range", port)
	}
	dial := func() (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err != nil {
			if c6, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(int(port)))); err6 == nil {
				return c6, nil
			}
		}
		return c, err
	}
	var conn net.Conn
	if sb.rec.Namespaces != nil && sb.rec.Namespaces.Network == runtimeapi.NamespaceMode_NODE {
		conn, err = dial()
	} else {
		err = network.RunInNetNS("/proc/"+strconv.Itoa(sb.State.Pid)+"/ns/net", func() error {
			var err error
			conn, err = dial()
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("port forward to %d in sandbox %s: %w", port, sb.ID, err)
	}
	defer conn.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	_, err = io.Copy(stream, conn)
	stream.Close()
	conn.Close()
	wg.Wait()
	return err
}

// sizes turns the streaming server's terminal sizes into the daemon's (height, width)
// until ctx ends.
func sizes(ctx context.Context, in <-chan remotecommand.TerminalSize) <-chan [2]uint {
	out := make(chan [2]uint)
	if in == nil {
		return out
	}
	go func() {
		defer close(out)
		for {
			select {
			case sz, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- [2]uint{uint(sz.Height), uint(sz.Width)}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
