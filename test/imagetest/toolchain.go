package imagetest

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ToolchainPackages are the host's Debian packages whose files make the C toolchain of
// WriteToolchainTar (build-essential installs them), for the host's gcc: on Debian 12 (gcc
// 12, x86_64) gcc-12, cpp-12, binutils, binutils-x86-64-linux-gnu, libc6-dev, libgcc-12-dev
// and linux-libc-dev. It also returns the GNU triplet (x86_64-linux-gnu).
func ToolchainPackages() (pkgs []string, triplet string, err error) {
	out, err := exec.Command("gcc", "-dumpversion").Output()
	if err != nil {
		return nil, "", fmt.Errorf("gcc -dumpversion (apt-get install build-essential): %v", err)
	}
	v := strings.TrimSpace(string(out))
	if out, err = exec.Command("gcc", "-dumpmachine").Output(); err != nil {
		return nil, "", fmt.Errorf("gcc -dumpmachine: %v", err)
	}
	triplet = strings.TrimSpace(string(out))
	return []string{"gcc-" + v, "cpp-" + v, "binutils", "binutils-" + strings.ReplaceAll(triplet, "_", "-"),
		"libc6-dev", "libgcc-" + v + "-dev", "linux-libc-dev"}, triplet, nil
}

// toolchainExtra are files of other packages the toolchain needs: the unversioned gcc and cpp
// (packages gcc and cpp) and libgcc_s.so.1, which libgcc-12-dev's libgcc_s.so linker script
// names (for dynamic links). A missing one is skipped.
func toolchainExtra(triplet string) []string {
	return []string{"/usr/bin/gcc", "/usr/bin/cpp", "/usr/lib/" + triplet + "/libgcc_s.so.1", "/lib/" + triplet + "/libgcc_s.so.1"}
}

// toolchainSkip reports whether a packaged path is left out of the toolchain image: documents,
// and programs and libraries a plain C build does not run (LTO, gcov, gprofng, gold, the
// sanitizers, the gdb plugin), which would double the image's size.
func toolchainSkip(p string) bool {
	if strings.HasPrefix(p, "/usr/share/") || strings.HasPrefix(p, "/etc/") ||
		strings.HasPrefix(p, "/usr/lib/compat-ld/") || strings.HasPrefix(p, "/usr/lib/gold-ld/") ||
		strings.Contains(p, "/gprofng") || strings.Contains(p, "/plugin/") || strings.Contains(p, "/audit/") {
		return true
	}
	if strings.Contains(p, "/include/") {
		return false
	}
	base := path.Base(p)
	for _, s := range []string{"lto1", "lto-dump", "gcov", "gp-", "gprof", "gold", "dwp", "asan", "tsan", "lsan", "ubsan", "libcc1"} {
		if strings.Contains(base, s) {
			return true
		}
	}
	return false
}

var toolchainMTime = time.Unix(1700000000, 0)

// WriteToolchainTar writes a root filesystem tar of busybox-static (applets in /bin,
// /etc/passwd and group, /tmp, /root) and the host's C toolchain (ToolchainPackages' files
// without documents, the shared libraries their programs load, /usr/bin/gcc, cc and cpp), in
// which `gcc -static -O2 -o /hello /hello.c && /hello` works (and dynamic links too). The tar
// is the same for the same host packages: sorted, root-owned, fixed times, hard links kept.
func WriteToolchainTar(w io.Writer) error {
	b := newRootfsBuilder()
	if err := b.busybox(); err != nil {
		return err
	}
	// /lib and /lib64 as on the host (symbolic links into /usr on a merged-/usr system): the
	// programs' interpreter is /lib64/ld-linux-x86-64.so.2 and libc.so names
	// /lib/x86_64-linux-gnu/libc.so.6. /bin and /sbin stay busybox's directories; the
	// toolchain's paths are resolved to /usr/bin.
	for _, d := range []string{"/lib", "/lib64"} {
		if target, err := os.Readlink(d); err == nil {
			b.add(&tar.Header{Name: d[1:], Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777})
		}
	}
	pkgs, triplet, err := ToolchainPackages()
	if err != nil {
		return err
	}
	var paths []string
	for _, pkg := range pkgs {
		out, err := exec.Command("dpkg-query", "-L", pkg).Output()
		if err != nil {
			return fmt.Errorf("dpkg-query -L %s (is build-essential installed?): %v", pkg, err)
		}
		paths = append(paths, strings.Split(strings.TrimSpace(string(out)), "\n")...)
	}
	for _, p := range toolchainExtra(triplet) {
		if _, err := os.Lstat(p); err == nil {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") || toolchainSkip(p) {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			// diverted or removed by the admin
			continue
		}
		if fi.IsDir() {
			// directories come with their files (an empty packaged directory is not needed)
			continue
		}
		if err := b.addHostPath(p, 0); err != nil && err != errSkip {
			return err
		}
	}
	if _, ok := b.entries["usr/bin/gcc"]; !ok {
		return errors.New("toolchain: /usr/bin/gcc is missing (apt-get install build-essential)")
	}
	b.add(&tar.Header{Name: "usr/bin/cc", Typeflag: tar.TypeSymlink, Linkname: "gcc", Mode: 0o777})
	if err := b.sharedLibraries(triplet); err != nil {
		return err
	}
	return b.write(w)
}

