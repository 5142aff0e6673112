package format

import (
	"fmt"
	"io"
	"strconv"

	"github.com/distribution/reference"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// DefaultDiskUsageTable is the default format of `system df`.
const DefaultDiskUsageTable = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"

// The tables of `system df -v`.
const (
	diskUsageImageTable      = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}"
	diskUsageContainerTable  = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}"
	diskUsageVolumeTable     = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
	diskUsageBuildCacheTable = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}"
)

// DiskUsageHeader names the columns of `system df`.
var DiskUsageHeader = Header{
	"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE",
}

// DiskUsage is one row of `system df`: one kind of object.
type DiskUsage struct {
	Kind                           string
	Total, ActiveN, Bytes, Reclaim int64
	// NoPercent leaves the share out of Reclaimable (the build cache).
	NoPercent bool
}

// DiskUsageRows are the four rows of `system df`.
func DiskUsageRows(du client.DiskUsageResult) []any {
	return []any{
		&DiskUsage{Kind: "Images", Total: du.Images.TotalCount, ActiveN: du.Images.ActiveCount, Bytes: du.Images.TotalSize, Reclaim: du.Images.Reclaimable},
		&DiskUsage{Kind: "Containers", Total: du.Containers.TotalCount, ActiveN: du.Containers.ActiveCount, Bytes: du.Containers.TotalSize, Reclaim: du.Containers.Reclaimable},
		&DiskUsage{Kind: "Local Volumes", Total: du.Volumes.TotalCount, ActiveN: du.Volumes.ActiveCount, Bytes: du.Volumes.TotalSize, Reclaim: du.Volumes.Reclaimable},
		&DiskUsage{Kind: "Build Cache", Total: du.BuildCache.TotalCount, ActiveN: du.BuildCache.ActiveCount, Bytes: du.BuildCache.TotalSize, Reclaim: du.BuildCache.Reclaimable, NoPercent: true},
	}
}

// MarshalJSON makes {{json .}} print the row's fields.
func (c *DiskUsage) MarshalJSON() ([]byte, error) { return MarshalMethods(c) }

// Type is the kind of object.
func (c *DiskUsage) Type() string { return c.Kind }

// TotalCount is the number of objects.
func (c *DiskUsage) TotalCount() string { return strconv.FormatInt(c.Total, 10) }

// Active is the number of objects in use.
func (c *DiskUsage) Active() string { return strconv.FormatInt(c.ActiveN, 10) }

// Size is the space the objects take.
func (c *DiskUsage) Size() string { return units.HumanSize(float64(c.Bytes)) }

// Reclaimable is the space a prune would free, with its share of Size.
func (c *DiskUsage) Reclaimable() string {
	if c.Bytes > 0 && !c.NoPercent {
		return fmt.Sprintf("%s (%v%%)", units.HumanSize(float64(c.Reclaim)), c.Reclaim*100/c.Bytes)
	}
	return units.HumanSize(float64(c.Reclaim))
}

// WriteDiskUsageVerbose prints the four tables of `system df -v`.
func WriteDiskUsageVerbose(w io.Writer, du client.DiskUsageResult) error {
	var images []any
	for _, i := range du.Images.Items {
		repo, tag := "<none>", "<none>"
		if len(i.RepoTags) > 0 && !dangling(i) {
			if ref, err := reference.ParseNormalizedNamed(i.RepoTags[0]); err == nil {
				if nt, ok := ref.(reference.NamedTagged); ok {
					repo, tag = reference.FamiliarName(ref), nt.Tag()
				}
			}
		}
		images = append(images, &Image{I: i, Repo: repo, Tg: tag, Trunc: true})
	}
	fmt.Fprint(w, "Images space usage:\n\n")
	if err := Write(w, diskUsageImageTable, ImageHeader, images); err != nil {
		return err
	}
	var containers []any
	for _, c := range du.Containers.Items {
		c.SizeRootFs = 0
		containers = append(containers, &Container{C: c, Trunc: true})
	}
	fmt.Fprint(w, "\nContainers space usage:\n\n")
	if err := Write(w, diskUsageContainerTable, ContainerHeader, containers); err != nil {
		return err
	}
	var volumes []any
	for _, v := range du.Volumes.Items {
		volumes = append(volumes, &Volume{V: v})
	}
	fmt.Fprint(w, "\nLocal Volumes space usage:\n\n")
	if err := Write(w, diskUsageVolumeTable, VolumeHeader, volumes); err != nil {
		return err
	}
	var caches []any
	for _, r := range du.BuildCache.Items {
		caches = append(caches, &BuildCache{R: r})
	}
	fmt.Fprintf(w, "\nBuild cache usage: %s\n\n", units.HumanSize(float64(du.BuildCache.TotalSize)))
	return Write(w, diskUsageBuildCacheTable, BuildCacheHeader, caches)
}

// BuildCacheHeader names the columns of build cache rows.
var BuildCacheHeader = Header{
	"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
	"LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED",
}

// BuildCache is one build cache record.
type BuildCache struct{ R build.CacheRecord }

// MarshalJSON makes {{json .}} print the row's fields.
func (c *BuildCache) MarshalJSON() ([]byte, error) { return MarshalMethods(c) }

// ID is the record's ID.
func (c *BuildCache) ID() string { return c.R.ID }

// CacheType is the record's type.
func (c *BuildCache) CacheType() string { return c.R.Type }

// Size is the record's size.
func (c *BuildCache) Size() string { return units.HumanSizeWithPrecision(float64(c.R.Size), 3) }

// CreatedSince is how long ago the record was made.
func (c *BuildCache) CreatedSince() string { return Ago(c.R.CreatedAt) }

// LastUsedSince is how long ago the record was last used.
func (c *BuildCache) LastUsedSince() string {
	if c.R.LastUsedAt == nil {
		return ""
	}
	return Ago(*c.R.LastUsedAt)
}

// UsageCount is how many times the record was used.
func (c *BuildCache) UsageCount() string { return strconv.Itoa(c.R.UsageCount) }

// Shared says whether the record is shared.
func (c *BuildCache) Shared() string { return strconv.FormatBool(c.R.Shared) }
