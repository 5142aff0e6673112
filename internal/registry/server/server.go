// Package server owns berth's registry server: an http.Handler for the OCI
// distribution spec v1.1 under /v2/ (pull, push with monolithic, chunked and
// cross-repository mount uploads, tag listing, deletion of manifests, tags and
// blobs, the referrers API), the registry's storage under one root directory,
// its garbage collector, basic and token authentication and access logs.
//
// Storage: blobs and manifests are in an internal/content store at
// <root>/content (written to ingest/, verified, fsynced and renamed, so no
// half-written blob is ever visible); what each repository holds (blob links,
// manifests' records, tags, referrers) and the open uploads are in bbolt at
// <root>/registry.db; the bytes of open uploads are files under
// <root>/uploads. A blob becomes visible in a repository only when its
// content is committed and its link recorded, in that order.
//
// The package knows nothing of images beyond what the spec asks of a
// registry (which blobs a manifest names, its subject), and must not depend
// on the daemon or the image store: the registry client is
// berth/internal/registry, the CLI command internal/cli/registry.go.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"berth/internal/content"

	// sha512 digests are allowed by the spec; go-digest needs the hash linked.
	_ "crypto/sha256"
	_ "crypto/sha512"

	bolt "go.etcd.io/bbolt"
)

// Options configure a Server.
type Options struct {
	// Root is the registry's storage directory (created if missing).
	Root string
	// Logger receives one access log line per request (and GC reports);
	// nil means slog.Default().
	Logger *slog.Logger
	// Auth, when set, must accept a request before it is served.
	Auth Authenticator
	// UploadTTL is how long an upload may stay idle before it is removed
	// (default 24h).
	UploadTTL time.Duration
	// MaxManifestSize is the largest manifest accepted (default 4 MiB, the
	// spec's minimum).
	MaxManifestSize int64
}

// Server is a registry: an http.Handler over a root directory. One process
// owns a root at a time (the database is locked while it is open).
type Server struct {
	opts    Options
	log     *slog.Logger
	db      *bolt.DB
	content *content.Store
	uploads string

	// gcMu: requests that commit a blob and then link it hold it shared
	// across both steps; GC holds it exclusively, so it never removes a blob
	// that is about to be linked.
	gcMu sync.RWMutex
	// uploadMu serializes the requests on one upload.
	uploadMu sync.Mutex
	busy     map[string]*sync.Mutex
}

// Open opens (creating it if needed) the registry rooted at opts.Root and
// removes uploads idle for longer than UploadTTL.
func Open(opts Options) (*Server, error) {
	if opts.Root == "" {
		return nil, fmt.Errorf("registry: no root directory")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UploadTTL <= 0 {
		opts.UploadTTL = 24 * time.Hour
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = 4 << 20
	}
	s := &Server{opts: opts, log: opts.Logger, uploads: filepath.Join(opts.Root, "uploads"), busy: map[string]*sync.Mutex{}}
	if err := os.MkdirAll(s.uploads, 0o700); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	cs, err := content.Open(filepath.Join(opts.Root, "content"))
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	s.content = cs
	db, err := bolt.Open(filepath.Join(opts.Root, "registry.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w (is another registry using this root?)", filepath.Join(opts.Root, "registry.db"), err)
	}
	s.db = db
	if err := initDB(db); err != nil {
		db.Close()
		return nil, err
	}
	if _, err := s.PurgeUploads(context.Background(), opts.UploadTTL); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database. Requests still running fail.
func (s *Server) Close() error { return s.db.Close() }

// Root is the registry's storage directory.
func (s *Server) Root() string { return s.opts.Root }

// The grammar of the spec (distribution-spec, "Pulling manifests").
var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// route is a parsed /v2/ path.
type route struct {
	kind string // "base", "catalog", "tags", "manifest", "blob", "uploads", "upload", "referrers"
	name string
	ref  string // tag or digest, upload id
}

// parseRoute splits a path under /v2/. Repository names may contain
// "blobs" or "manifests" as components, so the path is read from its end.
func parseRoute(p string) (route, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		if p == "/v2" {
			return route{kind: "base"}, true
		}
		return route{}, false
	}
	if rest == "" {
		return route{kind: "base"}, true
	}
	if rest == "_catalog" {
		return route{kind: "catalog"}, true
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	join := func(k int) string { return strings.Join(segs[:k], "/") }
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		return route{kind: "tags", name: join(n - 2)}, true
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads" && segs[n-1] == "":
		return route{kind: "uploads", name: join(n - 3)}, true
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		return route{kind: "uploads", name: join(n - 2)}, true
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		return route{kind: "upload", name: join(n - 3), ref: segs[n-1]}, true
	case n >= 3 && segs[n-2] == "blobs":
		return route{kind: "blob", name: join(n - 2), ref: segs[n-1]}, true
	case n >= 3 && segs[n-2] == "manifests":
		return route{kind: "manifest", name: join(n - 2), ref: segs[n-1]}, true
	case n >= 3 && segs[n-2] == "referrers":
		return route{kind: "referrers", name: join(n - 2), ref: segs[n-1]}, true
	}
	return route{}, false
}

// ServeHTTP serves the /v2/ API, writing an access log line per request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lw := &logWriter{ResponseWriter: w, status: http.StatusOK}
	start := time.Now()
	defer func() { s.accessLog(lw, r, start) }()
	lw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")

	rt, ok := parseRoute(r.URL.Path)
	if s.opts.Auth != nil {
		need := requiredAccess(r, rt, ok)
		user, err := s.opts.Auth.Authenticate(r, need)
		lw.user = user
		if err != nil {
			lw.Header().Set("WWW-Authenticate", s.opts.Auth.Challenge(need, err))
			e := apiErr(http.StatusUnauthorized, CodeUnauthorized, need, "authentication required")
			if errors.Is(err, ErrInsufficientScope) {
				e = apiErr(http.StatusUnauthorized, CodeDenied, need, "requested access to the resource is denied")
			}
			if need == nil {
				e.Detail = nil
			}
			serveError(lw, r, e)
			lw.err = nil
			if !errors.Is(err, ErrNoCredentials) {
				lw.err = err // why, for the access log
			}
			return
		}
	}
	if !ok {
		serveError(lw, r, apiErr(http.StatusNotFound, CodeUnsupported, nil, "no such endpoint: %s", r.URL.Path))
		return
	}
	if !validName(rt.name) {
		serveError(lw, r, apiErr(http.StatusBadRequest, CodeNameInvalid, map[string]string{"name": rt.name}, "invalid repository name"))
		return
	}
	if err := s.dispatch(lw, r, rt); err != nil {
		serveError(lw, r, err)
	}
}

