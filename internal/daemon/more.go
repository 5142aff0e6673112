package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/internal/containerfs"
	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/oci"
)

// Update changes a container's resources and restart policy (docker update).
func (d *Daemon) Update(ctx context.Context, ref string, u container.UpdateConfig) ([]string, error) {
	c, err := d.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	hc := *c.HostConfig
	running := c.State.Running
	c.mu.Unlock()
	r := &hc.Resources
	n := u.Resources
	set := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	set(&r.CPUShares, n.CPUShares)
	set(&r.Memory, n.Memory)
	set(&r.NanoCPUs, n.NanoCPUs)
	set(&r.CPUPeriod, n.CPUPeriod)
	set(&r.CPUQuota, n.CPUQuota)
	set(&r.CPURealtimePeriod, n.CPURealtimePeriod)
	set(&r.CPURealtimeRuntime, n.CPURealtimeRuntime)
	set(&r.MemoryReservation, n.MemoryReservation)
	set(&r.MemorySwap, n.MemorySwap)
	if n.CpusetCpus != "" {
		r.CpusetCpus = n.CpusetCpus
	}
	if n.CpusetMems != "" {
		r.CpusetMems = n.CpusetMems
	}
	if n.BlkioWeight != 0 {
		r.BlkioWeight = n.BlkioWeight
	}
	if n.PidsLimit != nil {
		r.PidsLimit = n.PidsLimit
	}
	if n.MemorySwappiness != nil {
		r.MemorySwappiness = n.MemorySwappiness
	}
	if u.RestartPolicy.Name != "" {
		if hc.AutoRemove && u.RestartPolicy.Name != container.RestartPolicyDisabled {
			return nil, errdefs.Invalid("Restart policy cannot be updated because AutoRemove is enabled for the container")
		}
		hc.RestartPolicy = u.RestartPolicy
	}
	if err := oci.Validate(c.Config, &hc, nil); err != nil {
		return nil, err
	}
	if running {
		res, err := oci.Resources(&hc)
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(res)
		f := filepath.Join(d.shimDir(c), "update.json")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return nil, err
		}
		defer os.Remove(f)
		if _, err := d.runtime(ctx, "update", "--resources", f, c.ID); err != nil {
			return nil, fmt.Errorf("cannot update container %s: %w", c.ID, err)
		}
	}
	c.mu.Lock()
	c.HostConfig = &hc
	err = c.saveSync(d)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	d.containerEvent(c, events.ActionUpdate, nil)
	return []string{}, nil
}

// CommitOptions are POST /commit's parameters.
type CommitOptions struct {
	Repo, Tag, Author, Comment string
	Changes                    []string
	Pause                      bool
	Config                     *container.Config
}

// Commit makes an image of a container's changes.
func (d *Daemon) Commit(ctx context.Context, ref string, o CommitOptions) (string, error) {
	c, err := d.get(ctx, ref)
	if err != nil {
		return "", err
	}
	if o.Pause {
		c.mu.Lock()
		pause := c.State.Running && !c.State.Paused
		c.mu.Unlock()
		if pause {
			if err := d.Pause(ctx, c.ID); err == nil {
				defer d.Unpause(context.Background(), c.ID)
			}
		}
	}
	c.mu.Lock()
	cfg := *c.Config
	imageID := c.Image
	c.mu.Unlock()
	if o.Config != nil {
		mergeCommitConfig(&cfg, o.Config)
	}
	ref2 := ""
	if o.Repo != "" {
		ref2 = o.Repo
		if o.Tag != "" {
			ref2 += ":" + o.Tag
		}
	}
	im, err := d.images.Commit(ctx, image.CommitOptions{
		Snapshot: c.ID,
		Image:    digest.Digest(imageID),
		Ref:      ref2,
		Author:   o.Author,
		Message:  o.Comment,
		Changes:  o.Changes,
		Config:   commitImageConfig(&cfg),
		// The container's healthcheck is the image's (none left it unset).
		Healthcheck: cfg.Healthcheck,
	})
	if err != nil {
		return "", err
	}
	d.containerEvent(c, events.ActionCommit, map[string]string{"comment": o.Comment, "imageID": im.ID.String()})
	return im.ID.String(), nil
}

