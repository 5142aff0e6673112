package format

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultContainerTable is the default format of `ps`.
const DefaultContainerTable = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

// ContainerFormat is the format `ps` uses for its --format value, -q and -s.
func ContainerFormat(source string, quiet, size bool) Format {
	switch source {
	case TableKey, "":
		if quiet {
			return QuietFormat
		}
		f := DefaultContainerTable
		if size {
			f += `\t{{.Size}}`
		}
		return Format(f)
	default:
		if quiet {
			return QuietFormat
		}
		return Format(source)
	}
}

// ContainerHeader names the columns of container rows.
var ContainerHeader = Header{
	"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
	"CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
	"Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
	"LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
}

// Container is one row of `ps`.
type Container struct {
	C     container.Summary
	Trunc bool
}

// MarshalJSON makes {{json .}} print the row's fields.
func (c *Container) MarshalJSON() ([]byte, error) { return MarshalMethods(c) }

// ID is the container's ID, short unless --no-trunc.
func (c *Container) ID() string {
	if c.Trunc {
		return TruncateID(c.C.ID)
	}
	return c.C.ID
}

// Names are the container's names without their "/"; truncated, only the first that is
// not a legacy link.
func (c *Container) Names() string {
	var names []string
	for _, n := range c.C.Names {
		n = strings.TrimPrefix(n, "/")
		if c.Trunc {
			if !strings.Contains(n, "/") {
				return n
			}
			continue
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

// Image is the image the container was made from, as given, or its short ID.
func (c *Container) Image() string {
	if c.C.Image == "" {
		return "<no image>"
	}
	if !c.Trunc {
		return c.C.Image
	}
	if t := TruncateID(c.C.ImageID); t == TruncateID(c.C.Image) {
		return t
	}
	ref, err := reference.ParseNormalizedNamed(c.C.Image)
	if err != nil {
		return c.C.Image
	}
	if _, ok := ref.(reference.Digested); ok {
		var tag string
		if t, ok := ref.(reference.Tagged); ok {
			tag = t.Tag()
		}
		ref = reference.TrimNamed(ref)
		if tag != "" {
			if r, err := reference.WithTag(ref, tag); err == nil {
				ref = r
			}
		}
	}
	return reference.FamiliarString(ref)
}

// Command is the container's command, quoted, ellipsized to 20 characters when truncated.
func (c *Container) Command() string {
	cmd := c.C.Command
	if c.Trunc {
		cmd = Ellipsis(cmd, 20)
	}
	return strconv.Quote(cmd)
}

// CreatedAt is the creation time.
func (c *Container) CreatedAt() string { return time.Unix(c.C.Created, 0).String() }

// RunningFor is how long ago the container was created.
func (c *Container) RunningFor() string { return Ago(time.Unix(c.C.Created, 0)) }

// Platform is the platform of the container's image, when the daemon says (nil otherwise).
func (c *Container) Platform() *Platform {
	d := c.C.ImageManifestDescriptor
	if d == nil || d.Platform == nil {
		return nil
	}
	return &Platform{*d.Platform}
}

// Platform is an OCI platform shown as "os/arch[/variant]".
type Platform struct{ ocispec.Platform }

func (p Platform) String() string { return platforms.FormatAll(p.Platform) }

// Ports are the published and exposed ports ("0.0.0.0:80->8080/tcp, 9000/tcp").
func (c *Container) Ports() string { return DisplayablePorts(c.C.Ports) }

// State is the container's state ("running").
func (c *Container) State() string { return string(c.C.State) }

// Status is the human status ("Up 2 minutes").
func (c *Container) Status() string { return c.C.Status }

// Size is the writable layer's size and the virtual size.
func (c *Container) Size() string {
	s := Size(c.C.SizeRw)
	if c.C.SizeRootFs > 0 {
		s = fmt.Sprintf("%s (virtual %s)", s, Size(c.C.SizeRootFs))
	}
	return s
}

// Labels are the container's labels, "k=v" joined with commas, sorted.
func (c *Container) Labels() string { return joinLabels(c.C.Labels) }

// Label is the value of one label.
func (c *Container) Label(name string) string { return c.C.Labels[name] }

// Mounts are the names (or sources) of the container's mounts.
func (c *Container) Mounts() string {
	var names []string
	for _, m := range c.C.Mounts {
		name := m.Name
		if name == "" {
			name = m.Source
		}
		if c.Trunc {
			name = Ellipsis(name, 15)
		}
		names = append(names, name)
	}
	return strings.Join(names, ",")
}

// LocalVolumes is the number of mounts of the "local" volume driver.
func (c *Container) LocalVolumes() string {
	n := 0
	for _, m := range c.C.Mounts {
		if m.Driver == "local" {
			n++
		}
	}
	return strconv.Itoa(n)
}

// Networks are the names of the networks the container is attached to.
func (c *Container) Networks() string {
	if c.C.NetworkSettings == nil {
		return ""
	}
	var names []string
	for k := range c.C.NetworkSettings.Networks {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func joinLabels(labels map[string]string) string {
	var kv []string
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// DisplayablePorts formats ports as `ps` does: consecutive ports of the same protocol and
// address grouped in ranges, published ports as "ip:public->private/proto".
func DisplayablePorts(ports []container.PortSummary) string {
	type group struct{ first, last uint16 }
	groups := map[string]*group{}
	var keys, result, mappings []string
	ps := append([]container.PortSummary(nil), ports...)
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.PrivatePort != b.PrivatePort {
			return a.PrivatePort < b.PrivatePort
		}
		if a.IP != b.IP {
			return a.IP.Less(b.IP)
		}
		if a.PublicPort != b.PublicPort {
			return a.PublicPort < b.PublicPort
		}
		return a.Type < b.Type
	})
	for _, p := range ps {
		cur := p.PrivatePort
		key := p.Type
		if p.IP.IsValid() {
			if p.PublicPort != cur {
				hp := net.JoinHostPort(p.IP.String(), strconv.Itoa(int(p.PublicPort)))
				mappings = append(mappings, fmt.Sprintf("%s->%d/%s", hp, p.PrivatePort, p.Type))
				continue
			}
			key = p.IP.String() + "/" + p.Type
		}
		g := groups[key]
		if g == nil {
			groups[key] = &group{cur, cur}
			keys = append(keys, key)
			continue
		}
		if cur == g.last+1 {
			g.last = cur
			continue
		}
		result = append(result, formGroup(key, g.first, g.last))
		groups[key] = &group{cur, cur}
	}
	for _, k := range keys {
		g := groups[k]
		result = append(result, formGroup(k, g.first, g.last))
	}
	return strings.Join(append(result, mappings...), ", ")
}

func formGroup(key string, first, last uint16) string {
	ip, typ, ok := strings.Cut(key, "/")
	if !ok {
		typ, ip = ip, ""
	}
	g := strconv.Itoa(int(first))
	if first != last {
		g = fmt.Sprintf("%s-%d", g, last)
	}
	if ip != "" {
		g = fmt.Sprintf("%s->%s", net.JoinHostPort(ip, g), g)
	}
	return g + "/" + typ
}
