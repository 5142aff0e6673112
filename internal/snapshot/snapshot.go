// Package snapshot owns berth's overlayfs snapshots: image layers unpacked
// once each, keyed by chain ID, and the writable snapshots of containers
// (a fresh upper directory over a chain of read-only layers).
//
// Layout under the root:
//
//	layers/<chain-hex>/fs          the layer's diff in overlayfs form
//	                               (whiteouts as 0/0 character devices,
//	                               opaque directories marked by xattr)
//	layers/<chain-hex>/layer.json  chain ID, diff ID, parent, size
//	active/<key>/{upper,work}      a container's writable snapshot
//	active/<key>/snapshot.json     its key and parent chain ID
//	tmp/                           layers being unpacked, snapshots being
//	                               made or removed
//
// Every directory becomes visible by one rename from tmp/, so a crash leaves
// at worst something in tmp/, which Open removes. The package does not
// decide what may be removed: that is internal/image's garbage collector.
// It knows nothing of tar: callers unpack into the staging directory it
// hands out (internal/archive does the unpacking).
package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"berth/internal/errdefs"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Store is a directory of layers and active snapshots. It is safe for
// concurrent use by one process.
type Store struct {
	root string
}

// Layer is one unpacked image layer.
type Layer struct {
	ChainID digest.Digest `json:"chainID"`
	DiffID  digest.Digest `json:"diffID"`
	// Parent is the chain ID of the layer below, empty for a base layer.
	Parent digest.Digest `json:"parent,omitempty"`
	// Size is the number of bytes of regular files in the layer's diff.
	Size int64 `json:"size"`
	// Unsynced, when set, is the boot ID of the system that committed the
	// layer before its files were synced; SyncLayers clears it. After the
	// system restarted, such a layer's files may be lost with the page
	// cache, and its owner unpacks it again (ReplaceLayerFS).
	Unsynced string `json:"unsynced,omitempty"`
}

// Snapshot is a container's writable snapshot.
type Snapshot struct {
	Key string `json:"key"`
	// Parent is the chain ID of the top image layer, empty for none.
	Parent  digest.Digest `json:"parent,omitempty"`
	Created time.Time     `json:"created"`
}

// Open opens (creating if needed) the store at root and removes leftovers
// of interrupted work in tmp/. The caller must be the only process using
// root.
func Open(root string) (*Store, error) {
	for _, d := range []string{"layers", "active", "tmp", "empty"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("snapshot store: %w", err)
		}
	}
	s := &Store{root: root}
	ents, err := os.ReadDir(filepath.Join(root, "tmp"))
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(root, "tmp", e.Name())); err != nil {
			return nil, fmt.Errorf("snapshot store: remove interrupted %s: %w", e.Name(), err)
		}
	}
	return s, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// ChainIDs returns the chain ID of every prefix of diffIDs: the identity of
// a layer together with everything below it (image-spec config.md).
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
		} else {
			out[i] = digest.FromString(out[i-1].String() + " " + d.String())
		}
	}
	return out
}

func (s *Store) layerDir(chainID digest.Digest) (string, error) {
	if err := chainID.Validate(); err != nil {
		return "", errdefs.InvalidWrap(err, "chain ID %q", string(chainID))
	}
	return filepath.Join(s.root, "layers", chainID.Encoded()), nil
}

// LayerFS is the directory holding the layer's diff.
func (s *Store) LayerFS(chainID digest.Digest) (string, error) {
	d, err := s.layerDir(chainID)
	return filepath.Join(d, "fs"), err
}

// Layer returns a committed layer, or an ErrNotFound error.
func (s *Store) Layer(chainID digest.Digest) (Layer, error) {
	d, err := s.layerDir(chainID)
	if err != nil {
		return Layer{}, err
	}
	var l Layer
	return l, readRecord(filepath.Join(d, "layer.json"), &l, "layer "+chainID.String())
}

// HasLayer reports whether the layer is unpacked.
func (s *Store) HasLayer(chainID digest.Digest) bool {
	_, err := s.Layer(chainID)
	return err == nil
}

