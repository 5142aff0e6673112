package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"berth/internal/errdefs"
	"berth/internal/image"
)

func TestToStatus(t *testing.T) {
	bg := context.Background()
	for _, c := range []struct {
		err  error
		want codes.Code
	}{
		{errdefs.NotFound("No such image: x"), codes.NotFound},
		{fmt.Errorf("create: %w", errdefs.Invalid("bad mount")), codes.InvalidArgument},
		{errdefs.Corrupt("digest mismatch"), codes.InvalidArgument},
		{errdefs.Conflict("container is running"), codes.FailedPrecondition},
		{errdefs.Unauthorized("no"), codes.Unauthenticated},
		{errdefs.Forbidden("no"), codes.PermissionDenied},
		{status.Error(codes.AlreadyExists, "taken"), codes.AlreadyExists},
		{fmt.Errorf("pull: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("disk on fire"), codes.Unknown},
	} {
		if got := status.Code(toStatus(bg, c.err)); got != c.want {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
	ctx, cancel := context.WithTimeout(bg, time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if got := status.Code(toStatus(ctx, fmt.Errorf("dial: %w", ctx.Err()))); got != codes.DeadlineExceeded {
		t.Errorf("ended context: %v", got)
	}
}

func TestCRIImageUser(t *testing.T) {
	for user, want := range map[string]string{"": "-", "1000": "uid 1000", "1000:50": "uid 1000", "nginx": "name nginx", "nginx:www": "name nginx", "0": "uid 0"} {
		im := &image.Image{ID: "sha256:abc", Config: ocispec.Image{Config: ocispec.ImageConfig{User: user}}}
		ci := criImage(im)
		got := "-"
		switch {
		case ci.Uid != nil:
			got = fmt.Sprintf("uid %d", ci.Uid.Value)
		case ci.Username != "":
			got = "name " + ci.Username
		}
		if got != want || ci.RepoTags == nil || ci.RepoDigests == nil || ci.Spec.Image != "sha256:abc" {
			t.Errorf("USER %q: %s (%+v), want %s", user, got, ci, want)
		}
	}
}

func TestUnreachable(t *testing.T) {
	dns := &net.DNSError{Err: "no such host", Name: "gcr.io", IsNotFound: true}
	if !unreachable(fmt.Errorf("pull: %w", dns)) {
		t.Error("a DNS failure is unreachable")
	}
	if !unreachable(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}) {
		t.Error("a refused connection is unreachable")
	}
	if unreachable(errdefs.NotFound("manifest unknown")) || unreachable(&net.OpError{Op: "read", Err: errors.New("reset")}) {
		t.Error("an answer (or a broken read) is not unreachable")
	}
}
