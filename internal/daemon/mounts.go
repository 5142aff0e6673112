package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"berth/internal/errdefs"
)

// parseMounts turns Binds (-v), Mounts (--mount), Tmpfs (--tmpfs) and the image's VOLUMEs
// into the container's mount points, with dockerd's validation messages. Volumes are not
// created here (createVolumes does it).
func parseMounts(cfg *container.Config, hc *container.HostConfig) ([]MountPoint, error) {
	var out []MountPoint
	seen := map[string]bool{}
	add := func(m MountPoint) error {
		if !path.IsAbs(m.Destination) {
			return errdefs.Invalid("invalid mount config: mount path must be absolute: %s", m.Destination)
		}
		m.Destination = path.Clean(m.Destination)
		if m.Destination == "/" {
			return errdefs.Invalid("invalid specification: destination can't be '/'")
		}
		if seen[m.Destination] {
			return errdefs.Invalid("Duplicate mount point: %s", m.Destination)
		}
		seen[m.Destination] = true
		out = append(out, m)
		return nil
	}
	for _, b := range hc.Binds {
		m, err := parseBind(b)
		if err != nil {
			return nil, err
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for _, mt := range hc.Mounts {
		m, err := parseMountSpec(mt)
		if err != nil {
			return nil, err
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for dst, opts := range hc.Tmpfs {
		m := MountPoint{Type: mount.TypeTmpfs, Source: "tmpfs", Destination: dst, RW: true}
		if opts != "" {
			m.Options = strings.Split(opts, ",")
		}
		for _, o := range m.Options {
			if o == "ro" {
				m.RW = false
			}
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	var vols []string
	for v := range cfg.Volumes {
		vols = append(vols, v)
	}
	slices.Sort(vols)
	for _, v := range vols {
		dst := path.Clean(v)
		if seen[dst] {
			continue
		}
		if err := add(MountPoint{Type: mount.TypeVolume, Destination: dst, RW: true, Driver: "local", Anonymous: true, CopyUp: true}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseBind parses a -v specification: [source:]destination[:options].
func parseBind(spec string) (MountPoint, error) {
	bad := errdefs.Invalid("invalid volume specification: '%s'", spec)
	parts := strings.Split(spec, ":")
	var m MountPoint
	var opts string
	switch len(parts) {
	case 1:
		m = MountPoint{Type: mount.TypeVolume, Destination: parts[0], Anonymous: true, CopyUp: true}
	case 2:
		if parts[1] != "" && !strings.HasPrefix(parts[1], "/") {
			// destination:options
			m = MountPoint{Type: mount.TypeVolume, Destination: parts[0], Anonymous: true, CopyUp: true}
			opts = parts[1]
		} else {
			m = MountPoint{Source: parts[0], Destination: parts[1]}
		}
	case 3:
		m = MountPoint{Source: parts[0], Destination: parts[1]}
		opts = parts[2]
	default:
		return m, bad
	}
	if m.Destination == "" || (len(parts) > 1 && m.Source == "" && !m.Anonymous) {
		return m, bad
	}
	if !m.Anonymous {
		if strings.HasPrefix(m.Source, "/") {
			m.Type = mount.TypeBind
			m.Source = filepath.Clean(m.Source)
		} else {
			if err := checkVolumeName(m.Source); err != nil {
				return m, err
			}
			m.Type, m.Name = mount.TypeVolume, m.Source
			m.Source = ""
			m.CopyUp = true
		}
	}
	if m.Type == mount.TypeVolume {
		m.Driver = "local"
	}
	m.RW = true
	m.Mode = opts
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "":
		case "ro":
			m.RW = false
		case "rw":
			m.RW = true
		case "z", "Z":
			// SELinux relabeling: no SELinux here, accepted as dockerd does without it.
		case "nocopy":
			if m.Type != mount.TypeVolume {
				return m, bad
			}
			m.CopyUp = false
		case "shared", "rshared", "slave", "rslave", "private", "rprivate":
			if m.Type != mount.TypeBind {
				return m, bad
			}
			m.Propagation = mount.Propagation(o)
		default:
			return m, bad
		}
	}
	if m.Type == mount.TypeBind && m.Propagation == "" {
		m.Propagation = mount.PropagationRPrivate
	}
	return m, nil
}

// parseMountSpec checks a --mount.
func parseMountSpec(mt mount.Mount) (MountPoint, error) {
	errf := func(format string, a ...any) error {
		return errdefs.Invalid("invalid mount config for type %q: %s", mt.Type, fmt.Sprintf(format, a...))
	}
	m := MountPoint{Type: mt.Type, Destination: mt.Target, RW: !mt.ReadOnly}
	if mt.Target == "" {
		return m, errf("field Target must not be empty")
	}
	switch mt.Type {
	case mount.TypeBind:
		if mt.Source == "" {
			return m, errf("field Source must not be empty")
		}
		if !filepath.IsAbs(mt.Source) {
			return m, errf("invalid mount path: '%s' mount path must be absolute", mt.Source)
		}
		if mt.VolumeOptions != nil || mt.TmpfsOptions != nil {
			return m, errf("field VolumeOptions/TmpfsOptions must not be specified")
		}
		create := mt.BindOptions != nil && mt.BindOptions.CreateMountpoint
		if _, err := os.Stat(mt.Source); err != nil {
			if !errors.Is(err, os.ErrNotExist) || !create {
				return m, errf("bind source path does not exist: %s", mt.Source)
			}
		}
		m.Source = filepath.Clean(mt.Source)
		m.Propagation = mount.PropagationRPrivate
		if mt.BindOptions != nil {
			if mt.BindOptions.Propagation != "" {
				m.Propagation = mt.BindOptions.Propagation
			}
			m.NonRecursive = mt.BindOptions.NonRecursive
			m.ReadOnlyNonRecursive = mt.BindOptions.ReadOnlyNonRecursive
		}
	case mount.TypeVolume:
		if mt.BindOptions != nil || mt.TmpfsOptions != nil {
			return m, errf("field BindOptions/TmpfsOptions must not be specified")
		}
		m.Driver = "local"
		m.CopyUp = true
		if mt.Source == "" {
			m.Anonymous = true
		} else {
			if err := checkVolumeName(mt.Source); err != nil {
				return m, err
			}
			m.Name = mt.Source
		}
		if o := mt.VolumeOptions; o != nil {
			m.CopyUp = !o.NoCopy
			if o.DriverConfig != nil && o.DriverConfig.Name != "" && o.DriverConfig.Name != "local" {
				return m, errdefs.NotFound("plugin %q not found", o.DriverConfig.Name)
			}
			if o.Subpath != "" {
				return m, errf("volume subpaths are not supported by berth")
			}
		}
	case mount.TypeTmpfs:
		if mt.Source != "" {
			return m, errf("field Source must not be specified")
		}
		if mt.BindOptions != nil || mt.VolumeOptions != nil {
			return m, errf("field BindOptions/VolumeOptions must not be specified")
		}
		m.Source = "tmpfs"
		if o := mt.TmpfsOptions; o != nil {
			if o.SizeBytes > 0 {
				m.Options = append(m.Options, "size="+strconv.FormatInt(o.SizeBytes, 10))
			}
			if o.Mode != 0 {
				m.Options = append(m.Options, "mode="+strconv.FormatUint(uint64(o.Mode.Perm()), 8))
			}
		}
	default:
		return m, errdefs.Invalid("mount type unknown: %q", mt.Type)
	}
	return m, nil
}

func checkVolumeName(name string) error {
	if !validName.MatchString(name) || strings.HasPrefix(name, "/") {
		return errdefs.Invalid("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name)
	}
	return nil
}

// createVolumes creates the named and anonymous volumes a container needs and the host
// directories of -v binds that do not exist (dockerd creates those). It returns the volumes
// it created, for rollback.
func (d *Daemon) createVolumes(ctx context.Context, c *Container, mounts []MountPoint) ([]string, error) {
	var created []string
	for i := range mounts {
		m := &mounts[i]
		switch m.Type {
		case mount.TypeBind:
			if _, err := os.Stat(m.Source); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(m.Source, 0o755); err != nil {
					return created, fmt.Errorf("create bind source %s: %w", m.Source, err)
				}
			}
		case mount.TypeVolume:
			labels := map[string]string{}
			if m.Anonymous {
				labels["com.docker.volume.anonymous"] = ""
			}
			v, isNew, err := d.vols.Ensure(ctx, m.Name, labels)
			if err != nil {
				return created, err
			}
			if isNew {
				created = append(created, v.Name)
			}
			m.Name = v.Name
			m.Source = v.Mountpoint
		}
	}
	return created, nil
}

// removeVolumes removes volumes (a create's rollback, rm -v of anonymous ones).
func (d *Daemon) removeVolumes(names []string) {
	for _, n := range names {
		if err := d.vols.Remove(context.Background(), n, false); err != nil {
			d.log.Warn("remove volume", "name", n, "err", err)
		}
	}
}