// Layers lists the committed layers.
func (s *Store) Layers() ([]Layer, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "layers"))
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	var out []Layer
	for _, e := range ents {
		l, err := s.Layer(digest.NewDigestFromEncoded(digest.SHA256, e.Name()))
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// Staging is a layer being unpacked. Unpack into Dir, then Commit or Abort.
type Staging struct {
	s   *Store
	top string
	// Dir is the directory to unpack the layer's diff into.
	Dir string
}

// NewLayer starts a layer in tmp/.
func (s *Store) NewLayer(ctx context.Context) (*Staging, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	top, err := s.tempDir()
	if err != nil {
		return nil, err
	}
	st := &Staging{s: s, top: top, Dir: filepath.Join(top, "fs")}
	if err := os.Mkdir(st.Dir, 0o755); err != nil {
		st.Abort()
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return st, nil
}

// Commit moves the unpacked layer into place. When the layer was committed
// meanwhile by someone else, the staged copy is dropped and the call
// succeeds: a layer is kept once. The caller is expected to have made the
// data durable first (Store.Sync) when it needs to survive a crash.
func (st *Staging) Commit(l Layer) error {
	if l.ChainID == "" || l.DiffID == "" {
		return errors.New("commit layer: chain ID and diff ID are required")
	}
	dst, err := st.s.layerDir(l.ChainID)
	if err != nil {
		return err
	}
	if err := writeRecord(filepath.Join(st.top, "layer.json"), l); err != nil {
		st.Abort()
		return fmt.Errorf("commit layer %s: %w", l.ChainID, err)
	}
	if err := os.Rename(st.top, dst); err != nil {
		st.Abort()
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			return nil
		}
		return fmt.Errorf("commit layer %s: %w", l.ChainID, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("commit layer %s: %w", l.ChainID, err)
	}
	return nil
}

// Abort removes the staged layer.
func (st *Staging) Abort() error { return os.RemoveAll(st.top) }

// RemoveLayer removes a committed layer (it disappears at once, by rename,
// then its files are deleted). A missing layer is not an error. Callers
// make sure nothing uses it.
func (s *Store) RemoveLayer(chainID digest.Digest) error {
	d, err := s.layerDir(chainID)
	if err != nil {
		return err
	}
	return s.removeDir(d)
}

func (s *Store) removeDir(d string) error {
	remove, err := s.unlinkDir(d)
	if err != nil {
		return err
	}
	return remove()
}

// Sync flushes the filesystem that holds the store (one syncfs), so that
// layers unpacked so far survive a crash before they are committed.
func (s *Store) Sync() error {
	fd, err := unix.Open(s.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync snapshot store: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync snapshot store: %w", err)
	}
	return nil
}

// BootID identifies the running system (the kernel's random boot_id); ""
// when it cannot be read, and then layers are synced before they are
// committed.
var BootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// UnsyncedLayers lists the layers committed before their files were
// synced: by this boot of the system (their files are in the page cache;
// SyncLayers makes them durable) and by an earlier one (their files may be
// lost).
func (s *Store) UnsyncedLayers() (current, earlier []Layer, err error) {
	ls, err := s.Layers()
	if err != nil {
		return nil, nil, err
	}
	boot := BootID()
	for _, l := range ls {
		switch {
		case l.Unsynced == "":
		case l.Unsynced == boot:
			current = append(current, l)
		default:
			earlier = append(earlier, l)
		}
	}
	return current, earlier, nil
}

// SyncLayers makes the files of layers committed in this boot durable (one
// syncfs) and then clears their marks. A layer removed meanwhile is
// skipped.
func (s *Store) SyncLayers(ls []Layer) error {
	if len(ls) == 0 {
		return nil
	}
	if err := s.Sync(); err != nil {
		return err
	}
	return s.MarkSynced(ls)
}

// MarkSynced clears the marks of layers whose files the caller synced
// (after it listed them). A layer removed meanwhile is skipped.
func (s *Store) MarkSynced(ls []Layer) error {
	for _, l := range ls {
		d, err := s.layerDir(l.ChainID)
		if err != nil {
			return err
		}
		l.Unsynced = ""
		if err := replaceRecord(filepath.Join(d, "layer.json"), l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("layer %s: %w", l.ChainID, err)
		}
	}
	return nil
}

// ReplaceLayerFS puts the files unpacked in st in the place of those of
// the committed layer l (one rename that exchanges the two directories),
// syncs them and clears l's mark; st is removed, with the old files.
func (s *Store) ReplaceLayerFS(st *Staging, l Layer) error {
	defer st.Abort()
	if err := s.Sync(); err != nil {
		return err
	}
	dst, err := s.LayerFS(l.ChainID)
	if err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, st.Dir, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE); err != nil {
		// No exchange here (or no old files): the old aside, then the new
		// in; a crash between leaves the layer marked, without files, and
		// the next Open does this again.
		if err := os.Rename(dst, filepath.Join(st.top, "old")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("layer %s: replace its files: %w", l.ChainID, err)
		}
		if err := os.Rename(st.Dir, dst); err != nil {
			return fmt.Errorf("layer %s: replace its files: %w", l.ChainID, err)
		}
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("layer %s: %w", l.ChainID, err)
	}
	return s.MarkSynced([]Layer{l})
}

// LowerDirs returns the diff directories of chainID and every layer below
// it, top-most first (overlayfs' lowerdir order).
func (s *Store) LowerDirs(chainID digest.Digest) ([]string, error) {
	var dirs []string
	for c := chainID; c != ""; {
		l, err := s.Layer(c)
		if err != nil {
			return nil, err
		}
		d, _ := s.LayerFS(c)
		dirs = append(dirs, d)
		c = l.Parent
		if len(dirs) > 500 {
			return nil, fmt.Errorf("layer %s: parent chain too long", chainID)
		}
	}
	return dirs, nil
}

var keyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func (s *Store) activeDir(key string) (string, error) {
	if !keyRE.MatchString(key) {
		return "", errdefs.Invalid("snapshot key %q: want 1-128 of [A-Za-z0-9_.-]", key)
	}
	return filepath.Join(s.root, "active", key), nil
}

// Prepare makes a writable snapshot over the layer chainID (empty: over
// nothing). It is an ErrConflict error if key exists.
func (s *Store) Prepare(ctx context.Context, key string, parent digest.Digest) (Snapshot, error) {
	dst, err := s.activeDir(key)
	if err != nil {
		return Snapshot{}, err
	}
	if parent != "" && !s.HasLayer(parent) {
		return Snapshot{}, errdefs.NotFound("prepare snapshot %s: parent layer %s", key, parent)
	}
	if _, err := os.Lstat(dst); err == nil {
		return Snapshot{}, errdefs.Conflict("snapshot %s already exists", key)
	}
	top, err := s.tempDir()
	if err != nil {
		return Snapshot{}, err
	}
	sn := Snapshot{Key: key, Parent: parent, Created: time.Now().UTC()}
	err = errors.Join(os.Mkdir(filepath.Join(top, "upper"), 0o755), os.Mkdir(filepath.Join(top, "work"), 0o700),
		writeRecord(filepath.Join(top, "snapshot.json"), sn))
	if err == nil {
		err = os.Rename(top, dst)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			err = errdefs.Conflict("snapshot %s already exists", key)
		}
	}
	if err == nil {
		if err = syncDir(filepath.Dir(dst)); err != nil {
			s.removeDir(dst)
		}
	}
	if err != nil {
		os.RemoveAll(top)
		return Snapshot{}, fmt.Errorf("prepare snapshot %s: %w", key, err)
	}
	return sn, nil
}

