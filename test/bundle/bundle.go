// Package bundle makes OCI bundles for tests and benchmarks: a tiny rootfs made
// from a static busybox plus a config.json equal to `runc spec`'s default,
// adjusted by functional options.
//
// Creating a bundle needs no privileges; running it needs root.
//
//	b := bundle.ForTest(t, bundle.WithArgs("/bin/true"), bundle.WithTerminal(false))
//	// run b.Dir with a runtime; cgroups go to <caller's cgroup>/berth-test/<b.ID>
package bundle

import (
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultCgroupParent is the relative cgroup under which bundles put their
// containers by default: "<runtime's own cgroup>/berth-test/<ID>", unless
// $BERTH_TEST_CGROUP_PARENT says otherwise (see CgroupParent).
const DefaultCgroupParent = "berth-test"

// CgroupParentEnv names an environment variable that replaces
// DefaultCgroupParent. hack/test.sh sets it to a name unique to the run
// ("berth-test-run-<pid>"), so that it can check for and remove exactly the
// cgroups of its own tests: in hierarchies where the caller's cgroup is the
// root, a shared "berth-test" also holds other runs' containers.
const CgroupParentEnv = "BERTH_TEST_CGROUP_PARENT"

// CgroupParent returns $BERTH_TEST_CGROUP_PARENT, or DefaultCgroupParent.
// Tests that build their own cgroupsPath should start it with this.
func CgroupParent() string {
	if v := os.Getenv(CgroupParentEnv); v != "" {
		return v
	}
	return DefaultCgroupParent
}

// BusyboxEnv names an environment variable that overrides the busybox binary
// used for rootfs creation (default /bin/busybox; it must be statically linked).
const BusyboxEnv = "BERTH_BUSYBOX"

// Bundle is an OCI bundle on disk.
type Bundle struct {
	// ID is a unique name (random hex) usable as a container ID; it is also
	// the last element of the default cgroupsPath.
	ID string
	// Dir is the bundle directory (holds config.json and rootfs/).
	Dir string
	// Rootfs is the absolute path of the root filesystem (Dir/rootfs).
	Rootfs string
	// Spec is the configuration written to Dir/config.json. After changing
	// it, call Save.
	Spec *specs.Spec
}

// ConfigPath is Dir/config.json.
func (b *Bundle) ConfigPath() string { return filepath.Join(b.Dir, "config.json") }

// Save (re)writes Dir/config.json from b.Spec.
func (b *Bundle) Save() error {
	data, err := json.MarshalIndent(b.Spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(b.ConfigPath(), append(data, '\n'), 0o644)
}

type options struct {
	id       string
	busybox  string
	mutators []func(*specs.Spec)
	files    map[string]string
}

// Option configures Create / ForTest.
type Option func(*options)

// WithSpec applies fn to the spec before it is written. Options apply in
// order, after the defaults (including the default cgroupsPath) are set.
func WithSpec(fn func(*specs.Spec)) Option {
	return func(o *options) { o.mutators = append(o.mutators, fn) }
}

// WithID sets the bundle ID (default: 16 random hex digits).
func WithID(id string) Option { return func(o *options) { o.id = id } }

// WithBusybox uses the given static busybox binary instead of $BERTH_BUSYBOX or /bin/busybox.
func WithBusybox(path string) Option { return func(o *options) { o.busybox = path } }

// WithFile writes a file into the rootfs (path relative to the rootfs root,
// parents created, mode 0644).
func WithFile(path, content string) Option {
	return func(o *options) {
		if o.files == nil {
			o.files = map[string]string{}
		}
		o.files[path] = content
	}
}

// WithArgs sets process.args.
func WithArgs(args ...string) Option {
	return WithSpec(func(s *specs.Spec) { s.Process.Args = slices.Clone(args) })
}

// WithEnv appends KEY=VALUE entries to process.env (replacing an existing KEY).
func WithEnv(env ...string) Option {
	return WithSpec(func(s *specs.Spec) {
		for _, kv := range env {
			key, _, _ := strings.Cut(kv, "=")
			s.Process.Env = slices.DeleteFunc(s.Process.Env, func(e string) bool {
				k, _, _ := strings.Cut(e, "=")
				return k == key
			})
			s.Process.Env = append(s.Process.Env, kv)
		}
	})
}

// WithTerminal sets process.terminal.
func WithTerminal(on bool) Option {
	return WithSpec(func(s *specs.Spec) { s.Process.Terminal = on })
}

// WithCgroupsPath sets linux.cgroupsPath ("" removes it: the runtime's default).
func WithCgroupsPath(p string) Option {
	return WithSpec(func(s *specs.Spec) { s.Linux.CgroupsPath = p })
}

// WithReadonlyRootfs sets root.readonly.
func WithReadonlyRootfs(ro bool) Option {
	return WithSpec(func(s *specs.Spec) { s.Root.Readonly = ro })
}

// WithHostname sets hostname.
func WithHostname(h string) Option {
	return WithSpec(func(s *specs.Spec) { s.Hostname = h })
}

// WithNamespaces replaces linux.namespaces.
func WithNamespaces(ns ...specs.LinuxNamespace) Option {
	return WithSpec(func(s *specs.Spec) { s.Linux.Namespaces = slices.Clone(ns) })
}

// WithNamespace adds a namespace, or sets the path of an existing one of that type.
func WithNamespace(typ specs.LinuxNamespaceType, path string) Option {
	return WithSpec(func(s *specs.Spec) {
		for i := range s.Linux.Namespaces {
			if s.Linux.Namespaces[i].Type == typ {
				s.Linux.Namespaces[i].Path = path
				return
			}
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: typ, Path: path})
	})
}

// WithoutNamespace removes namespaces of the given types (e.g. network, to
// share the host's network namespace).
func WithoutNamespace(types ...specs.LinuxNamespaceType) Option {
	return WithSpec(func(s *specs.Spec) {
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool {
			return slices.Contains(types, n.Type)
		})
	})
}

