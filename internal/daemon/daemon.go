// Package daemon owns berthd's containers: their records, lifecycle (create, start, stop,
// kill, restart, pause, remove), the shims that run them, restart policies, health checks,
// exec sessions, events, and reconciliation with shims and leftovers when berthd starts.
// It speaks Go; internal/api turns it into the Docker Engine API.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"berth/internal/atomicfile"
	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/registry"
	"berth/internal/volume"
	volumetypes "github.com/moby/moby/api/types/volume"
)

// Daemon is berthd's engine.
type Daemon struct {
	cfg     Config
	root    string // data root
	images  *image.Store
	vols    *volume.Store
	nets    *nets
	events  *Events
	log     *slog.Logger
	started time.Time
	id      string

	mu         sync.RWMutex
	containers map[string]*Container
	names      map[string]string // "/name" -> ID
	execs      map[string]*Exec

	regOnce sync.Once
	reg     *registry.Client

	// bg tracks goroutines that must end before Close returns (monitors, restarts).
	bg sync.WaitGroup
	// removals are the deletions of removed containers' files after the answer (later);
	// once closing, later runs them at once.
	removals   sync.WaitGroup
	removalsMu sync.Mutex
	closing    bool
	ctx        context.Context
	cancel     context.CancelFunc
}

// New opens the daemon's stores, loads container records and reconciles them with the
// shims found running.
func New(cfg Config, log *slog.Logger) (*Daemon, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	for _, dir := range []string{cfg.DataRoot, filepath.Join(cfg.DataRoot, "containers"), cfg.ExecRoot, filepath.Join(cfg.ExecRoot, "shims"), filepath.Join(cfg.ExecRoot, "runtime"), filepath.Join(cfg.ExecRoot, "netns")} {
		if err := os.MkdirAll(dir, 0o710); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	d := &Daemon{
		cfg:        cfg,
		root:       cfg.DataRoot,
		log:        log,
		started:    time.Now(),
		containers: map[string]*Container{},
		names:      map[string]string{},
		execs:      map[string]*Exec{},
		events:     newEvents(),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	var err error
	if d.id, err = d.engineID(); err != nil {
		return nil, err
	}
	// Before the image store sweeps the snapshots' tmp/: what removals a crash interrupted
	// still mount from there is unmounted first.
	d.sweepRemovals()
	if d.images, err = image.Open(filepath.Join(cfg.DataRoot, "image"), image.Options{}); err != nil {
		return nil, err
	}
	if d.vols, err = volume.New(filepath.Join(cfg.DataRoot, "volumes"), d.volumeUsers); err != nil {
		d.images.Close()
		return nil, err
	}
	if err := d.load(); err != nil {
		d.images.Close()
		return nil, err
	}
	if err := d.openNetworks(); err != nil {
		d.images.Close()
		return nil, fmt.Errorf("networks: %w", err)
	}
	d.reconcile()
	d.removeBuildLeftovers()
	return d, nil
}

// Close stops the daemon's own goroutines; containers keep running under their shims.
func (d *Daemon) Close() error {
	d.cancel()
	d.bg.Wait()
	d.removalsMu.Lock()
	d.closing = true
	d.removalsMu.Unlock()
	d.removals.Wait()
	d.closeNetworks()
	return d.images.Close()
}

// Images is the image store.
func (d *Daemon) Images() *image.Store { return d.images }

// Volumes is the volume store.
func (d *Daemon) Volumes() *volume.Store { return d.vols }

// Events is the event broker.
func (d *Daemon) Events() *Events { return d.events }

// Config is the daemon's configuration.
func (d *Daemon) Config() Config { return d.cfg }

// engineID is the daemon's persistent ID (info's ID).
func (d *Daemon) engineID() (string, error) {
	p := filepath.Join(d.root, "engine-id")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	id := newID()
	return id, atomicfile.WriteFile(p, []byte(id+"\n"), 0o600, atomicfile.Durable)
}

// load reads every container record.
func (d *Daemon) load() error {
	dir := filepath.Join(d.root, "containers")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read containers: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if strings.HasPrefix(e.Name(), removingPrefix) {
			continue // sweepRemovals could not delete it (and said why)
		}
		p := filepath.Join(dir, e.Name(), "config.v2.json")
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			// A create that died before its record was written: nothing else refers to it.
			d.log.Warn("removing a container directory without a record", "id", e.Name())
			d.removeLeftoverCreate(e.Name())
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		c := &Container{}
		if err := json.Unmarshal(b, c); err != nil {
			d.log.Error("unreadable container record: skipped", "path", p, "err", err)
			continue
		}
		if m, err := os.ReadFile(filepath.Join(dir, e.Name(), removingMarker)); err == nil {
			c.State.Removing, c.RemoveVolumes = true, string(m) == "volumes"
		}
		c.execs = map[string]*Exec{}
		d.containers[c.ID] = c
		d.names[c.Name] = c.ID
	}
	return nil
}

// sweepRemovals finishes, at start, the file work of removals a crash interrupted: the
// directories of removed containers (.removing-<id>, their rootfs unmounted first) are
// deleted, and the rootfs of a container marked as being removed is unmounted (reconcile
// finishes its removal).
func (d *Daemon) sweepRemovals() {
	dir := filepath.Join(d.root, "containers")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), removingPrefix):
			if err := removeContainerDir(p); err != nil {
				d.log.Warn("remove a removed container's directory", "dir", e.Name(), "err", err)
			}
		case fileExists(filepath.Join(p, removingMarker)):
			if err := unmountRootfs(filepath.Join(p, "rootfs")); err != nil {
				d.log.Warn("unmount the rootfs of a container being removed", "id", e.Name(), "err", err)
			}
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// reserveName claims a name for id. Called with d.mu held.
func (d *Daemon) reserveName(name, id string) error {
	if !validName.MatchString(name) {
		return errdefs.Invalid("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", strings.TrimPrefix(name, "/"))
	}
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	if other, ok := d.names[name]; ok && other != id {
		return &NameInUseError{errdefs.Conflict("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", name, other)}
	}
	d.names[name] = id
	return nil
}

