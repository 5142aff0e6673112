package daemon

import (
	"context"

	imagespec "github.com/moby/docker-image-spec/specs-go/v1"
	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	dockerspec "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/volume"

	"berth/internal/image"
)

// ImageConfig is an image's whole config document with Docker's extensions.
func (d *Daemon) ImageConfig(im *image.Image) *imagespec.DockerOCIImage {
	return &imagespec.DockerOCIImage{Image: im.Config, Config: imagespec.DockerOCIImageConfig{ImageConfig: im.Config.Config, DockerOCIImageConfigExt: im.ConfigExt}}
}

// ImageUsers counts the containers of each image ID.
func (d *Daemon) ImageUsers() map[string]int {
	out := map[string]int{}
	for _, c := range d.List() {
		out[c.Image]++
	}
	return out
}

// ContainerRef names a container and whether it runs.
type ContainerRef struct {
	ID, Name string
	Running  bool
}

// ContainerRunning tells whether the container id runs (false for an unknown one).
func (d *Daemon) ContainerRunning(id string) bool {
	c, err := d.getAny(id)
	if err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.State.Running
}

// DiskUsage is GET /system/df in the shape API 1.51 clients read.
type DiskUsage struct {
	LayersSize int64
	Images     []dockerspec.Summary
	Containers []container.Summary
	Volumes    []volume.Volume
	BuildCache []*buildtypes.CacheRecord
}

// DiskUsage computes system df.
func (d *Daemon) DiskUsage(ctx context.Context) (*DiskUsage, error) {
	u, err := d.images.DiskUsage()
	if err != nil {
		return nil, err
	}
	out := &DiskUsage{LayersSize: u.LayersSize, Images: []dockerspec.Summary{}, BuildCache: []*buildtypes.CacheRecord{}}
	recs, err := d.images.BuildCacheRecords()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		created, used := r.Created, r.LastUsed
		out.BuildCache = append(out.BuildCache, &buildtypes.CacheRecord{
			ID: r.ID, Type: "regular", Description: r.Description, Size: r.Size, Shared: r.Shared,
			CreatedAt: created, LastUsedAt: &used, UsageCount: r.UsageCount,
		})
	}
	ims, err := d.images.List()
	if err != nil {
		return nil, err
	}
	byID := map[string]image.ImageUsage{}
	for _, iu := range u.Images {
		byID[iu.ID.String()] = iu
	}
	users := d.ImageUsers()
	for _, im := range ims {
		s := dockerspec.Summary{
			ID:          im.ID.String(),
			ParentID:    im.Parent.String(),
			RepoTags:    familiarRefs(im.RepoTags),
			RepoDigests: familiarRefs(im.RepoDigests),
			Size:        im.Size,
			SharedSize:  byID[im.ID.String()].SharedSize,
			Labels:      im.Config.Config.Labels,
			Containers:  int64(users[im.ID.String()]),
		}
		if im.Config.Created != nil {
			s.Created = im.Config.Created.Unix()
		}
		out.Images = append(out.Images, s)
	}
	if out.Containers, err = d.ListSummaries(ctx, ListOptions{All: true, Size: true}); err != nil {
		return nil, err
	}
	if out.Volumes, err = d.volumeUsage(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

func familiarRefs(refs []string) []string {
	out := []string{}
	for _, r := range refs {
		out = append(out, image.Familiar(r))
	}
	return out
}
