package build

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/internal/archive"
	"berth/internal/cli/buildctx"
	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/snapshot"
)

// copyRequest is a COPY or ADD, expanded.
type copyRequest struct {
	add      bool
	sources  []string
	inline   []instructions.SourceContent
	dest     string
	from     string
	chown    string
	chmod    string
	excludes []string
	parents  bool
	checksum string
	unpack   bool
	text     string
}

// copyEntry is one thing a COPY writes: a file, directory or symlink from a source tree
// (src), inline data, or an archive to extract (extract) at name in the rootfs.
type copyEntry struct {
	name    string // in the rootfs, no leading "/"
	src     string // host path ("" for inline data)
	fi      fs.FileInfo
	data    []byte
	extract bool
	// top is a copied directory itself: its contents go into the destination, which keeps
	// its own metadata when it exists and is made 0755 (root's) when it does not.
	top bool
}

// sourceRoot is where a COPY's sources are: the context, or a stage's or image's tree.
type sourceRoot struct {
	dir     string
	ignore  *buildctx.Matcher
	cleanup func()
}

func (sc *stage) sourceRoot(ctx context.Context, from string) (*sourceRoot, error) {
	if from == "" {
		return &sourceRoot{dir: sc.b.o.ContextDir, ignore: sc.b.ignore, cleanup: func() {}}, nil
	}
	var chain digest.Digest
	if j, ok := sc.b.stageRef(from, sc.idx); ok {
		chain = sc.b.results[j].state.TopLayer()
	} else {
		im, err := sc.b.baseImage(ctx, from)
		if err != nil {
			return nil, fmt.Errorf("--from=%s: %w", from, err)
		}
		chain = im.TopLayer()
	}
	store := sc.b.bd.b.Images()
	dir, err := os.MkdirTemp(store.Root(), "view-build-")
	if err != nil {
		return nil, err
	}
	if chain == "" {
		return &sourceRoot{dir: dir, cleanup: func() { os.Remove(dir) }}, nil
	}
	if err := store.Snaps.MountView("", chain, dir); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("--from=%s: %w", from, err)
	}
	return &sourceRoot{dir: dir, cleanup: func() {
		snapshot.Unmount(dir)
		os.Remove(dir)
	}}, nil
}

func hasGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// copy is a COPY or ADD: its sources are resolved and hashed; unless the cache has the
// step, they are written into a snapshot over the current state, which becomes a layer.
func (sc *stage) copy(ctx context.Context, req copyRequest) error {
	instr := "COPY"
	if req.add {
		instr = "ADD"
	}
	if req.parents {
		return errdefs.Invalid("%s --parents is a BuildKit feature berth's builder does not have", instr)
	}
	if len(req.sources) == 0 && len(req.inline) == 0 {
		return errdefs.Invalid("%s requires at least two arguments", instr)
	}
	if req.from != "" && req.add {
		return errdefs.Invalid("ADD does not take --from (use COPY --from)")
	}
	mode := int64(-1)
	if req.chmod != "" {
		m, err := strconv.ParseUint(req.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return errdefs.Invalid("invalid --chmod=%s: an octal mode is expected", req.chmod)
		}
		mode = int64(m)
	}
	var excl *buildctx.Matcher
	if len(req.excludes) > 0 {
		m, err := buildctx.NewMatcher(req.excludes)
		if err != nil {
			return errdefs.InvalidWrap(err, "--exclude")
		}
		excl = m
	}
	root, err := sc.sourceRoot(ctx, req.from)
	if err != nil {
		return err
	}
	defer root.cleanup()
	tmp, err := os.MkdirTemp(sc.b.bd.b.Images().Root(), "build-tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	dest := req.dest
	if !path.IsAbs(dest) {
		dest = path.Join("/", sc.st.Config.Config.WorkingDir, dest)
		if strings.HasSuffix(req.dest, "/") || req.dest == "." {
			dest += "/"
		}
	}
	destDir := strings.HasSuffix(dest, "/") || strings.HasSuffix(req.dest, "/.") || req.dest == "."
	destRel := strings.TrimPrefix(path.Clean(dest), "/")

	// Each source: its matches, as (host path, name under the destination).
	type match struct {
		src  string
		base string
		fi   fs.FileInfo
		url  bool
	}
	var matches []match
	for _, s := range req.sources {
		if req.add && isURL(s) {
			p, base, fi, err := fetch(ctx, s, tmp, req.checksum)
			if err != nil {
				return err
			}
			matches = append(matches, match{src: p, base: base, fi: fi, url: true})
			continue
		}
		ms, err := root.resolve(s)
		if err != nil {
			return err
		}
		for _, m := range ms {
			fi, err := os.Lstat(m)
			if err != nil {
				return err
			}
			matches = append(matches, match{src: m, base: filepath.Base(m), fi: fi})
		}
	}
	if req.checksum != "" && !(len(req.sources) == 1 && isURL(req.sources[0])) {
		return errdefs.Invalid("ADD --checksum takes one HTTP(S) source")
	}
	if len(matches)+len(req.inline) > 1 && !destDir {
		return errdefs.Invalid("When using %s with more than one source file, the destination must be a directory and end with a /", instr)
	}

	var entries []copyEntry
	for _, f := range req.inline {
		name := path.Join(destRel, f.Path)
		if !destDir {
			name = destRel
		}
		entries = append(entries, copyEntry{name: name, data: []byte(f.Data)})
	}
	// destIsDir reports whether the destination exists as a directory in the current
	// state; only asked for a single file source without a trailing slash.
	for _, m := range matches {
		switch {
		case m.fi.IsDir():
			es, err := root.walk(m.src, destRel, excl)
			if err != nil {
				return err
			}
			entries = append(entries, es...)
		case req.add && req.unpack && !m.url && m.fi.Mode().IsRegular() && isArchiveFile(m.src):
			entries = append(entries, copyEntry{name: destRel, src: m.src, fi: m.fi, extract: true})
		default:
			name := destRel
			if destDir {
				name = path.Join(destRel, m.base)
			}
			entries = append(entries, copyEntry{name: name, src: m.src, fi: m.fi})
		}
	}

	sum, err := hashEntries(entries)
	if err != nil {
		return err
	}
	desc, _ := json.Marshal(map[string]any{
		"dest": dest, "chown": req.chown, "chmod": req.chmod, "content": sum,
		"destDir": destDir, "unpack": req.unpack,
	})
	key := chainKey(sc.key, instr, string(desc))
	if sc.cached(key) {
		return nil
	}
	return sc.writeLayer(ctx, key, history(fmt.Sprintf("/bin/sh -c #(nop) %s %s in %s", instr, sum.Encoded()[:12], dest), false), func(rootfs string) error {
		uid, gid, err := resolveChown(rootfs, req.chown)
		if err != nil {
			return err
		}
		// Whether the destination is an existing directory decides where a single file goes.
		if !destDir && len(entries) == 1 && entries[0].fi != nil && !entries[0].fi.IsDir() && !entries[0].extract {
			if p, err := securejoin.SecureJoin(rootfs, destRel); err == nil {
				if fi, err := os.Stat(p); err == nil && fi.IsDir() {
					entries[0].name = path.Join(destRel, path.Base(entries[0].src))
				}
			}
		}
		kept := entries[:0:0]
		for _, e := range entries {
			if e.top && e.name != "" {
				if p, err := securejoin.SecureJoin(rootfs, e.name); err == nil {
					if fi, err := os.Stat(p); err == nil && fi.IsDir() {
						continue
					}
				}
			}
			kept = append(kept, e)
		}
		return writeEntries(ctx, rootfs, kept, uid, gid, mode)
	})
}

// writeLayer prepares a snapshot over the current state, lets fill write into its
// mounted rootfs, and commits it as the step's layer.
func (sc *stage) writeLayer(ctx context.Context, key digest.Digest, h ocispec.History, fill func(rootfs string) error) error {
	store := sc.b.bd.b.Images()
	var rb [8]byte
	rand.Read(rb[:])
	snapKey := "build-" + hex.EncodeToString(rb[:])
	if err := store.AddLease(image.Lease{ID: snapKey, Snapshot: snapKey}); err != nil {
		return err
	}
	defer store.RemoveLease(snapKey)
	if _, err := store.Snaps.Prepare(ctx, snapKey, sc.st.TopLayer()); err != nil {
		return fmt.Errorf("prepare snapshot: %w", err)
	}
	defer store.Snaps.Remove(snapKey)
	mnt, err := os.MkdirTemp(store.Root(), "build-mnt-")
	if err != nil {
		return err
	}
	defer os.Remove(mnt)
	if err := store.Snaps.Mount(snapKey, mnt); err != nil {
		return fmt.Errorf("mount snapshot: %w", err)
	}
	err = fill(mnt)
	if uerr := snapshot.Unmount(mnt); err == nil && uerr != nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	next, err := store.CommitStep(ctx, key, snapKey, sc.st, h)
	if err != nil {
		return err
	}
	sc.st, sc.key = next, key
	fmt.Fprintf(sc.b.out, " ---> %s\n", shortKey(key))
	return nil
}

// resolve finds a source in the root: a path (symlinks followed inside the root) or a
// glob pattern. Paths outside the root and sources that are missing or excluded are
// errors.
func (r *sourceRoot) resolve(src string) ([]string, error) {
	rel := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(src)), "/")
	if c := path.Clean(filepath.ToSlash(src)); c == ".." || strings.HasPrefix(c, "../") {
		return nil, errdefs.Invalid("forbidden path outside the build context: %s", src)
	}
	if rel == "" {
		rel = "."
	}
	if !hasGlob(rel) {
		if r.excluded(rel) {
			return nil, notFound(src)
		}
		p, err := securejoin.SecureJoin(r.dir, rel)
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(p); err != nil {
			return nil, notFound(src)
		}
		return []string{p}, nil
	}
	var out []string
	err := filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		prel, _ := filepath.Rel(r.dir, p)
		prel = filepath.ToSlash(prel)
		if prel == "." {
			return nil
		}
		depth := strings.Count(prel, "/") + 1
		want := strings.Count(rel, "/") + 1
		if ok, _ := path.Match(rel, prel); ok && depth == want && !r.excluded(prel) {
			out = append(out, p)
		}
		if d.IsDir() && depth >= want {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, notFound(src)
	}
	sort.Strings(out)
	return out, nil
}