// WriteBusyboxTar writes the busybox part of WriteToolchainTar alone: busybox-static with its
// applet links in /bin, /etc/passwd and group, /tmp and /root (a plain base image, without
// the odd files of BusyboxRootfs).
func WriteBusyboxTar(w io.Writer) error {
	b := newRootfsBuilder()
	if err := b.busybox(); err != nil {
		return err
	}
	return b.write(w)
}

var (
	toolchainOnce sync.Once
	toolchainTar  []byte
	toolchainErr  error
)

// ToolchainTar is WriteToolchainTar's tar (made once per process, about 84 MB on Debian 12).
func ToolchainTar(t testing.TB) []byte {
	t.Helper()
	b, err := ToolchainTarBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ToolchainTarBytes is ToolchainTar for programs (made once per process).
func ToolchainTarBytes() ([]byte, error) {
	toolchainOnce.Do(func() {
		var buf bytes.Buffer
		toolchainErr = WriteToolchainTar(&buf)
		toolchainTar = buf.Bytes()
	})
	return toolchainTar, toolchainErr
}

// rootfsBuilder collects a root filesystem's entries (by name, without the leading slash) and
// writes them sorted, parents first.
type rootfsBuilder struct {
	entries map[string]*tar.Header
	// files: the host file of each regular entry, or data its content
	files map[string]string
	data  map[string]string
	// inode: the host inode of each regular entry with more than one link
	inode map[string][2]uint64
}

func newRootfsBuilder() *rootfsBuilder {
	return &rootfsBuilder{entries: map[string]*tar.Header{}, files: map[string]string{}, data: map[string]string{}, inode: map[string][2]uint64{}}
}

func (b *rootfsBuilder) add(h *tar.Header) {
	if _, ok := b.entries[h.Name]; ok {
		return
	}
	for d := path.Dir(h.Name); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := b.entries[d]; !ok {
			b.entries[d] = &tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}
		}
	}
	b.entries[h.Name] = h
}

func (b *rootfsBuilder) busybox() error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	bb, err = filepath.EvalSymlinks(bb)
	if err != nil {
		return err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %v", err)
	}
	b.add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755})
	b.files["bin/busybox"] = bb
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" {
			b.add(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
		}
	}
	b.add(&tar.Header{Name: "tmp", Typeflag: tar.TypeDir, Mode: 0o1777})
	b.add(&tar.Header{Name: "root", Typeflag: tar.TypeDir, Mode: 0o700})
	b.add(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644})
	b.data["etc/passwd"] = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
	b.add(&tar.Header{Name: "etc/group", Typeflag: tar.TypeReg, Mode: 0o644})
	b.data["etc/group"] = "root:x:0:\nnogroup:x:65534:\n"
	return nil
}

