package cri

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	registrytypes "github.com/moby/moby/api/types/registry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"berth/internal/errdefs"
	"berth/internal/image"
)

// criImage is the CRI's view of an image of the store.
func criImage(im *image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{Id: im.ID.String(), RepoTags: im.RepoTags, RepoDigests: im.RepoDigests,
		Size: uint64(max(im.Size, 0)), Spec: &runtimeapi.ImageSpec{Image: im.ID.String()}}
	if out.RepoTags == nil {
		out.RepoTags = []string{}
	}
	if out.RepoDigests == nil {
		out.RepoDigests = []string{}
	}
	// USER is "uid", "name", "uid:gid" or "name:group": kubelet wants the uid when it is
	// numeric (runAsNonRoot checks), else the name.
	user, _, _ := strings.Cut(im.Config.Config.User, ":")
	if user != "" {
		if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			out.Username = user
		}
	}
	return out
}

// ListImages lists the store's images, or those a filter's image spec names.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	if name := req.GetFilter().GetImage().GetImage(); name != "" {
		im, err := s.d.Images().Resolve(name)
		if errors.Is(err, errdefs.ErrNotFound) {
			return &runtimeapi.ListImagesResponse{Images: []*runtimeapi.Image{}}, nil
		}
		if err != nil {
			return nil, err
		}
		return &runtimeapi.ListImagesResponse{Images: []*runtimeapi.Image{criImage(im)}}, nil
	}
	ims, err := s.d.Images().List()
	if err != nil {
		return nil, err
	}
	out := make([]*runtimeapi.Image, 0, len(ims))
	for _, im := range ims {
		out = append(out, criImage(im))
	}
	return &runtimeapi.ListImagesResponse{Images: out}, nil
}

// ImageStatus reports an image by name, ID or digest reference; an image that is not
// there is an empty answer, not an error.
func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	name := req.GetImage().GetImage()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "image spec is empty")
	}
	im, err := s.d.Images().Resolve(name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{Image: criImage(im)}
	if req.Verbose {
		info, _ := json.Marshal(map[string]any{"imageSpec": im.Config, "chainIDs": im.ChainIDs, "manifest": im.Target.Digest})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// pullRetryWindow is how long a pull keeps retrying a registry it cannot reach (name
// resolution or connection failures) before it gives up, unless the request's deadline
// comes first.
const pullRetryWindow = 2 * time.Second

// PullImage pulls an image with the request's credentials, through daemon.json's
// registry-hosts (mirrors of any registry), registry-mirrors and insecure-registries, and
// answers its ID. The request's deadline
// holds: a registry that cannot be reached is retried until it ends (or for
// pullRetryWindow), so the answer is DeadlineExceeded rather than an early failure.
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	name := req.GetImage().GetImage()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "image spec is empty")
	}
	ref, err := image.ParseRef(name)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "image %q: %v", name, err)
	}
	var creds *registrytypes.AuthConfig
	if a := req.GetAuth(); a != nil {
		creds = &registrytypes.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth,
			ServerAddress: a.ServerAddress, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	}
	giveUp := time.Now().Add(pullRetryWindow)
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 500*time.Millisecond) {
		res, err := s.d.PullImage(ctx, ref, creds, nil)
		if err == nil {
			return &runtimeapi.PullImageResponse{ImageRef: res.Image.ID.String()}, nil
		}
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		if !unreachable(err) || time.Now().Add(delay).After(giveUp) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-time.After(delay):
		}
	}
}

// unreachable tells a registry that could not be reached (name resolution, connection)
// from one that answered.
func unreachable(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	return errors.As(err, &dnsErr) || (errors.As(err, &opErr) && opErr.Op == "dial")
}

// RemoveImage removes an image with all its names; one that is not there is not an error,
// one that a running container uses is refused.
func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	name := req.GetImage().GetImage()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "image spec is empty")
	}
	im, err := s.d.Images().Resolve(name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	_, err = s.d.Images().Remove(ctx, im.ID.String(), image.RemoveOptions{Force: true, ContainerRunning: s.d.ContainerRunning})
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the image store's file system: the bytes of its unpacked layers.
func (s *Server) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	layers, err := s.d.Images().Snaps.Layers()
	if err != nil {
		return nil, err
	}
	var used uint64
	for _, l := range layers {
		used += uint64(max(l.Size, 0))
	}
	fs := &runtimeapi.FilesystemUsage{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: s.d.Images().Root()},
		UsedBytes:  &runtimeapi.UInt64Value{Value: used},
		InodesUsed: &runtimeapi.UInt64Value{},
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{fs}, ContainerFilesystems: []*runtimeapi.FilesystemUsage{fs}}, nil
}
