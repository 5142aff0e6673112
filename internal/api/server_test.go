package api

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		ok            bool
		vars          map[string]string
	}{
		{"/images/{name*}/json", "/images/busybox/json", true, map[string]string{"name": "busybox"}},
		{"/images/{name*}/json", "/images/localhost:5000/a/b:1/json", true, map[string]string{"name": "localhost:5000/a/b:1"}},
		{"/images/{name*}", "/images/a/b", true, map[string]string{"name": "a/b"}},
		{"/images/{name*}/json", "/images/json", false, nil},
		{"/containers/{id}/json", "/containers/abc/json", true, map[string]string{"id": "abc"}},
		{"/containers/{id}/json", "/containers/abc/top", false, nil},
		{"/containers/{id}", "/containers/abc/json", false, nil},
	} {
		vars, ok := match(strings.Split(strings.Trim(tc.pattern, "/"), "/"), strings.Split(strings.Trim(tc.path, "/"), "/"))
		if ok != tc.ok {
			t.Errorf("%s %s: %v", tc.pattern, tc.path, ok)
			continue
		}
		for k, v := range tc.vars {
			if vars[k] != v {
				t.Errorf("%s %s: %s=%q, want %q", tc.pattern, tc.path, k, vars[k], v)
			}
		}
	}
}

func TestCompareVersions(t *testing.T) {
	if compareVersions("1.41", "1.9") <= 0 || compareVersions("1.24", "1.24") != 0 || compareVersions("1.5", "1.51") >= 0 {
		t.Fatal("compareVersions")
	}
}

func TestFilters(t *testing.T) {
	for _, raw := range []string{`{"status":{"running":true,"exited":true}}`, `{"status":["running","exited"]}`} {
		r := &request{Request: httptest.NewRequest("GET", "/containers/json?filters="+raw, nil)}
		f, err := filters(r)
		if err != nil || len(f["status"]) != 2 {
			t.Errorf("%s: %v %v", raw, f, err)
		}
	}
	r := &request{Request: httptest.NewRequest("GET", "/containers/json?filters={bad", nil)}
	if _, err := filters(r); err == nil || statusOf(err) != 400 {
		t.Errorf("bad filters: %v", err)
	}
}

func TestVersionPrefix(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.handle("GET", "/_ping", s.ping)
	for path, code := range map[string]int{"/_ping": 200, "/v1.41/_ping": 200, "/v1.12/_ping": 400, "/v9.99/_ping": 400, "/nope": 404} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != code {
			t.Errorf("%s: %d, want %d", path, w.Code, code)
		}
	}
}