func notFound(src string) error {
	return errdefs.Invalid("file not found in build context or excluded by .dockerignore: stat %s: file does not exist", src)
}

func (r *sourceRoot) excluded(rel string) bool {
	return r.ignore != nil && rel != "." && r.ignore.Matches(rel)
}

// walk lists a source directory's contents under dest (the directory itself becomes
// dest). Symlinks inside are copied as links.
func (r *sourceRoot) walk(dir, dest string, excl *buildctx.Matcher) ([]copyEntry, error) {
	var out []copyEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel != "." {
			ctxRel, _ := filepath.Rel(r.dir, p)
			ignored := r.excluded(filepath.ToSlash(ctxRel)) || (excl != nil && excl.Matches(rel))
			if ignored {
				if d.IsDir() && !(r.ignore != nil && r.ignore.Exclusions()) && !(excl != nil && excl.Exclusions()) {
					return fs.SkipDir
				}
				return nil
			}
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir(), fi.Mode().IsRegular(), fi.Mode()&fs.ModeSymlink != 0:
		default:
			return nil // sockets, devices, FIFOs of a context are left out
		}
		out = append(out, copyEntry{name: path.Join(dest, rel), src: p, fi: fi, top: rel == "."})
		return nil
	})
	return out, err
}

// hashEntries is the content digest of what a COPY writes: names, types, modes, link
// targets and file contents.
func hashEntries(entries []copyEntry) (digest.Digest, error) {
	h := sha256.New()
	for _, e := range entries {
		switch {
		case e.fi == nil:
			fmt.Fprintf(h, "inline %q %d\n", e.name, len(e.data))
			h.Write(e.data)
		case e.fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(e.src)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "link %q %q\n", e.name, l)
		case e.fi.IsDir():
			fmt.Fprintf(h, "dir %q %o\n", e.name, e.fi.Mode())
		default:
			fmt.Fprintf(h, "file %q %o %d %t\n", e.name, e.fi.Mode(), e.fi.Size(), e.extract)
			f, err := os.Open(e.src)
			if err != nil {
				return "", err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", err
			}
		}
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

// writeEntries writes the entries into the rootfs: as one tar stream unpacked by
// archive.Unpack, which resolves every path inside rootfs; archives (ADD) are unpacked
// into their destination directory the same way.
func writeEntries(ctx context.Context, rootfs string, entries []copyEntry, uid, gid int, mode int64) error {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := func() error {
			for _, e := range entries {
				if e.extract {
					// The destination directory; the archive goes in below.
					if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: e.name + "/", Mode: 0o755, Uid: uid, Gid: gid, ModTime: time.Now()}); err != nil {
						return err
					}
					continue
				}
				if err := writeEntry(tw, e, uid, gid, mode); err != nil {
					return err
				}
			}
			return tw.Close()
		}()
		pw.CloseWithError(err)
	}()
	_, err := archive.Unpack(ctx, pr, rootfs, archive.UnpackOptions{Whiteouts: archive.WhiteoutApply, AnySymlinkTarget: true})
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	for _, e := range entries {
		if !e.extract {
			continue
		}
		dir, err := securejoin.SecureJoin(rootfs, e.name)
		if err != nil {
			return err
		}
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		_, err = archive.Unpack(ctx, f, dir, archive.UnpackOptions{Whiteouts: archive.WhiteoutApply})
		f.Close()
		if err != nil {
			return errdefs.InvalidWrap(err, "extract %s", filepath.Base(e.src))
		}
	}
	return nil
}