// NameInUseError is the conflict of a container name that another container has.
type NameInUseError struct{ err error }

func (e *NameInUseError) Error() string { return e.err.Error() }
func (e *NameInUseError) Unwrap() error { return e.err }

// Get finds a container by full ID, name, or unique ID prefix.
func (d *Daemon) Get(ref string) (*Container, error) { return d.GetIn(DefaultNamespace, ref) }

// GetIn finds a container of namespace ns by ID, name or unique ID prefix; the containers
// of other namespaces are not there for it.
func (d *Daemon) GetIn(ns, ref string) (*Container, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.getLocked(ns, ref)
}

// get finds a container in the namespace of ctx (WithNamespace).
func (d *Daemon) get(ctx context.Context, ref string) (*Container, error) {
	return d.GetIn(NamespaceOf(ctx), ref)
}

// getAny finds a container of any namespace by its full ID.
func (d *Daemon) getAny(id string) (*Container, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if c, ok := d.containers[id]; ok {
		return c, nil
	}
	return nil, errdefs.NotFound("No such container: %s", id)
}

func (d *Daemon) getLocked(ns, ref string) (*Container, error) {
	if ref == "" {
		return nil, errdefs.NotFound("No such container: %s", ref)
	}
	if c, ok := d.containers[ref]; ok && c.Namespace == ns {
		return c, nil
	}
	name := ref
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	if id, ok := d.names[name]; ok {
		// A name is reserved before its container is registered (Create's work in between).
		if c := d.containers[id]; c != nil && c.Namespace == ns {
			return c, nil
		}
		return nil, errdefs.NotFound("No such container: %s", ref)
	}
	var found *Container
	for id, c := range d.containers {
		if c.Namespace == ns && strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errdefs.Invalid("multiple IDs found with provided prefix: %s", ref)
			}
			found = c
		}
	}
	if found == nil {
		return nil, errdefs.NotFound("No such container: %s", ref)
	}
	return found, nil
}

// ListIn returns the containers of namespace ns, newest first.
func (d *Daemon) ListIn(ns string) []*Container {
	return slices.DeleteFunc(d.List(), func(c *Container) bool { return c.Namespace != ns })
}

// List returns the containers of every namespace, newest first.
func (d *Daemon) List() []*Container {
	d.mu.RLock()
	out := make([]*Container, 0, len(d.containers))
	for _, c := range d.containers {
		out = append(out, c)
	}
	d.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// generateName makes a Docker-style adjective_surname name not yet in use. Called with d.mu held.
func (d *Daemon) generateName() string {
	for i := 0; ; i++ {
		n := randomName(i > 10)
		if _, ok := d.names["/"+n]; !ok {
			return n
		}
	}
}

// volumeUsers lists the containers whose mounts use the volume name. A container being
// removed does not count: its removal takes its anonymous volumes with it (rm -v, --rm).
func (d *Daemon) volumeUsers(name string) []string {
	var out []string
	for _, c := range d.List() {
		c.mu.Lock()
		if c.State.Removing {
			c.mu.Unlock()
			continue
		}
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Name == name {
				out = append(out, c.ID)
				break
			}
		}
		c.mu.Unlock()
	}
	return out
}

// volumeUsage is system df's volumes.
func (d *Daemon) volumeUsage(ctx context.Context) ([]volumetypes.Volume, error) {
	return d.vols.DiskUsage(ctx)
}

// Started is when the daemon started.
func (d *Daemon) Started() time.Time { return d.started }
