package daemon

import (
	"context"
	"maps"
	"slices"
	"time"
)

// Namespaces keep the containers of one front end out of another's sight: the Docker API
// works in DefaultNamespace, the CRI server (internal/cri) in its own. Lookups by name, ID or
// prefix, `docker ps`, prune and info only see their own namespace; what is shared by the
// machine (images in use, networks, ports, volumes, reconciliation after a restart) sees all.
const DefaultNamespace = ""

type namespaceKey struct{}

// WithNamespace makes the daemon's calls with ctx work in namespace ns.
func WithNamespace(ctx context.Context, ns string) context.Context {
	return context.WithValue(ctx, namespaceKey{}, ns)
}

// NamespaceOf is the namespace of ctx: DefaultNamespace unless WithNamespace set one.
func NamespaceOf(ctx context.Context) string {
	ns, _ := ctx.Value(namespaceKey{}).(string)
	return ns
}

// Record is a consistent copy of what a front end reads of one of its containers.
type Record struct {
	ID, Name, Namespace string
	// Image is the image ID; ImageName what the container was created from.
	Image, ImageName string
	Created          time.Time
	State            State
	Labels           map[string]string
	Extra            []byte
	LogPath          string
	// NetNS is the network namespace berthd made for the container while it runs ("" for
	// none, or the host's or another container's).
	NetNS string
}

func (c *Container) record() Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Record{ID: c.ID, Name: trimSlash(c.Name), Namespace: c.Namespace, Image: c.Image, ImageName: c.ImageName,
		Created: c.Created, State: c.State, Extra: slices.Clone(c.Extra), LogPath: c.LogPath, NetNS: c.NetNS}
	if c.Config != nil {
		r.Labels = maps.Clone(c.Config.Labels)
	}
	return r
}

// RecordIn reads the container ref (ID, name or ID prefix) of namespace ns.
func (d *Daemon) RecordIn(ns, ref string) (Record, error) {
	c, err := d.GetIn(ns, ref)
	if err != nil {
		return Record{}, err
	}
	return c.record(), nil
}

// RecordsIn reads every container of namespace ns, newest first.
func (d *Daemon) RecordsIn(ns string) []Record {
	cs := d.ListIn(ns)
	out := make([]Record, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.record())
	}
	return out
}
