package cri

import (
	"context"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cleanupTimeout bounds the removal of what a failed call made.
const cleanupTimeout = time.Minute

// containerState maps the daemon's state to the CRI's.
func containerState(o object) runtimeapi.ContainerState {
	switch {
	case o.State.Running:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case !o.State.FinishedAt.IsZero() || !o.State.StartedAt.IsZero():
		return runtimeapi.ContainerState_CONTAINER_EXITED
	case o.State.Status == container.StateCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

// StopContainer stops a container: SIGTERM (or its stop signal), SIGKILL after the
// timeout. A container that is stopped or not there is not an error.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	c, err := s.object(kindContainer, req.ContainerId)
	if status.Code(err) == codes.NotFound {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	timeout := max(int(req.Timeout), 0)
	if err := s.stopContainer(ctx, c.ID, timeout); err != nil {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer removes a container, running or not. One that is not there is not an
// error.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	c, err := s.object(kindContainer, req.ContainerId)
	if status.Code(err) == codes.NotFound {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.removeContainer(ctx, c.ID); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

// ListContainers lists the containers, filtered by ID (or prefix), sandbox, state and
// labels.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	out := []*runtimeapi.Container{}
	for _, c := range s.objects(kindContainer) {
		if f != nil {
			if f.Id != "" && !strings.HasPrefix(c.ID, f.Id) {
				continue
			}
			if f.PodSandboxId != "" && !strings.HasPrefix(c.rec.SandboxID, f.PodSandboxId) {
				continue
			}
			if f.State != nil && f.State.State != containerState(c) {
				continue
			}
			if !matchLabels(c.Labels, f.LabelSelector) {
				continue
			}
		}
		out = append(out, &runtimeapi.Container{Id: c.ID, PodSandboxId: c.rec.SandboxID, Metadata: c.rec.ContainerMetadata,
			Image: s.imageSpec(c.rec), ImageRef: c.Record.Image, ImageId: c.Record.Image,
			State: containerState(c), CreatedAt: c.Created.UnixNano(), Labels: c.Labels, Annotations: c.rec.Annotations})
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

// imageSpec is a container's image as kubelet shows it in the pod's status: the name the
// pod spec gave (user_specified_image), else the name it was created with, or for an
// image ID the image's first tag, as containerd answers.
func (s *Server) imageSpec(rec record) *runtimeapi.ImageSpec {
	spec := &runtimeapi.ImageSpec{Image: rec.Image, UserSpecifiedImage: rec.UserImage}
	switch {
	case rec.UserImage != "":
		spec.Image = rec.UserImage
	case strings.HasPrefix(rec.Image, "sha256:"):
		if im, err := s.d.Images().Resolve(rec.Image); err == nil && len(im.RepoTags) > 0 {
			spec.Image = im.RepoTags[0]
		}
	}
	return spec
}

// ContainerStatus reports a container: state, times, exit code (137 and OOMKilled when
// the kernel's OOM killer ended it), image and log path.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := s.object(kindContainer, req.ContainerId)
	if err != nil {
		return nil, err
	}
	st := &runtimeapi.ContainerStatus{
		Id: c.ID, Metadata: c.rec.ContainerMetadata, State: containerState(c), CreatedAt: c.Created.UnixNano(),
		Image: s.imageSpec(c.rec), ImageRef: c.Record.Image, ImageId: c.Record.Image,
		Labels: c.Labels, Annotations: c.rec.Annotations, LogPath: c.rec.LogPath, Mounts: c.rec.Mounts,
	}
	if !c.State.StartedAt.IsZero() {
		st.StartedAt = c.State.StartedAt.UnixNano()
	}
	if !c.State.Running && !c.State.FinishedAt.IsZero() {
		st.FinishedAt = c.State.FinishedAt.UnixNano()
		st.ExitCode = int32(c.State.ExitCode)
		switch {
		case c.State.OOMKilled:
			st.Reason = "OOMKilled"
		case c.State.ExitCode == 0:
			st.Reason = "Completed"
		default:
			st.Reason = "Error"
		}
		st.Message = c.State.Error
	}
	return &runtimeapi.ContainerStatusResponse{Status: st}, nil
}