// mergeCommitConfig lays a commit's config over the container's (non-empty fields win).
func mergeCommitConfig(dst, src *container.Config) {
	if src.User != "" {
		dst.User = src.User
	}
	if len(src.Cmd) > 0 {
		dst.Cmd = src.Cmd
	}
	if len(src.Entrypoint) > 0 {
		dst.Entrypoint = src.Entrypoint
	}
	if len(src.Env) > 0 {
		dst.Env = src.Env
	}
	if src.WorkingDir != "" {
		dst.WorkingDir = src.WorkingDir
	}
	if len(src.Labels) > 0 {
		dst.Labels = src.Labels
	}
	if len(src.ExposedPorts) > 0 {
		dst.ExposedPorts = src.ExposedPorts
	}
	if len(src.Volumes) > 0 {
		dst.Volumes = src.Volumes
	}
	if src.StopSignal != "" {
		dst.StopSignal = src.StopSignal
	}
	if src.Healthcheck != nil {
		dst.Healthcheck = src.Healthcheck
	}
}

// Changes is docker diff: the container's changes against its image.
func (d *Daemon) Changes(ctx context.Context, ref string) ([]container.FilesystemChange, error) {
	c, err := d.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	upper, err := d.images.Snaps.UpperDir(c.ID)
	if err != nil {
		return nil, err
	}
	var lowers []string
	if im, err := d.images.Resolve(c.Image); err == nil && im.TopLayer() != "" {
		if lowers, err = d.images.Snaps.LowerDirs(im.TopLayer()); err != nil {
			return nil, err
		}
	}
	ch, err := containerfs.Changes(upper, lowers)
	if err != nil {
		return nil, err
	}
	return withoutInitPaths(ch), nil
}

// initPaths are what the runtime makes in a container's rootfs as mount points of its own
// (dockerd keeps them in an "-init" layer under the container's, out of docker diff).
var initPaths = map[string]bool{"/dev": true, "/proc": true, "/sys": true, "/etc/hostname": true, "/etc/hosts": true, "/etc/resolv.conf": true, "/.dockerenv": true}