// Snapshot returns an active snapshot, or an ErrNotFound error.
func (s *Store) Snapshot(key string) (Snapshot, error) {
	d, err := s.activeDir(key)
	if err != nil {
		return Snapshot{}, err
	}
	var sn Snapshot
	return sn, readRecord(filepath.Join(d, "snapshot.json"), &sn, "snapshot "+key)
}

// Snapshots lists the active snapshots.
func (s *Store) Snapshots() ([]Snapshot, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "active"))
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	var out []Snapshot
	for _, e := range ents {
		sn, err := s.Snapshot(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, sn)
	}
	return out, nil
}

// UpperDir is the writable directory of an active snapshot.
func (s *Store) UpperDir(key string) (string, error) {
	d, err := s.activeDir(key)
	return filepath.Join(d, "upper"), err
}

// Remove removes an active snapshot (it must not be mounted). A missing
// snapshot is not an error.
func (s *Store) Remove(key string) error {
	d, err := s.activeDir(key)
	if err != nil {
		return err
	}
	return s.removeDir(d)
}

// Unlink removes an active snapshot from the store at once, by one rename
// into tmp/ (a mount of it keeps working), and returns the removal of its
// files, for the caller to run when it suits it (after answering a request,
// and after unmounting it): a crash before then leaves them in tmp/, which
// Open removes. A missing
// snapshot is not an error (the removal then does nothing).
func (s *Store) Unlink(key string) (func() error, error) {
	d, err := s.activeDir(key)
	if err != nil {
		return nil, err
	}
	return s.unlinkDir(d)
}

// unlinkDir moves d into tmp/ and returns the removal of its files; a
// missing d is not an error.
func (s *Store) unlinkDir(d string) (func() error, error) {
	tmp, err := s.tempName()
	if err != nil {
		return nil, err
	}
	if err := os.Rename(d, tmp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return func() error { return nil }, nil
		}
		return nil, fmt.Errorf("remove %s: %w", d, err)
	}
	return func() error {
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("remove %s: %w", d, err)
		}
		return nil
	}, nil
}

