// Package volume owns berth's named volumes: the "local" driver as dockerd
// has it. A volume is a directory <root>/<name>/_data (the Mountpoint) and a
// record <root>/<name>/volume.json (name, driver, labels, options, creation
// time, anonymous flag) written atomically. Volumes created with the driver
// options type, device and o are mount(2)ed on _data while a container uses
// them (reference-counted Mount and Unmount); others are plain directories.
//
// The package creates, lists, inspects, removes and prunes volumes, mounts
// them and fills a new one from an image (CopyUp). It does not know
// containers: which containers use a volume comes from a function the
// daemon gives, and the wire shapes it returns are moby's volume types,
// which the API serves as they are.
package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"berth/internal/atomicfile"
	"berth/internal/errdefs"

	"github.com/moby/moby/api/types/volume"
)

const (
	// DriverName is the only driver berth has.
	DriverName = "local"
	// AnonymousLabel marks anonymous volumes (as dockerd): created without
	// a name, pruned by default.
	AnonymousLabel = "com.docker.volume.anonymous"

	dataDir    = "_data"
	recordName = "volume.json"
)

// Names as dockerd's local driver accepts them.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

const restrictedNameChars = `[a-zA-Z0-9][a-zA-Z0-9_.-]`

var (
	errNoSuchVolume = errors.New("no such volume")
	errInUse        = errors.New("volume is in use")
)

// InUse returns the IDs of the containers that use the volume name, none
// if it is unused.
type InUse func(name string) []string

// Store is the volumes under one root directory. Its methods are safe for
// concurrent use; one process uses a root at a time.
type Store struct {
	root     string
	inUse    InUse
	mu       sync.Mutex
	vols     map[string]*vol
	pruning  atomic.Bool
	warnings []string // volumes New could not read
}

// record is what volume.json holds.
type record struct {
	Name      string            `json:"Name"`
	Driver    string            `json:"Driver"`
	Labels    map[string]string `json:"Labels"`
	Options   map[string]string `json:"Options"`
	CreatedAt time.Time         `json:"CreatedAt"`
	Anonymous bool              `json:"Anonymous"`
}

// vol is a volume in memory: its record and its mount state.
type vol struct {
	rec     record
	dir     string // <root>/<name>
	mu      sync.Mutex
	mounted bool                // _data is mounted (needsMount volumes)
	refs    map[string]struct{} // users of the mount (Mount's ref)
	removed bool
}

func (v *vol) path() string { return filepath.Join(v.dir, dataDir) }

// needsMount: the volume has mount options (dockerd: a type or a device).
func (v *vol) needsMount() bool { return v.rec.Options["type"] != "" || v.rec.Options["device"] != "" }

// New opens the volumes under root (<data-root>/volumes), creating it if
// needed. inUse may be nil (no volume is used by a container). Volumes
// still mounted from a previous run (the daemon stopped while containers
// kept running) are taken over: mounted, with no user until Mount.
func New(root string, inUse InUse) (*Store, error) {
	if inUse == nil {
		inUse = func(string) []string { return nil }
	}
	if err := os.MkdirAll(root, 0o701); err != nil {
		return nil, fmt.Errorf("volume store: %w", err)
	}
	// Mount points are compared with the mount table's canonical paths.
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("volume store: %w", err)
	}
	s := &Store{root: root, inUse: inUse, vols: make(map[string]*vol)}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("volume store: %w", err)
	}
	mounts, err := mountPoints()
	if err != nil {
		return nil, fmt.Errorf("volume store: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".removing-") {
			// A Remove that did not finish.
			if d := filepath.Join(root, e.Name()); checkNotMounted(d) == nil {
				os.RemoveAll(d)
			}
			continue
		}
		if !e.IsDir() || !validName.MatchString(e.Name()) {
			continue
		}
		v := &vol{dir: filepath.Join(root, e.Name()), refs: make(map[string]struct{})}
		b, err := os.ReadFile(filepath.Join(v.dir, recordName))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a create that did not finish: Create picks it up
		}
		if err == nil {
			err = json.Unmarshal(b, &v.rec)
		}
		if err == nil && v.rec.Name != e.Name() {
			err = fmt.Errorf("the record is volume %q's", v.rec.Name)
		}
		if err != nil {
			// Left out (and on disk) rather than failing the daemon.
			s.warnings = append(s.warnings, fmt.Sprintf("volume %s: unreadable record: %v", e.Name(), err))
			continue
		}
		v.mounted = mounts[v.path()]
		s.vols[v.rec.Name] = v
	}
	return s, nil
}