// withoutInitPaths drops initPaths from a change list, and the directories shown as changed
// only because they hold one of them.
func withoutInitPaths(ch []container.FilesystemChange) []container.FilesystemChange {
	var kept []container.FilesystemChange
	dropped := false
	for _, c := range ch {
		if initPaths[c.Path] {
			dropped = true
			continue
		}
		kept = append(kept, c)
	}
	if !dropped {
		return ch
	}
	out := kept[:0:0]
	for i, c := range kept {
		if c.Kind == container.ChangeModify && holdsInitPath(c.Path) {
			below := false
			for j, o := range kept {
				if j != i && strings.HasPrefix(o.Path, strings.TrimSuffix(c.Path, "/")+"/") {
					below = true
					break
				}
			}
			if !below {
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

func holdsInitPath(dir string) bool {
	for p := range initPaths {
		if strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") {
			return true
		}
	}
	return false
}

// view is the container's filesystem as docker cp sees it.
func (d *Daemon) view(c *Container) containerfs.View {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := containerfs.View{Container: c.ID, Root: c.Rootfs, ReadOnlyRoot: c.HostConfig.ReadonlyRootfs, User: c.Config.User}
	for _, m := range c.Mounts {
		if m.Type == "tmpfs" || m.Source == "" {
			continue
		}
		v.Mounts = append(v.Mounts, containerfs.Mount{Destination: m.Destination, Source: m.Source, ReadOnly: !m.RW})
	}
	return v
}

// StatPath is HEAD /containers/{id}/archive.
func (d *Daemon) StatPath(ctx context.Context, ref, path string) (container.PathStat, error) {
	c, err := d.get(ctx, ref)
	if err != nil {
		return container.PathStat{}, err
	}
	v := d.view(c)
	v.Container = ref // dockerd's "Could not find the file" names it as the user did
	return containerfs.Stat(v, path)
}

// ArchivePath is GET /containers/{id}/archive.
func (d *Daemon) ArchivePath(ctx context.Context, ref, path string) (io.ReadCloser, container.PathStat, error) {
	c, err := d.get(ctx, ref)
	if err != nil {
		return nil, container.PathStat{}, err
	}
	v := d.view(c)
	v.Container = ref
	rc, st, err := containerfs.Archive(v, path)
	if err == nil {
		d.containerEvent(c, events.ActionArchivePath, map[string]string{"path": path})
	}
	return rc, st, err
}

// ExtractToDir is PUT /containers/{id}/archive.
func (d *Daemon) ExtractToDir(ctx context.Context, ref, path string, r io.Reader, noOverwriteDirNonDir, copyUIDGID bool) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	if err := containerfs.Extract(d.view(c), path, r, noOverwriteDirNonDir, copyUIDGID); err != nil {
		return err
	}
	d.containerEvent(c, events.ActionExtractToDir, map[string]string{"path": path})
	return nil
}

// PruneContainers removes stopped containers matching the filters (label, until).
func (d *Daemon) PruneContainers(ctx context.Context, f Filters) (container.PruneReport, error) {
	rep := container.PruneReport{ContainersDeleted: []string{}}
	until, err := untilFilter(f)
	if err != nil {
		return rep, err
	}
	for _, c := range d.ListIn(NamespaceOf(ctx)) {
		c.mu.Lock()
		skip := c.State.Running || c.State.Restarting || c.State.Removing
		if !skip && !until.IsZero() && !c.Created.Before(until) {
			skip = true
		}
		if !skip && !matchLabels(c.Config.Labels, f) {
			skip = true
		}
		c.mu.Unlock()
		if skip {
			continue
		}
		rw, _ := d.sizes(c)
		if err := d.Remove(ctx, c.ID, RemoveOptions{}); err != nil {
			continue
		}
		rep.ContainersDeleted = append(rep.ContainersDeleted, c.ID)
		rep.SpaceReclaimed += uint64(rw)
	}
	d.Event(events.ContainerEventType, events.ActionPrune, "", map[string]string{"reclaimed": fmt.Sprint(rep.SpaceReclaimed)})
	return rep, nil
}

// commitImageConfig is the image config of a committed container.
func commitImageConfig(c *container.Config) *ocispec.ImageConfig {
	ic := &ocispec.ImageConfig{
		User:       c.User,
		Env:        c.Env,
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		WorkingDir: c.WorkingDir,
		Labels:     c.Labels,
		StopSignal: c.StopSignal,
	}
	if len(c.ExposedPorts) > 0 {
		ic.ExposedPorts = map[string]struct{}{}
		for p := range c.ExposedPorts {
			ic.ExposedPorts[p.String()] = struct{}{}
		}
	}
	if len(c.Volumes) > 0 {
		ic.Volumes = c.Volumes
	}
	return ic
}

// untilFilter parses an "until" filter (a timestamp or a duration before now).
func untilFilter(f Filters) (time.Time, error) {
	v := f["until"]
	if len(v) == 0 {
		return time.Time{}, nil
	}
	return ParseTime(v[0], time.Now())
}

// matchLabels applies "label" and "label!" filters.
func matchLabels(labels map[string]string, f Filters) bool {
	for _, l := range f["label"] {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	for _, l := range f["label!"] {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := labels[k]
		if ok && (!hasV || got == v) {
			return false
		}
	}
	return true
}

// ParseTime parses the API's time values: Unix seconds (with optional fraction), RFC 3339
// dates and times, or a Go duration meaning that long before now.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	// "0" is the Unix epoch (the CLI sends it as it is), not a duration.
	if d, err := time.ParseDuration(s); err == nil && s != "0" {
		return now.Add(-d), nil
	}
	if sec, frac, ok := strings.Cut(s, "."); ok || isDigits(s) {
		if isDigits(sec) && (frac == "" || isDigits(frac)) {
			n, _ := strconv.ParseInt(sec, 10, 64)
			var ns int64
			if frac != "" {
				frac = (frac + "000000000")[:9]
				ns, _ = strconv.ParseInt(frac, 10, 64)
			}
			return time.Unix(n, ns), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errdefs.Invalid("invalid time value %q: use a Unix timestamp, an RFC 3339 date or a duration", s)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
