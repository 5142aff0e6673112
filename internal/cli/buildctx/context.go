package buildctx

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DefaultDockerfile is the Dockerfile's name when -f is not given.
const DefaultDockerfile = "Dockerfile"

// LocalDir resolves a context directory and the Dockerfile in it: the directory's absolute
// path with symbolic links resolved, and the Dockerfile's path relative to it (which
// starts with "../" when -f names a file outside the context). An -f path is relative to
// the current directory; without -f, "Dockerfile" (or "dockerfile") in the context.
func LocalDir(dir, dockerfile string) (contextDir, relDockerfile string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("unable to get absolute context directory of given context directory %q: %w", dir, err)
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return "", "", fmt.Errorf("unable to evaluate symlinks in context path: %w", err)
	}
	st, err := os.Lstat(abs)
	if err != nil {
		return "", "", fmt.Errorf("unable to stat context directory %q: %w", abs, err)
	}
	if !st.IsDir() {
		return "", "", fmt.Errorf("context must be a directory: %s", abs)
	}
	if dockerfile == "-" {
		return abs, "-", nil
	}
	df := dockerfile
	if df != "" {
		if df, err = filepath.Abs(df); err != nil {
			return "", "", fmt.Errorf("unable to get absolute path to Dockerfile: %w", err)
		}
	} else {
		df = filepath.Join(abs, DefaultDockerfile)
		if _, err := os.Lstat(df); os.IsNotExist(err) {
			alt := filepath.Join(abs, strings.ToLower(DefaultDockerfile))
			if _, err := os.Lstat(alt); err == nil {
				df = alt
			}
		}
	}
	if df, err = filepath.EvalSymlinks(df); err != nil {
		if os.IsNotExist(err) {
			//lint:ignore ST1005 docker's message
			return "", "", fmt.Errorf("Cannot locate Dockerfile: %q", df)
		}
		return "", "", fmt.Errorf("unable to evaluate symlinks in Dockerfile path: %w", err)
	}
	rel, err := filepath.Rel(abs, df)
	if err != nil {
		return "", "", fmt.Errorf("unable to get relative Dockerfile path: %w", err)
	}
	return abs, rel, nil
}

// ReadDockerignore reads the .dockerignore of a context directory (none is no pattern).
func ReadDockerignore(contextDir string) ([]string, error) {
	f, err := os.Open(filepath.Join(contextDir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadIgnore(f)
}

// KeepBuildFiles adds exceptions so that .dockerignore and the Dockerfile are sent even
// when a pattern excludes them (the builder needs both).
func KeepBuildFiles(excludes []string, relDockerfile string, dockerfileFromStdin bool) ([]string, error) {
	m, err := NewMatcher(excludes)
	if err != nil {
		return nil, err
	}
	if m.Matches(".dockerignore") {
		excludes = append(excludes, "!.dockerignore")
	}
	relDockerfile = filepath.ToSlash(relDockerfile)
	if !dockerfileFromStdin && m.Matches(relDockerfile) {
		excludes = append(excludes, "!"+relDockerfile)
	}
	return excludes, nil
}

// Options tune Tar.
type Options struct {
	// Excludes are .dockerignore patterns.
	Excludes []string
	// Dockerfile, when set, is a Dockerfile from outside the context (or stdin), added
	// under a random name that .dockerignore then excludes from COPY; ExtraName returns it.
	Dockerfile []byte
}

// Context is a tar stream of a context directory being written.
type Context struct {
	io.ReadCloser
	// DockerfileName is the name Options.Dockerfile got in the context ("" without it).
	DockerfileName string
}

// Tar writes the context directory dir as a tar stream: paths relative to it, owned by
// 0:0, without what the patterns exclude.
func Tar(dir string, o Options) (*Context, error) {
	m, err := NewMatcher(o.Excludes)
	if err != nil {
		return nil, err
	}
	c := &Context{}
	if o.Dockerfile != nil {
		var b [10]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		c.DockerfileName = ".dockerfile." + hex.EncodeToString(b[:])
	}
	r, w := io.Pipe()
	c.ReadCloser = r
	go func() {
		tw := tar.NewWriter(w)
		err := writeContext(tw, dir, m)
		if err == nil && c.DockerfileName != "" {
			err = addExtraDockerfile(tw, dir, m, c.DockerfileName, o.Dockerfile)
		}
		if cerr := tw.Close(); err == nil {
			err = cerr
		}
		w.CloseWithError(err)
	}()
	return c, nil
}

func writeContext(tw *tar.Writer, dir string, m *Matcher) error {
	links := map[[2]uint64]string{}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk the build context: %w", err)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if m.Matches(rel) {
			if !d.IsDir() {
				return nil
			}
			// A directory stays walked when an exception may re-include something in it.
			if !m.Exclusions() {
				return filepath.SkipDir
			}
			for _, pat := range m.Patterns() {
				if pat.Exclusion() && strings.HasPrefix(pat.String()+"/", rel+"/") {
					return nil
				}
			}
			return filepath.SkipDir
		}
		return addEntry(tw, p, rel, links)
	})
}