// Create makes a volume, as POST /volumes/create: the driver must be
// "local" (or empty), the name follow dockerd's rules or be empty (a random
// 64-hex name is made, and the volume is anonymous: labelled
// com.docker.volume.anonymous). Creating a name that exists returns the
// existing volume unchanged, whatever the options and labels (as dockerd).
func (s *Store) Create(ctx context.Context, req volume.CreateRequest) (volume.Volume, error) {
	v, _, err := s.create(req.Name, req.Driver, req.DriverOpts, req.Labels)
	if err != nil {
		return volume.Volume{}, err
	}
	return v.toAPI(), nil
}

// Ensure returns the volume name, creating it with labels if it does not
// exist (an empty name makes an anonymous volume); created reports that it
// did. It is what a container's -v name:/path or VOLUME needs.
func (s *Store) Ensure(ctx context.Context, name string, labels map[string]string) (v volume.Volume, created bool, err error) {
	vv, created, err := s.create(name, "", nil, labels)
	if err != nil {
		return volume.Volume{}, false, err
	}
	return vv.toAPI(), created, nil
}

func (s *Store) create(name, driver string, opts, labels map[string]string) (*vol, bool, error) {
	anonymous := name == ""
	if anonymous {
		name = randomName()
	}
	if driver != "" && driver != DriverName {
		return nil, false, errdefs.NotFound("create %s: error looking up volume plugin %s: plugin %q not found", name, driver, driver)
	}
	if err := validateName(name); err != nil {
		return nil, false, errdefs.Invalid("create %s: %s", name, err)
	}
	if err := validateOpts(opts); err != nil {
		return nil, false, errdefs.Invalid("create %s: %s", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.vols[name]; ok {
		return v, false, nil
	}
	if anonymous {
		labels = maps.Clone(labels)
		if labels == nil {
			labels = make(map[string]string)
		}
		labels[AnonymousLabel] = ""
	}
	v := &vol{
		dir:  filepath.Join(s.root, name),
		refs: make(map[string]struct{}),
		rec: record{Name: name, Driver: DriverName, Labels: maps.Clone(labels), Options: maps.Clone(opts),
			CreatedAt: time.Now().UTC(), Anonymous: anonymous},
	}
	if err := os.Mkdir(v.dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("create %s: %w", name, err)
	}
	if err := os.Mkdir(v.path(), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("create %s: %w", name, err)
	}
	if err := writeRecord(v.dir, &v.rec); err != nil {
		os.RemoveAll(v.dir)
		return nil, false, fmt.Errorf("create %s: %w", name, err)
	}
	s.vols[name] = v
	return v, true, nil
}

// randomName is a 64-hex name whose 12-character short form is not a
// number (as dockerd's random IDs).
func randomName() string {
	b := make([]byte, 32)
	for {
		rand.Read(b)
		id := hex.EncodeToString(b)
		if _, err := strconv.ParseInt(id[:12], 10, 64); err != nil {
			return id
		}
	}
}

func validateName(name string) error {
	if len(name) == 1 {
		return errors.New("volume name is too short, names should be at least two alphanumeric characters")
	}
	if !validName.MatchString(name) {
		return fmt.Errorf("%q includes invalid characters for a local volume name, only %q are allowed. If you intended to pass a host directory, use absolute path", name, restrictedNameChars)
	}
	return nil
}

// validateOpts checks driver options as dockerd's local driver does.
func validateOpts(opts map[string]string) error {
	for k := range opts {
		switch k {
		case "type", "device", "o", "size":
		default:
			return fmt.Errorf("invalid option: %q", k)
		}
	}
	if v, ok := opts["size"]; ok && v != "" && v != "0" {
		return errors.New("quota size requested but no quota support")
	}
	for _, req := range [][2]string{{"device", "type"}, {"type", "device"}, {"o", "device"}} {
		if _, ok := opts[req[0]]; ok {
			if _, ok := opts[req[1]]; !ok {
				return fmt.Errorf("missing required option: %q", req[1])
			}
		}
	}
	return nil
}

// writeRecord writes dir/volume.json atomically and durably.
func writeRecord(dir string, rec *record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, recordName), b, 0o600, atomicfile.Durable)
}

