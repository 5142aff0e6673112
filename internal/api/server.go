// Package api owns berthd's Docker Engine API: routing with the optional /v1.xx prefix and
// version negotiation, request decoding, Docker's JSON shapes, error bodies with Docker's
// status codes, streamed and hijacked responses. The work is internal/daemon's.
package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"berth/internal/daemon"
	"berth/internal/errdefs"
)

// The API versions berthd speaks: the docker 28 CLI's (1.51) down to dockerd's minimum.
const (
	APIVersion    = "1.51"
	MinAPIVersion = "1.24"
)

// Version is berth's version, shown by /version.
var Version = "0.5.0"

// Server is the API's HTTP handler.
type Server struct {
	d      *daemon.Daemon
	log    *slog.Logger
	routes []route
}

type route struct {
	method  string
	parts   []string // literal segments, "{x}" one segment, "{x*}" one or more
	handler handlerFunc
}

// request is a matched request with its path variables and API version.
type request struct {
	*http.Request
	vars    map[string]string
	version string
}

type handlerFunc func(w http.ResponseWriter, r *request) error

// New makes the API for a daemon.
func New(d *daemon.Daemon, log *slog.Logger) *Server {
	s := &Server{d: d, log: log}
	s.systemRoutes()
	s.containerRoutes()
	s.execRoutes()
	s.imageRoutes()
	s.volumeRoutes()
	s.networkRoutes()
	s.buildRoutes()
	return s
}

func (s *Server) handle(method, pattern string, h handlerFunc) {
	s.routes = append(s.routes, route{method: method, parts: strings.Split(strings.Trim(pattern, "/"), "/"), handler: h})
}