// validName: no name, or a repository name of the spec's grammar.
func validName(name string) bool {
	return name == "" || (nameRE.MatchString(name) && len(name) <= 255)
}

// requiredAccess is what r needs, in token scopes, as distribution asks:
// pull for GET and HEAD (and methods no route serves), pull and push for
// POST, PUT and PATCH, delete for DELETE, pull on the source of a cross-repository mount, and
// registry:catalog:* for the catalog. The version check, unknown paths and
// invalid names need only valid credentials (they are answered 200, 404,
// 400 whatever the repository).
func requiredAccess(r *http.Request, rt route, ok bool) []Access {
	if !ok || rt.kind == "base" || !validName(rt.name) {
		return nil
	}
	if rt.kind == "catalog" {
		return []Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}
	}
	var actions []string
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		actions = []string{"pull", "push"}
	case http.MethodDelete:
		actions = []string{"delete"}
	default:
		actions = []string{"pull"}
	}
	need := []Access{{Type: "repository", Name: rt.name, Actions: actions}}
	if rt.kind == "uploads" && r.Method == http.MethodPost {
		q := r.URL.Query()
		if from := q.Get("from"); q.Get("mount") != "" && from != "" && from != rt.name && validName(from) {
			need = append(need, Access{Type: "repository", Name: from, Actions: []string{"pull"}})
		}
	}
	return need
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, rt route) error {
	m := r.Method
	switch rt.kind {
	case "base":
		if m == http.MethodGet || m == http.MethodHead {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "2")
			if m == http.MethodGet {
				w.Write([]byte("{}"))
			}
			return nil
		}
	case "catalog":
		if m == http.MethodGet {
			return s.getCatalog(w, r)
		}
	case "tags":
		if m == http.MethodGet {
			return s.getTags(w, r, rt.name)
		}
	case "manifest":
		switch m {
		case http.MethodGet, http.MethodHead:
			return s.getManifest(w, r, rt.name, rt.ref)
		case http.MethodPut:
			return s.putManifest(w, r, rt.name, rt.ref)
		case http.MethodDelete:
			return s.deleteManifest(w, r, rt.name, rt.ref)
		}
	case "blob":
		switch m {
		case http.MethodGet, http.MethodHead:
			return s.getBlob(w, r, rt.name, rt.ref)
		case http.MethodDelete:
			return s.deleteBlob(w, r, rt.name, rt.ref)
		}
	case "uploads":
		if m == http.MethodPost {
			return s.startUpload(w, r, rt.name)
		}
	case "upload":
		switch m {
		case http.MethodGet:
			return s.uploadStatus(w, r, rt.name, rt.ref)
		case http.MethodPatch:
			return s.patchUpload(w, r, rt.name, rt.ref)
		case http.MethodPut:
			return s.finishUpload(w, r, rt.name, rt.ref)
		case http.MethodDelete:
			return s.cancelUpload(w, r, rt.name, rt.ref)
		}
	case "referrers":
		if m == http.MethodGet {
			return s.getReferrers(w, r, rt.name, rt.ref)
		}
	}
	return apiErr(http.StatusMethodNotAllowed, CodeUnsupported, nil, "%s is not supported on %s", m, r.URL.Path)
}

// logWriter records what was answered, for the access log.
type logWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
	user   string
	err    error
}

func (w *logWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps sendfile for blob downloads.
func (w *logWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wrote = true
	n, err := io.Copy(w.ResponseWriter, r)
	w.bytes += n
	return n, err
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) accessLog(w *logWriter, r *http.Request, start time.Time) {
	attrs := []slog.Attr{
		slog.String("remote", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("path", r.URL.RequestURI()),
		slog.Int("status", w.status),
		slog.Int64("bytes", w.bytes),
		slog.Duration("duration", time.Since(start)),
	}
	if w.user != "" {
		attrs = append(attrs, slog.String("user", w.user))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, slog.String("agent", ua))
	}
	level := slog.LevelInfo
	switch {
	case w.status >= 500:
		level = slog.LevelError
		if w.err != nil {
			attrs = append(attrs, slog.String("error", w.err.Error()))
		}
	case w.status == http.StatusUnauthorized && w.err != nil:
		// Why credentials were refused (an expired token, another
		// audience, a scope not granted): the client only gets the code.
		attrs = append(attrs, slog.String("error", w.err.Error()))
	}
	s.log.LogAttrs(r.Context(), level, "registry request", attrs...)
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