// Warnings are the problems New met (volumes left out because their
// record could not be read), for GET /volumes' Warnings.
func (s *Store) Warnings() []string { return slices.Clone(s.warnings) }

// Get returns the volume name (Inspect's shape, without UsageData).
func (s *Store) Get(name string) (volume.Volume, error) {
	s.mu.Lock()
	v, ok := s.vols[name]
	s.mu.Unlock()
	if !ok {
		return volume.Volume{}, errdefs.NotFound("get %s: %s", name, errNoSuchVolume)
	}
	return v.toAPI(), nil
}

func (v *vol) toAPI() volume.Volume {
	return volume.Volume{
		Name:       v.rec.Name,
		Driver:     v.rec.Driver,
		Mountpoint: v.path(),
		CreatedAt:  v.rec.CreatedAt.Local().Format(time.RFC3339),
		Labels:     maps.Clone(v.rec.Labels),
		Options:    maps.Clone(v.rec.Options),
		Scope:      "local",
	}
}

func (v *vol) anonymous() bool {
	_, labelled := v.rec.Labels[AnonymousLabel]
	return v.rec.Anonymous || labelled
}

// users returns who uses v: the containers inUse names and the holders of
// its mount, sorted.
func (s *Store) users(v *vol) []string {
	ids := slices.Clone(s.inUse(v.rec.Name))
	if len(ids) == 0 {
		ids = nil
	}
	v.mu.Lock()
	for r := range v.refs {
		if r != "" && !slices.Contains(ids, r) {
			ids = append(ids, r)
		}
	}
	n := len(v.refs)
	v.mu.Unlock()
	slices.Sort(ids)
	if len(ids) == 0 && n > 0 {
		ids = []string{} // in use, by nobody named
	}
	return ids
}

// snapshot returns the volumes, sorted by name.
func (s *Store) snapshot() []*vol {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := slices.Collect(maps.Values(s.vols))
	slices.SortFunc(vs, func(a, b *vol) int { return strings.Compare(a.rec.Name, b.rec.Name) })
	return vs
}

// List returns the volumes the filters keep, sorted by name. Filters are
// the decoded filters parameter (key to values): name (regular
// expressions, any), label (key or key=value, all), driver (any) and
// dangling (true or 1, false or 0: not used by any container).
func (s *Store) List(filters map[string][]string) ([]volume.Volume, error) {
	if err := checkFilters(filters, "name", "label", "driver", "dangling"); err != nil {
		return nil, err
	}
	dangling, err := danglingFilter(filters)
	if err != nil {
		return nil, err
	}
	names, err := nameFilter(filters)
	if err != nil {
		return nil, err
	}
	out := []volume.Volume{}
	for _, v := range s.snapshot() {
		if len(filters["driver"]) > 0 && !slices.Contains(filters["driver"], v.rec.Driver) {
			continue
		}
		if !names(v.rec.Name) || !matchKVList(filters["label"], v.rec.Labels) {
			continue
		}
		if dangling != nil && (s.users(v) == nil) != *dangling {
			continue
		}
		out = append(out, v.toAPI())
	}
	return out, nil
}

// DiskUsage returns every volume with its UsageData (size of _data, number
// of containers using it), for GET /system/df.
func (s *Store) DiskUsage(ctx context.Context) ([]volume.Volume, error) {
	out := []volume.Volume{}
	for _, v := range s.snapshot() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		size, err := dirSize(v.path())
		if err != nil {
			size = -1
		}
		a := v.toAPI()
		a.UsageData = &volume.UsageData{Size: size, RefCount: int64(len(s.inUse(v.rec.Name)))}
		out = append(out, a)
	}
	return out, nil
}