// Mount mounts the active snapshot key on target: overlayfs with the
// parent's layers read-only below and the snapshot's upper directory.
func (s *Store) Mount(key, target string) error {
	sn, err := s.Snapshot(key)
	if err != nil {
		return err
	}
	lowers := []string{filepath.Join(s.root, "empty")}
	if sn.Parent != "" {
		if lowers, err = s.LowerDirs(sn.Parent); err != nil {
			return fmt.Errorf("mount snapshot %s: %w", key, err)
		}
	}
	d, _ := s.activeDir(key)
	if err := mountOverlay(target, lowers, filepath.Join(d, "upper"), filepath.Join(d, "work")); err != nil {
		return fmt.Errorf("mount snapshot %s on %s: %w", key, target, err)
	}
	return nil
}

// MountView mounts a read-only view on target: the layer chainID, with the
// upper directory of active snapshot key on top when key is not empty. It
// does not disturb a mount of the same snapshot (the upper directory is
// only read, as a lower layer).
func (s *Store) MountView(key string, chainID digest.Digest, target string) error {
	var lowers []string
	if key != "" {
		sn, err := s.Snapshot(key)
		if err != nil {
			return err
		}
		up, _ := s.UpperDir(key)
		lowers = append(lowers, up)
		chainID = sn.Parent
	}
	if chainID != "" {
		l, err := s.LowerDirs(chainID)
		if err != nil {
			return fmt.Errorf("mount view: %w", err)
		}
		lowers = append(lowers, l...)
	}
	// overlayfs wants two lower layers when there is no upper one.
	for len(lowers) < 2 {
		lowers = append(lowers, filepath.Join(s.root, "empty"))
	}
	if err := mountOverlay(target, lowers, "", ""); err != nil {
		return fmt.Errorf("mount view on %s: %w", target, err)
	}
	return nil
}

// Unmount undoes Mount or MountView.
func Unmount(target string) error {
	if err := unix.Unmount(target, 0); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// mountOverlay mounts overlayfs with one fsconfig call per lower layer
// ("lowerdir+", Linux 6.8), so the number of layers is not bounded by the
// page-sized option string of mount(2); older kernels get mount(2).
func mountOverlay(target string, lowers []string, upper, work string) error {
	err := mountOverlayFsconfig(target, lowers, upper, work)
	if err == nil || !errors.Is(err, errNoLowerdirPlus) {
		return err
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
	}
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("overlay options of %d layers exceed %d bytes (this kernel lacks lowerdir+)", len(lowers), os.Getpagesize())
	}
	flags := uintptr(0)
	if upper == "" {
		flags = unix.MS_RDONLY
	}
	return unix.Mount("overlay", target, "overlay", flags, opts)
}

var errNoLowerdirPlus = errors.New("lowerdir+ not supported")

func mountOverlayFsconfig(target string, lowers []string, upper, work string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("%w: fsopen: %v", errNoLowerdirPlus, err)
	}
	defer unix.Close(fsfd)
	for i, l := range lowers {
		if err := unix.FsconfigSetString(fsfd, "lowerdir+", l); err != nil {
			if i == 0 && err == unix.EINVAL {
				return fmt.Errorf("%w: %v", errNoLowerdirPlus, err)
			}
			return fmt.Errorf("lowerdir+ %s: %w", l, err)
		}
	}
	if upper != "" {
		if err := unix.FsconfigSetString(fsfd, "upperdir", upper); err != nil {
			return fmt.Errorf("upperdir %s: %w", upper, err)
		}
		if err := unix.FsconfigSetString(fsfd, "workdir", work); err != nil {
			return fmt.Errorf("workdir %s: %w", work, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create overlay: %w", err)
	}
	attr := 0
	if upper == "" {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount overlay: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount overlay: %w", err)
	}
	return nil
}

func (s *Store) tempName() (string, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	return filepath.Join(s.root, "tmp", hex.EncodeToString(rnd[:])), nil
}

func (s *Store) tempDir() (string, error) {
	d, err := s.tempName()
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(d, 0o700); err != nil {
		return "", fmt.Errorf("snapshot store: %w", err)
	}
	return d, nil
}

// readRecord reads the JSON record of a layer or snapshot (what names it
// in errors); a missing one is an ErrNotFound error.
func readRecord(path string, v any, what string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("%s", what)
	}
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// writeRecord writes a record durably: it is read back after a crash
// whenever the rename that publishes its directory survived.
func writeRecord(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// replaceRecord replaces a record durably and atomically: a crash leaves
// the old one or the new one (and perhaps the temporary file beside it).
func replaceRecord(path string, v any) error {
	tmp := path + ".new"
	if err := writeRecord(tmp, v); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// syncDir makes the renames into dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// TempCount is the number of entries in tmp/ (work in progress, or
// leftovers of a crash until the next Open).
func (s *Store) TempCount() (int, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "tmp"))
	return len(ents), err
}