// WithMounts appends mounts.
func WithMounts(m ...specs.Mount) Option {
	return WithSpec(func(s *specs.Spec) { s.Mounts = append(s.Mounts, m...) })
}

// WithoutMount removes the mounts whose destination is dst.
func WithoutMount(dst string) Option {
	return WithSpec(func(s *specs.Spec) {
		s.Mounts = slices.DeleteFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == dst })
	})
}

// Create makes an OCI bundle in dir (created if missing; it should be empty):
// dir/rootfs holds /bin/busybox with a symlink per applet, /etc/passwd and
// /etc/group (root, nobody), /tmp, and empty mount points; dir/config.json is
// DefaultSpec with cgroupsPath CgroupParent()+"/<ID>", modified by opts.
func Create(dir string, opts ...Option) (*Bundle, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.id == "" {
		o.id = randomID()
	}
	if o.busybox == "" {
		o.busybox = os.Getenv(BusyboxEnv)
	}
	if o.busybox == "" {
		o.busybox = "/bin/busybox"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b := &Bundle{ID: o.id, Dir: abs, Rootfs: filepath.Join(abs, "rootfs")}
	if err := makeRootfs(b.Rootfs, o.busybox); err != nil {
		return nil, fmt.Errorf("bundle: rootfs: %w", err)
	}
	for p, content := range o.files {
		full := filepath.Join(b.Rootfs, filepath.Clean("/"+p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	b.Spec = DefaultSpec()
	b.Spec.Linux.CgroupsPath = CgroupParent() + "/" + b.ID
	for _, fn := range o.mutators {
		fn(b.Spec)
	}
	if err := b.Save(); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return b, nil
}

// ForTest creates a bundle in a fresh t.TempDir(), failing the test on error.
//
// At cleanup it removes the bundle's own cgroup directories if a runtime left
// them behind (logging them; use CgroupDirs to assert on leaks). It does not
// remove the parent (CgroupParent), because another test or package may be
// creating a container under it concurrently; hack/test.sh removes its
// per-run parent after the whole run.
func ForTest(t testing.TB, opts ...Option) *Bundle {
	t.Helper()
	b, err := Create(t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dirs, err := b.CgroupDirs()
		if err != nil {
			return
		}
		for _, d := range dirs {
			if err := os.Remove(d); err == nil {
				t.Logf("bundle %s: removed leftover cgroup %s", b.ID, d)
			} else {
				t.Logf("bundle %s: leftover cgroup %s: %v", b.ID, d, err)
			}
		}
	})
	return b
}

// CgroupDirs returns the existing cgroupfs directories of this bundle's
// linux.cgroupsPath, as a runtime running in the caller's cgroups would
// create them (see CgroupDirs).
func (b *Bundle) CgroupDirs() ([]string, error) {
	if b.Spec.Linux == nil || b.Spec.Linux.CgroupsPath == "" {
		return nil, nil
	}
	return CgroupDirs(b.Spec.Linux.CgroupsPath)
}

func randomID() string {
	var buf [8]byte
	if _, err := rand.Read(buf[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(buf[:])
}

// appletCache maps a busybox path to its applet list.
var appletCache sync.Map // string -> []string

// Prepare runs `busybox --list` once and caches the result, so that later bundles are
// made without starting a process. Test binaries that reap every child zombie (a
// subreaper's reaper goroutine) call it before starting their reaper: otherwise the
// reaper can take the exit status of `busybox --list` away from its exec.Cmd.
func Prepare(busybox string) error {
	if err := checkStatic(busybox); err != nil {
		return err
	}
	_, err := applets(busybox)
	return err
}

func applets(busybox string) ([]string, error) {
	if v, ok := appletCache.Load(busybox); ok {
		return v.([]string), nil
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	var list []string
	for _, l := range strings.Fields(string(out)) {
		if l != "busybox" && !strings.Contains(l, "/") {
			list = append(list, l)
		}
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s --list: no applets", busybox)
	}
	appletCache.Store(busybox, list)
	return list, nil
}

var staticChecked sync.Map // string -> error

// checkStatic makes sure the binary has no ELF interpreter: the rootfs has no libc.
func checkStatic(path string) error {
	if v, ok := staticChecked.Load(path); ok {
		if v == nil {
			return nil
		}
		return v.(error)
	}
	var res error
	f, err := elf.Open(path)
	if err != nil {
		res = err
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				res = fmt.Errorf("%s is dynamically linked; install busybox-static or set $%s", path, BusyboxEnv)
			}
		}
		f.Close()
	}
	staticChecked.Store(path, res)
	return res
}

const passwd = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const group = `root:x:0:
nobody:x:65534:
`

func makeRootfs(rootfs, busybox string) error {
	if err := checkStatic(busybox); err != nil {
		return err
	}
	list, err := applets(busybox)
	if err != nil {
		return err
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "root", "run", "var", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o777|os.ModeSticky); err != nil {
		return err
	}
	// Copy (not hardlink) busybox: a container with a writable rootfs must not
	// be able to modify the host's binary. io.Copy uses copy_file_range.
	if err := copyFile(busybox, filepath.Join(rootfs, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	for _, a := range list {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte(passwd), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(rootfs, "etc", "group"), []byte(group), 0o644)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // umask
}