// Remove removes the volume name and its data. A volume that a container
// uses (or that is mounted for someone) is a conflict,
// "remove <name>: volume is in use - [<ids>]"; force only makes a missing
// volume not an error (dockerd's semantics).
func (s *Store) Remove(ctx context.Context, name string, force bool) error {
	notFound := func() error {
		if force {
			return nil
		}
		return errdefs.NotFound("get %s: %s", name, errNoSuchVolume)
	}
	s.mu.Lock()
	v, ok := s.vols[name]
	s.mu.Unlock()
	if !ok {
		return notFound()
	}
	// The daemon's callback runs without the store's lock held.
	if ids := s.users(v); ids != nil {
		if len(ids) == 0 {
			return errdefs.Conflict("remove %s: %s", name, errInUse)
		}
		return errdefs.Conflict("remove %s: %s - [%s]", name, errInUse, strings.Join(ids, ", "))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.removed {
		return notFound()
	}
	if len(v.refs) > 0 {
		return errdefs.Conflict("remove %s: %s", name, errInUse)
	}
	if err := v.unmount(); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if err := checkNotMounted(v.dir); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	// Out of the way at once (a Create of the same name may follow), then
	// deleted.
	trash := filepath.Join(s.root, ".removing-"+randomName()[:16])
	s.mu.Lock()
	err := os.Rename(v.dir, trash)
	if err == nil {
		delete(s.vols, name)
		v.removed = true
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// checkNotMounted fails if anything is mounted at or under dir: the data
// of a bind-mounted device must never be deleted through the mount.
func checkNotMounted(dir string) error {
	mounts, err := mountPoints()
	if err != nil {
		return err
	}
	for mp := range mounts {
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			return fmt.Errorf("%s is still mounted", mp)
		}
	}
	return nil
}

// Prune removes the volumes no container uses, as POST /volumes/prune
// (API 1.42 and later): only anonymous ones unless the filter all is true;
// label and label! filters (key or key=value) choose among them. It
// returns the names removed and the bytes their data used. Volumes that
// fail to be removed are left out.
func (s *Store) Prune(ctx context.Context, filters map[string][]string) (volume.PruneReport, error) {
	rep := volume.PruneReport{VolumesDeleted: []string{}}
	if !s.pruning.CompareAndSwap(false, true) {
		return rep, errdefs.Conflict("a prune operation is already running")
	}
	defer s.pruning.Store(false)
	if err := checkFilters(filters, "label", "label!", "all"); err != nil {
		return rep, err
	}
	all := false
	switch a := filters["all"]; len(a) {
	case 0:
	case 1:
		b, err := strconv.ParseBool(a[0])
		if err != nil {
			return rep, errdefs.Invalid("%s", invalidFilter("all", a))
		}
		all = b
	default:
		return rep, errdefs.Invalid("%s", invalidFilter("all", a))
	}
	for _, v := range s.snapshot() {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if !all && !v.anonymous() {
			continue
		}
		if !matchKVList(filters["label"], v.rec.Labels) {
			continue
		}
		if neg := filters["label!"]; len(neg) > 0 && matchKVList(neg, v.rec.Labels) {
			continue
		}
		if s.users(v) != nil {
			continue
		}
		size, _ := dirSize(v.path())
		if err := s.Remove(ctx, v.rec.Name, false); err != nil {
			continue
		}
		rep.VolumesDeleted = append(rep.VolumesDeleted, v.rec.Name)
		rep.SpaceReclaimed += uint64(max(size, 0))
	}
	return rep, nil
}

// dirSize sums the sizes of what is under dir (hard-linked files once,
// directories not counted), as dockerd's system df.
func dirSize(dir string) (int64, error) {
	var size int64
	seen := make(map[[2]uint64]struct{})
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		if fi.Size() == 0 {
			return nil
		}
		if st, ok := sysStat(fi); ok {
			id := [2]uint64{st.Dev, st.Ino}
			if _, dup := seen[id]; dup {
				return nil
			}
			seen[id] = struct{}{}
		}
		size += fi.Size()
		return nil
	})
	return size, err
}