var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/|$)`)

// validNamespace is what X-Berth-Namespace (berth's extension: the daemon namespace a
// request works in, e.g. k8s for the CRI's containers) may hold.
var validNamespace = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	start := time.Now()
	path := hr.URL.Path
	version := APIVersion
	if m := versionPrefix.FindStringSubmatch(path); m != nil {
		version = m[1]
		path = "/" + strings.TrimPrefix(path[len(m[0]):], "/")
		if m[2] == "" {
			path = "/"
		}
	}
	w.Header().Set("Api-Version", APIVersion)
	w.Header().Set("Docker-Experimental", "false")
	w.Header().Set("Ostype", "linux")
	w.Header().Set("Server", "Docker/"+Version+" (linux)")
	if compareVersions(version, MinAPIVersion) < 0 {
		writeError(w, errdefs.Invalid("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", version, MinAPIVersion))
		return
	}
	if compareVersions(version, APIVersion) > 0 {
		writeError(w, errdefs.Invalid("client version %s is too new. Maximum supported API version is %s", version, APIVersion))
		return
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	methodOK := false
	for _, rt := range s.routes {
		vars, ok := match(rt.parts, segs)
		if !ok {
			continue
		}
		if rt.method != hr.Method && !(rt.method == "GET" && hr.Method == "HEAD" && rt.parts[0] == "_ping") {
			methodOK = true
			continue
		}
		if ns := hr.Header.Get("X-Berth-Namespace"); ns != "" {
			if !validNamespace.MatchString(ns) {
				writeError(w, errdefs.Invalid("invalid namespace %q", ns))
				return
			}
			hr = hr.WithContext(daemon.WithNamespace(hr.Context(), ns))
		}
		r := &request{Request: hr, vars: vars, version: version}
		err := rt.handler(w, r)
		if err != nil {
			if !errors.Is(err, errHijacked) {
				writeError(w, err)
			}
		}
		if s.log.Enabled(hr.Context(), slog.LevelDebug) {
			s.log.Debug("api", "method", hr.Method, "path", hr.URL.Path, "took", time.Since(start), "err", err)
		}
		return
	}
	if methodOK {
		writeError(w, errdefs.Invalid("method %s not allowed on %s", hr.Method, path))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	json.NewEncoder(w).Encode(map[string]string{"message": "page not found"})
}

func match(pattern, segs []string) (map[string]string, bool) {
	vars := map[string]string{}
	i := 0
	for pi, p := range pattern {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "*}") {
			// Greedy: leave as many segments as the rest of the pattern needs.
			rest := len(pattern) - pi - 1
			end := len(segs) - rest
			if end <= i {
				return nil, false
			}
			vars[p[1:len(p)-2]] = strings.Join(segs[i:end], "/")
			i = end
			continue
		}
		if i >= len(segs) {
			return nil, false
		}
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return nil, false
			}
			vars[p[1:len(p)-1]] = segs[i]
		} else if p != segs[i] {
			return nil, false
		}
		i++
	}
	return vars, i == len(segs)
}

// compareVersions compares "1.41"-style versions.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// statusOf maps an error's kind to Docker's status code.
func statusOf(err error) int {
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, errdefs.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, errdefs.ErrInvalid), errors.Is(err, errdefs.ErrCorrupt):
		return http.StatusBadRequest
	case errors.Is(err, errdefs.ErrNotModified):
		return http.StatusNotModified
	case errors.Is(err, errdefs.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, errdefs.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, context.Canceled):
		return 499
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	code := statusOf(err)
	if code == http.StatusNotModified {
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body; an empty body leaves v as it is.
func decode(r *request, v any) error {
	if r.Body == nil {
		return nil
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return errdefs.InvalidWrap(err, "invalid JSON")
	}
	return nil
}

func boolValue(r *request, k string) bool {
	v := strings.ToLower(strings.TrimSpace(r.URL.Query().Get(k)))
	return !(v == "" || v == "0" || v == "no" || v == "false" || v == "none")
}

func intValue(r *request, k string, def int) (int, error) {
	v := r.URL.Query().Get(k)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errdefs.Invalid("invalid value for %s: %q", k, v)
	}
	return n, nil
}

// filters parses the "filters" parameter: {"key":{"value":true}} or the old {"key":["value"]}.
func filters(r *request) (daemon.Filters, error) {
	raw := r.URL.Query().Get("filters")
	out := daemon.Filters{}
	if raw == "" {
		return out, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, errdefs.InvalidWrap(err, "invalid filter")
	}
	for k, v := range m {
		var set map[string]bool
		if err := json.Unmarshal(v, &set); err == nil {
			for val, on := range set {
				if on {
					out[k] = append(out[k], val)
				}
			}
			continue
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, errdefs.Invalid("invalid filter %q", k)
		}
		out[k] = append(out[k], list...)
	}
	return out, nil
}

// errHijacked says the handler took over the connection (no error body can follow).
var errHijacked = errors.New("connection hijacked")

// hijacked is a client connection taken over from the HTTP server.
type hijacked struct {
	net.Conn
	r *bufio.Reader
}

// Read returns what the HTTP server had buffered, then reads the connection itself: reading
// through the server's reader would cancel the request's context when the client half-closes
// (stdin's EOF), ending the attach or exec it serves.
func (h *hijacked) Read(p []byte) (int, error) {
	if h.r.Buffered() > 0 {
		return h.r.Read(p)
	}
	return h.Conn.Read(p)
}

func (h *hijacked) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// hijack takes the connection and answers with 101 (when the client asked to upgrade) or 200.
func hijack(w http.ResponseWriter, r *request, contentType string) (*hijacked, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, fmt.Errorf("the connection cannot be hijacked")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	if r.Header.Get("Upgrade") != "" {
		fmt.Fprintf(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: %s\r\n\r\n", contentType, APIVersion)
	} else {
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nApi-Version: %s\r\n\r\n", contentType, APIVersion)
	}
	return &hijacked{Conn: conn, r: rw.Reader}, nil
}

// flushWriter flushes after every write (streamed responses).
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func newFlushWriter(w http.ResponseWriter) *flushWriter {
	f, _ := w.(http.Flusher)
	return &flushWriter{w: w, f: f}
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}

func (fw *flushWriter) Flush() {
	if fw.f != nil {
		fw.f.Flush()
	}
}
