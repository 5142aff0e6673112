package api

import (
	"encoding/json"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"

	"berth/internal/daemon"
	"berth/internal/errdefs"
)

var timeNow = time.Now

func (s *Server) systemRoutes() {
	s.handle("GET", "/_ping", s.ping)
	s.handle("GET", "/version", s.version)
	s.handle("GET", "/info", s.info)
	s.handle("GET", "/events", s.events)
	s.handle("GET", "/system/df", s.diskUsage)
}

func (s *Server) ping(w http.ResponseWriter, r *request) error {
	w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write([]byte("OK"))
	}
	return nil
}

func (s *Server) version(w http.ResponseWriter, r *request) error {
	var un unix.Utsname
	unix.Uname(&un)
	kernel := unix.ByteSliceToString(un.Release[:])
	v := system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "berth"},
		Version:       Version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		Os:            "linux",
		Arch:          runtime.GOARCH,
		KernelVersion: kernel,
		GoVersion:     runtime.Version(),
		GitCommit:     "berth",
		BuildTime:     "",
		Components: []system.ComponentVersion{
			{Name: "Engine", Version: Version, Details: map[string]string{"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "Os": "linux", "Arch": runtime.GOARCH, "KernelVersion": kernel, "GoVersion": runtime.Version()}},
			{Name: "berth-runtime", Version: Version},
		},
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) info(w http.ResponseWriter, r *request) error {
	return writeJSON(w, http.StatusOK, s.d.Info(Version))
}

func (s *Server) events(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	now := timeNow()
	since, err := daemon.ParseTime(q.Get("since"), now)
	if err != nil {
		return err
	}
	until, err := daemon.ParseTime(q.Get("until"), now)
	if err != nil {
		return err
	}
	f, err := filters(r)
	if err != nil {
		return err
	}
	for k := range f {
		switch k {
		case "type", "event", "container", "image", "volume", "network", "label", "daemon", "scope", "plugin", "node", "service", "secret", "config":
		default:
			return errdefs.Invalid("invalid filter '%s'", k)
		}
	}
	past, ch, cancel := s.d.Events().Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fw := newFlushWriter(w)
	fw.Flush()
	enc := json.NewEncoder(fw)
	legacy := compareVersions(r.version, "1.52") < 0
	send := func(m events.Message) bool {
		t := time.Unix(0, m.TimeNano)
		if !since.IsZero() && t.Before(since) {
			return true
		}
		if !until.IsZero() && t.After(until) {
			return false
		}
		if matchEvent(m, f) {
			if legacy {
				return enc.Encode(legacyEvent(m)) == nil
			}
			return enc.Encode(m) == nil
		}
		return true
	}
	if !since.IsZero() || !until.IsZero() {
		for _, m := range past {
			if !until.IsZero() && time.Unix(0, m.TimeNano).After(until) {
				continue // the ring may hold them out of order; skip, do not stop
			}
			if !send(m) {
				return nil
			}
		}
	}
	if !until.IsZero() && !until.After(now) {
		return nil
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		deadline = time.After(until.Sub(now))
	}
	for {
		select {
		case m := <-ch:
			if !send(m) {
				return nil
			}
		case <-deadline:
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

// matchEvent applies the events filters.
func matchEvent(m events.Message, f daemon.Filters) bool {
	in := func(key, v string) bool {
		vals := f[key]
		return len(vals) == 0 || slices.Contains(vals, v)
	}
	if !in("type", string(m.Type)) || !in("scope", m.Scope) {
		return false
	}
	if vals := f["event"]; len(vals) > 0 {
		action := string(m.Action)
		base, _, _ := strings.Cut(action, ":")
		if !slices.Contains(vals, action) && !slices.Contains(vals, base) {
			return false
		}
	}
	name := m.Actor.Attributes["name"]
	idOrName := func(key string) bool {
		vals := f[key]
		if len(vals) == 0 {
			return true
		}
		for _, v := range vals {
			if v == name || v == m.Actor.ID || (len(v) >= 4 && strings.HasPrefix(m.Actor.ID, v)) {
				return true
			}
		}
		return false
	}
	if len(f["container"]) > 0 && (m.Type != events.ContainerEventType || !idOrName("container")) {
		return false
	}
	if len(f["volume"]) > 0 && (m.Type != events.VolumeEventType || !idOrName("volume")) {
		return false
	}
	if len(f["network"]) > 0 && (m.Type != events.NetworkEventType || !idOrName("network")) {
		return false
	}
	if vals := f["image"]; len(vals) > 0 {
		img := m.Actor.Attributes["image"]
		if m.Type == events.ImageEventType {
			img = m.Actor.ID
		}
		if !slices.ContainsFunc(vals, func(v string) bool { return v == img || v == m.Actor.Attributes["name"] }) {
			return false
		}
	}
	for _, l := range f["label"] {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := m.Actor.Attributes[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}

func (s *Server) diskUsage(w http.ResponseWriter, r *request) error {
	du, err := s.d.DiskUsage(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, du)
}

// oldEvent is an event as API versions before 1.52 send it: with the deprecated status, id
// and from fields, which docker-compose 1.29 (docker-py) reads.
type oldEvent struct {
	Status string `json:"status,omitempty"`
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
	events.Message
}

func legacyEvent(m events.Message) oldEvent {
	e := oldEvent{Message: m}
	switch m.Type {
	case events.ContainerEventType:
		e.Status, e.ID, e.From = string(m.Action), m.Actor.ID, m.Actor.Attributes["image"]
	case events.ImageEventType:
		e.Status, e.ID = string(m.Action), m.Actor.ID
	}
	return e
}