func writeEntry(tw *tar.Writer, e copyEntry, uid, gid int, mode int64) error {
	hdr := &tar.Header{Name: e.name, Uid: uid, Gid: gid, Format: tar.FormatPAX}
	if e.fi == nil {
		hdr.Typeflag, hdr.Mode, hdr.Size, hdr.ModTime = tar.TypeReg, 0o644, int64(len(e.data)), time.Now()
		if mode >= 0 {
			hdr.Mode = mode
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(e.data)
		return err
	}
	hdr.ModTime = e.fi.ModTime()
	hdr.Mode = int64(e.fi.Mode().Perm())
	if e.fi.Mode()&fs.ModeSetuid != 0 {
		hdr.Mode |= 0o4000
	}
	if e.fi.Mode()&fs.ModeSetgid != 0 {
		hdr.Mode |= 0o2000
	}
	if e.fi.Mode()&fs.ModeSticky != 0 {
		hdr.Mode |= 0o1000
	}
	if mode >= 0 {
		hdr.Mode = mode
	}
	switch {
	case e.fi.IsDir():
		if e.top && mode < 0 {
			hdr.Mode = 0o755
		}
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		return tw.WriteHeader(hdr)
	case e.fi.Mode()&fs.ModeSymlink != 0:
		l, err := os.Readlink(e.src)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, l
		if mode >= 0 {
			hdr.Mode = 0o777
		}
		return tw.WriteHeader(hdr)
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, hdr.Size)
	return err
}

// isArchiveFile is whether ADD extracts a file: a tar, plain or compressed.
func isArchiveFile(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	dr, _, err := archive.DecompressStream(f)
	if err != nil {
		return false
	}
	defer dr.Close()
	_, err = tar.NewReader(dr).Next()
	return err == nil
}

// resolveChown turns --chown's user[:group] into IDs, names looked up in the rootfs's
// /etc/passwd and /etc/group. Without --chown everything is root's.
func resolveChown(rootfs, chown string) (int, int, error) {
	if chown == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(chown, ":")
	uid, ugid, err := lookupID(rootfs, "/etc/passwd", u)
	if err != nil {
		return 0, 0, errdefs.InvalidWrap(err, "--chown=%s", chown)
	}
	gid := uid
	if ugid >= 0 {
		gid = ugid
	}
	if hasGroup {
		if gid, _, err = lookupID(rootfs, "/etc/group", g); err != nil {
			return 0, 0, errdefs.InvalidWrap(err, "--chown=%s", chown)
		}
	}
	return uid, gid, nil
}

// lookupID finds a name (or number) in a passwd or group file: its ID and, for passwd,
// its primary group (-1 when given as a number that is not in the file).
func lookupID(rootfs, file, name string) (int, int, error) {
	n, numErr := strconv.Atoi(name)
	p, err := securejoin.SecureJoin(rootfs, file)
	if err == nil {
		if f, err := os.Open(p); err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fs := strings.Split(sc.Text(), ":")
				if len(fs) < 3 {
					continue
				}
				if fs[0] == name || (numErr == nil && fs[2] == name) {
					id, err := strconv.Atoi(fs[2])
					if err != nil {
						continue
					}
					pg := -1
					if len(fs) > 3 {
						if g, err := strconv.Atoi(fs[3]); err == nil {
							pg = g
						}
					}
					return id, pg, nil
				}
			}
		}
	}
	if numErr == nil && n >= 0 {
		return n, -1, nil
	}
	what := "user"
	if strings.HasSuffix(file, "group") {
		what = "group"
	}
	return 0, 0, fmt.Errorf("unable to find %s %s: no matching entries in %s", what, name, file)
}