// addHostPath adds the host's file p under its path with its directories' symbolic links
// resolved, and the target of a symbolic link (a link whose target is left out or missing is
// left out too).
func (b *rootfsBuilder) addHostPath(p string, depth int) error {
	if depth > 40 {
		return fmt.Errorf("toolchain: too many levels of symbolic links at %s", p)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errSkip
		}
		return err
	}
	p = filepath.Join(dir, filepath.Base(p))
	name := p[1:]
	if _, ok := b.entries[name]; ok {
		return nil
	}
	if toolchainSkip(p) {
		return errSkip
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errSkip
		}
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		abs := target
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(dir, target)
		}
		if err := b.addHostPath(abs, depth+1); err != nil {
			if err == errSkip {
				return nil
			}
			return err
		}
		b.add(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777})
	case fi.Mode().IsRegular():
		b.add(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: int64(fi.Mode().Perm())})
		b.files[name] = p
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			b.inode[name] = [2]uint64{st.Dev, st.Ino}
		}
	case fi.IsDir():
		b.add(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755})
	default:
		return errSkip
	}
	return nil
}

var errSkip = errors.New("skipped")

// sharedLibraries adds the libraries (and the interpreter) the ELF programs and libraries
// added so far need, until none is missing. It looks where the dynamic loader looks without a
// cache: Debian's multiarch directories first.
func (b *rootfsBuilder) sharedLibraries(triplet string) error {
	libDirs := []string{"/usr/lib/" + triplet, "/lib/" + triplet, "/usr/lib", "/lib", "/usr/lib64", "/lib64"}
	seen := map[string]bool{}
	for {
		var todo []string
		for name := range b.files {
			if !seen[name] {
				todo = append(todo, name)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		sort.Strings(todo)
		for _, name := range todo {
			seen[name] = true
			libs, interp, err := elfNeeds(b.files[name])
			if err != nil {
				return fmt.Errorf("toolchain: %s: %v", b.files[name], err)
			}
			if interp != "" {
				if err := b.addHostPath(interp, 0); err != nil && err != errSkip {
					return err
				}
			}
			for _, lib := range libs {
				found := false
				for _, d := range libDirs {
					p := filepath.Join(d, lib)
					if _, err := os.Stat(p); err != nil {
						continue
					}
					if err := b.addHostPath(p, 0); err != nil && err != errSkip {
						return err
					}
					found = true
					break
				}
				if !found {
					return fmt.Errorf("toolchain: %s needs %s, not found in %v", b.files[name], lib, libDirs)
				}
			}
		}
	}
}

// elfNeeds lists the DT_NEEDED libraries and the interpreter of an ELF program or shared
// library (nothing for other files, static archives and objects).
func elfNeeds(p string) ([]string, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, "", nil
	}
	e, err := elf.NewFile(f)
	if err != nil {
		return nil, "", err
	}
	if e.Type != elf.ET_EXEC && e.Type != elf.ET_DYN {
		return nil, "", nil
	}
	var interp string
	for _, prog := range e.Progs {
		if prog.Type == elf.PT_INTERP {
			data, err := io.ReadAll(prog.Open())
			if err != nil {
				return nil, "", err
			}
			interp = strings.TrimRight(string(data), "\x00")
		}
	}
	libs, err := e.ImportedLibraries()
	if err != nil {
		return nil, "", err
	}
	return libs, interp, nil
}

func (b *rootfsBuilder) write(w io.Writer) error {
	names := make([]string, 0, len(b.entries))
	for n := range b.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	// Names of one host inode: the first in order is the file, the others hard links to it.
	first := map[[2]uint64]string{}
	for _, n := range names {
		k, ok := b.inode[n]
		if !ok {
			continue
		}
		if f, ok := first[k]; ok {
			b.entries[n].Typeflag, b.entries[n].Linkname = tar.TypeLink, f
		} else {
			first[k] = n
		}
	}
	tw := tar.NewWriter(w)
	for _, n := range names {
		h := *b.entries[n]
		h.ModTime = toolchainMTime
		h.Format = tar.FormatPAX
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		var data []byte
		if h.Typeflag == tar.TypeReg {
			if src, ok := b.files[n]; ok {
				var err error
				if data, err = os.ReadFile(src); err != nil {
					return err
				}
			} else {
				data = []byte(b.data[n])
			}
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("toolchain tar %s: %v", n, err)
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}