func addEntry(tw *tar.Writer, p, name string, links map[[2]uint64]string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket != 0 {
		return nil
	}
	var target string
	if fi.Mode()&os.ModeSymlink != 0 {
		if target, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, target)
	if err != nil {
		return err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Format = tar.FormatPAX
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
		id := [2]uint64{uint64(st.Dev), st.Ino}
		if first, ok := links[id]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		} else {
			links[id] = name
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// addExtraDockerfile adds the outside Dockerfile under name, and a .dockerignore that
// also excludes it (the context's own, extended).
func addExtraDockerfile(tw *tar.Writer, dir string, m *Matcher, name string, content []byte) error {
	now := time.Now().Truncate(time.Second)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, ModTime: now, Typeflag: tar.TypeReg, Size: int64(len(content)), Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(content); err != nil {
		return err
	}
	ignore, err := os.ReadFile(filepath.Join(dir, ".dockerignore"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	ignore = append(ignore, []byte("\n"+name+"\n")...)
	if err := tw.WriteHeader(&tar.Header{Name: ".dockerignore", Mode: 0o600, ModTime: now, Typeflag: tar.TypeReg, Size: int64(len(ignore)), Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err = tw.Write(ignore)
	return err
}

// FromReader takes a context from stdin: a tar archive (compressed or not) is the context
// as it is; anything else is a Dockerfile, put alone in a context as "Dockerfile".
func FromReader(r io.Reader, dockerfile string) (io.ReadCloser, string, error) {
	br := bufio.NewReaderSize(r, 1024)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("read the build context from stdin: %w", err)
	}
	if isArchive(head) {
		if dockerfile == "" {
			dockerfile = DefaultDockerfile
		}
		return io.NopCloser(br), dockerfile, nil
	}
	if dockerfile == "-" {
		return nil, "", errors.New("build context is not an archive")
	}
	content, err := io.ReadAll(br)
	if err != nil {
		return nil, "", fmt.Errorf("read the Dockerfile from stdin: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now().Truncate(time.Second)
	if err := tw.WriteHeader(&tar.Header{Name: DefaultDockerfile, Mode: 0o600, ModTime: now, Typeflag: tar.TypeReg, Size: int64(len(content))}); err != nil {
		return nil, "", err
	}
	if _, err := tw.Write(content); err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	return io.NopCloser(&buf), DefaultDockerfile, nil
}

// isArchive reports whether head starts a tar archive or a compressed stream.
func isArchive(head []byte) bool {
	for _, magic := range [][]byte{{0x1F, 0x8B, 0x08}, {0x42, 0x5A, 0x68}, {0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00}, {0x28, 0xB5, 0x2F, 0xFD}} {
		if bytes.HasPrefix(head, magic) {
			return true
		}
	}
	if len(head) < 512 {
		return false
	}
	if bytes.HasPrefix(head[257:], []byte("ustar")) {
		return true
	}
	_, err := tar.NewReader(bytes.NewReader(head)).Next()
	return err == nil
}