// fetch downloads an ADD URL into dir: the file, its name (from the URL or the
// Content-Disposition header) and its info (mode 0600, mtime from Last-Modified).
func fetch(ctx context.Context, raw, dir, checksum string) (string, string, fs.FileInfo, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", nil, errdefs.InvalidWrap(err, "ADD %s", raw)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return "", "", nil, errdefs.InvalidWrap(err, "ADD %s", raw)
	}
	client := &http.Client{Timeout: 10 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", nil, errdefs.InvalidWrap(err, "ADD: cannot fetch %s", raw)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return "", "", nil, errdefs.Invalid("ADD: cannot fetch %s: the server answered %s", raw, resp.Status)
	}
	name := path.Base(u.Path)
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		name = path.Base(params["filename"])
	}
	if name == "" || name == "/" || name == "." {
		name = "__unnamed__"
	}
	f, err := os.CreateTemp(dir, "fetch-")
	if err != nil {
		return "", "", nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		return "", "", nil, fmt.Errorf("ADD: fetch %s: %w", raw, err)
	}
	if checksum != "" {
		want, err := digest.Parse(checksum)
		if err != nil {
			return "", "", nil, errdefs.InvalidWrap(err, "ADD --checksum")
		}
		if got := digest.NewDigest(digest.SHA256, h); got != want {
			return "", "", nil, errdefs.Invalid("ADD %s: digest mismatch: got %s, want %s", raw, got, want)
		}
	}
	if err := f.Chmod(0o600); err != nil {
		return "", "", nil, err
	}
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		os.Chtimes(f.Name(), lm, lm)
	}
	fi, err := os.Lstat(f.Name())
	if err != nil {
		return "", "", nil, err
	}
	return f.Name(), name, fi, nil
}
