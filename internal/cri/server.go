// Package cri owns berthd's CRI endpoint: the RuntimeService and ImageService of
// k8s.io/cri-api v1 over gRPC on a unix socket, so kubelet runs its pods on berth. It is a
// front end of internal/daemon, like the Docker API: pod sandboxes and their containers are
// daemon containers in the daemon's "k8s" namespace (hidden from the Docker API), on the same
// image store, runtime, shims and logs.
//
// A pod sandbox is held without a pause image: its holder is berth-init --pause on an empty
// rootfs (daemon.CreateRequest.Holder), which owns the pod's network, IPC and UTS namespaces;
// the CRI's own record of each object (metadata, annotations, ...) is kept with the daemon's
// container record (daemon.Container.Extra).
package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"

	"berth/internal/daemon"
	"berth/internal/errdefs"
)

// Namespace is the daemon namespace of the CRI's sandboxes and containers.
const Namespace = "k8s"

// RuntimeName is the runtime_name of Version.
const RuntimeName = "berth"

// Server is the CRI endpoint of one daemon.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	d       *daemon.Daemon
	log     *slog.Logger
	version string
	grpc    *grpc.Server
	net     *podNetwork

	// stream serves Exec, Attach and PortForward sessions (ListenStreaming).
	stream     streaming.Server
	streamHTTP *http.Server
}

// New makes the CRI server of d; version is berthd's.
func New(d *daemon.Daemon, log *slog.Logger, version string) *Server {
	s := &Server{d: d, log: log, version: version, net: newPodNetwork(d.Config())}
	s.grpc = grpc.NewServer(grpc.ChainUnaryInterceptor(s.unary))
	runtimeapi.RegisterRuntimeServiceServer(s.grpc, s)
	runtimeapi.RegisterImageServiceServer(s.grpc, s)
	return s
}

// Listen opens the CRI socket at path (root only, 0600), replacing a stale one; it refuses a
// socket another process still serves.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("cri socket: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("cri socket %s is in use by another daemon", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("cri socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("cri socket: %w", err)
	}
	return l, nil
}

// Serve answers CRI calls on l until Stop.
func (s *Server) Serve(l net.Listener) error { return s.grpc.Serve(l) }

// Stop ends the server: calls under way finish first, up to ctx's end.
func (s *Server) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
	}
	if s.streamHTTP != nil {
		s.streamHTTP.Close()
	}
}

// unary puts every call in the CRI namespace, maps berth's errors to gRPC codes and logs
// failures.
func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(daemon.WithNamespace(ctx, Namespace), req)
	if err != nil {
		err = toStatus(ctx, err)
		s.log.Debug("cri call failed", "method", info.FullMethod, "err", err)
	}
	return resp, err
}

// toStatus maps an error to its gRPC status: context ends to Canceled/DeadlineExceeded,
// berth's kinds to NotFound, InvalidArgument, FailedPrecondition, ...
func toStatus(ctx context.Context, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ctx.Err())) {
		return status.FromContextError(ctx.Err()).Err()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, errdefs.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, errdefs.ErrInvalid), errors.Is(err, errdefs.ErrCorrupt):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errdefs.ErrConflict):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, errdefs.ErrUnauthorized):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, errdefs.ErrForbidden):
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// Version reports berth as the runtime and the CRI version it speaks.
func (s *Server) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: RuntimeName, RuntimeVersion: s.version, RuntimeApiVersion: "v1"}, nil
}

// Status reports the runtime ready, and the network ready when the CNI conf dir has a
// usable network configuration (pods have loopback only otherwise).
func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	// berth-runtime makes read-only binds recursively read-only (mount_setattr) when asked.
	features := &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true}
	netReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if _, err := s.net.config(); err != nil {
		netReady.Status, netReady.Reason, netReady.Message = false, "NetworkPluginNotReady", "cni: "+err.Error()
	}
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		netReady,
	}}, RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "", Features: features}, {Name: RuntimeName, Features: features}}}, nil
}

// RuntimeConfig tells kubelet that berth drives cgroups itself (cgroupfs).
func (s *Server) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}

// UpdateRuntimeConfig accepts kubelet's pod CIDR (used by pod networking).
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
