package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/internal/errdefs"

	"github.com/moby/moby/api/types/volume"
)

var ctx = context.Background()

// users is a fake of the daemon's knowledge of which containers use
// which volume.
type users struct {
	mu sync.Mutex
	m  map[string][]string
}

func (u *users) set(name string, ids ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = make(map[string][]string)
	}
	u.m[name] = ids
}

func (u *users) inUse(name string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.m[name]
}

func newStore(t *testing.T) (*Store, *users, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "volumes")
	u := &users{}
	s, err := New(root, u.inUse)
	if err != nil {
		t.Fatal(err)
	}
	return s, u, root
}

func create(t *testing.T, s *Store, req volume.CreateRequest) volume.Volume {
	t.Helper()
	v, err := s.Create(ctx, req)
	if err != nil {
		t.Fatalf("Create(%+v): %v", req, err)
	}
	return v
}

func names(vs []volume.Volume) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

func TestCreateInspectReopen(t *testing.T) {
	s, _, root := newStore(t)
	before := time.Now().Add(-time.Second)
	v := create(t, s, volume.CreateRequest{Name: "data", Labels: map[string]string{"a": "b"}, DriverOpts: map[string]string{}})
	want := volume.Volume{Name: "data", Driver: "local", Mountpoint: filepath.Join(root, "data", "_data"),
		Labels: map[string]string{"a": "b"}, Options: map[string]string{}, Scope: "local", CreatedAt: v.CreatedAt}
	if fmt.Sprintf("%+v", v) != fmt.Sprintf("%+v", want) {
		t.Fatalf("Create = %+v\nwant %+v", v, want)
	}
	created, err := time.Parse(time.RFC3339, v.CreatedAt)
	if err != nil || created.Before(before.Truncate(time.Second)) || created.After(time.Now()) {
		t.Fatalf("CreatedAt %q: %v", v.CreatedAt, err)
	}
	if fi, err := os.Stat(v.Mountpoint); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("mountpoint: %v, %v", fi, err)
	}
	var rec record
	b, err := os.ReadFile(filepath.Join(root, "data", "volume.json"))
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil || rec.Name != "data" || rec.Driver != "local" || rec.Anonymous || rec.Labels["a"] != "b" {
		t.Fatalf("record %s: %v", b, err)
	}
	// The same name again returns the volume as it is (as dockerd), and
	// Ensure reports it was not created.
	again := create(t, s, volume.CreateRequest{Name: "data", Driver: "local", Labels: map[string]string{"x": "y"}})
	if again.Labels["a"] != "b" || again.Labels["x"] != "" {
		t.Fatalf("second Create = %+v", again)
	}
	if _, isNew, err := s.Ensure(ctx, "data", nil); err != nil || isNew {
		t.Fatalf("Ensure existing = %v, %v", isNew, err)
	}
	if _, isNew, err := s.Ensure(ctx, "other", map[string]string{"l": ""}); err != nil || !isNew {
		t.Fatalf("Ensure new = %v, %v", isNew, err)
	}
	// A new store over the same root has them.
	s2, err := New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get("data")
	if err != nil || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", v) {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if l, _ := s2.List(nil); fmt.Sprint(names(l)) != "[data other]" {
		t.Fatalf("after reopen: %v", names(l))
	}
	// A damaged record leaves its volume out, with a warning.
	if err := os.WriteFile(filepath.Join(root, "other", "volume.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3, err := New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := s3.List(nil); fmt.Sprint(names(l)) != "[data]" || len(s3.Warnings()) != 1 || !strings.Contains(s3.Warnings()[0], "volume other") {
		t.Fatalf("damaged record: %v %q", names(l), s3.Warnings())
	}
}

func TestAnonymous(t *testing.T) {
	s, _, _ := newStore(t)
	v := create(t, s, volume.CreateRequest{Labels: map[string]string{"k": "v"}})
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(v.Name) {
		t.Fatalf("name %q", v.Name)
	}
	if l, ok := v.Labels[AnonymousLabel]; !ok || l != "" || v.Labels["k"] != "v" {
		t.Fatalf("labels %v", v.Labels)
	}
	w, isNew, err := s.Ensure(ctx, "", nil)
	if err != nil || !isNew || w.Name == v.Name {
		t.Fatalf("second anonymous: %v %v %v", w.Name, isNew, err)
	}
}

func TestCreateErrors(t *testing.T) {
	s, _, _ := newStore(t)
	for _, tc := range []struct {
		req  volume.CreateRequest
		kind error
		msg  string
	}{
		{volume.CreateRequest{Name: "a"}, errdefs.ErrInvalid, "create a: volume name is too short, names should be at least two alphanumeric characters"},
		{volume.CreateRequest{Name: "my vol"}, errdefs.ErrInvalid, `create my vol: "my vol" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`},
		{volume.CreateRequest{Name: "-x"}, errdefs.ErrInvalid, `only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed`},
		{volume.CreateRequest{Name: "../etc"}, errdefs.ErrInvalid, "includes invalid characters"},
		{volume.CreateRequest{Name: "/abs"}, errdefs.ErrInvalid, "If you intended to pass a host directory"},
		{volume.CreateRequest{Name: "a/b"}, errdefs.ErrInvalid, "includes invalid characters"},
		{volume.CreateRequest{Name: "ok", Driver: "nfsplugin"}, errdefs.ErrNotFound, `create ok: error looking up volume plugin nfsplugin: plugin "nfsplugin" not found`},
		{volume.CreateRequest{Name: "ok", DriverOpts: map[string]string{"foo": "bar"}}, errdefs.ErrInvalid, `create ok: invalid option: "foo"`},
		{volume.CreateRequest{Name: "ok", DriverOpts: map[string]string{"type": "tmpfs"}}, errdefs.ErrInvalid, `create ok: missing required option: "device"`},
		{volume.CreateRequest{Name: "ok", DriverOpts: map[string]string{"device": "tmpfs"}}, errdefs.ErrInvalid, `missing required option: "type"`},
		{volume.CreateRequest{Name: "ok", DriverOpts: map[string]string{"o": "size=1m"}}, errdefs.ErrInvalid, `missing required option: "device"`},
		{volume.CreateRequest{Name: "ok", DriverOpts: map[string]string{"size": "10G"}}, errdefs.ErrInvalid, "quota size requested but no quota support"},
	} {
		_, err := s.Create(ctx, tc.req)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Create(%+v) = %v, want %v containing %q", tc.req, err, tc.kind, tc.msg)
		}
	}
	if l, _ := s.List(nil); len(l) != 0 {
		t.Fatalf("failed creates left %v", names(l))
	}
	if ents, _ := os.ReadDir(s.root); len(ents) != 0 {
		t.Fatalf("failed creates left files: %v", ents)
	}
	// Valid names and options.
	for _, n := range []string{"ab", "A.b-c_d", "0x", strings.Repeat("z", 200)} {
		create(t, s, volume.CreateRequest{Name: n})
	}
	create(t, s, volume.CreateRequest{Name: "tmp", DriverOpts: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}})
}

func TestGetRemove(t *testing.T) {
	s, u, root := newStore(t)
	_, err := s.Get("nope")
	if !errors.Is(err, errdefs.ErrNotFound) || err.Error() != "get nope: no such volume" {
		t.Fatalf("Get missing = %v", err)
	}
	if err := s.Remove(ctx, "nope", false); !errors.Is(err, errdefs.ErrNotFound) || err.Error() != "get nope: no such volume" {
		t.Fatalf("Remove missing = %v", err)
	}
	if err := s.Remove(ctx, "nope", true); err != nil {
		t.Fatalf("Remove -f missing = %v", err)
	}
	v := create(t, s, volume.CreateRequest{Name: "vol"})
	if err := os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	u.set("vol", "c2", "c1")
	for _, force := range []bool{false, true} {
		err := s.Remove(ctx, "vol", force)
		if !errors.Is(err, errdefs.ErrConflict) || err.Error() != "remove vol: volume is in use - [c1, c2]" {
			t.Fatalf("Remove in use (force %v) = %v", force, err)
		}
	}
	u.set("vol")
	// Held by a Mount (a container starting, a copy-up): in use too.
	if _, err := s.Mount(ctx, "vol", "c3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "vol", false); !errors.Is(err, errdefs.ErrConflict) || err.Error() != "remove vol: volume is in use - [c3]" {
		t.Fatalf("Remove mounted = %v", err)
	}
	if err := s.Unmount(ctx, "vol", "c3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unmount(ctx, "vol", "c3"); err != nil {
		t.Fatalf("second Unmount = %v", err)
	}
	if err := s.Remove(ctx, "vol", false); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("left after Remove: %v", ents)
	}
	if _, err := s.Get("vol"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get removed = %v", err)
	}
	if _, err := s.Mount(ctx, "vol", "c"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Mount removed = %v", err)
	}
	// The name can be used again.
	create(t, s, volume.CreateRequest{Name: "vol"})
	if ents, _ := os.ReadDir(filepath.Join(root, "vol", "_data")); len(ents) != 0 {
		t.Fatalf("recreated volume has %v", ents)
	}
}

func TestMountPlain(t *testing.T) {
	s, _, _ := newStore(t)
	v := create(t, s, volume.CreateRequest{Name: "plain"})
	for _, ref := range []string{"a", "a", "b"} {
		p, err := s.Mount(ctx, "plain", ref)
		if err != nil || p != v.Mountpoint {
			t.Fatalf("Mount = %q, %v", p, err)
		}
	}
	s.Unmount(ctx, "plain", "a")
	if err := s.Remove(ctx, "plain", false); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("Remove with b holding = %v", err)
	}
	s.Unmount(ctx, "plain", "b")
	if err := s.Remove(ctx, "plain", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Unmount(ctx, "plain", "b"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Unmount removed = %v", err)
	}
}

func TestListFilters(t *testing.T) {
	s, u, _ := newStore(t)
	create(t, s, volume.CreateRequest{Name: "web-data", Labels: map[string]string{"app": "web", "tier": "front"}})
	create(t, s, volume.CreateRequest{Name: "db-data", Labels: map[string]string{"app": "db"}})
	create(t, s, volume.CreateRequest{Name: "cache"})
	u.set("db-data", "c1")
	for _, tc := range []struct {
		f    map[string][]string
		want string
	}{
		{nil, "[cache db-data web-data]"},
		{map[string][]string{"name": {"data"}}, "[db-data web-data]"},
		{map[string][]string{"name": {"^db"}}, "[db-data]"},
		{map[string][]string{"name": {"cache", "^web"}}, "[cache web-data]"},
		{map[string][]string{"name": {"nothing"}}, "[]"},
		{map[string][]string{"label": {"app"}}, "[db-data web-data]"},
		{map[string][]string{"label": {"app=web"}}, "[web-data]"},
		{map[string][]string{"label": {"app=web", "tier"}}, "[web-data]"},
		{map[string][]string{"label": {"app=db", "tier"}}, "[]"},
		{map[string][]string{"driver": {"local"}}, "[cache db-data web-data]"},
		{map[string][]string{"driver": {"other"}}, "[]"},
		{map[string][]string{"dangling": {"true"}}, "[cache web-data]"},
		{map[string][]string{"dangling": {"1"}}, "[cache web-data]"},
		{map[string][]string{"dangling": {"false"}}, "[db-data]"},
		{map[string][]string{"dangling": {"0"}, "label": {"app"}}, "[db-data]"},
	} {
		got, err := s.List(tc.f)
		if err != nil || fmt.Sprint(names(got)) != tc.want {
			t.Errorf("List(%v) = %v, %v; want %s", tc.f, names(got), err, tc.want)
		}
	}
	for f, msg := range map[string]string{
		`{"foo":["x"]}`:          "invalid filter 'foo'",
		`{"dangling":["maybe"]}`: "invalid filter 'dangling=[maybe]'",
		`{"label!":["x"]}`:       "invalid filter 'label!'",
	} {
		var m map[string][]string
		json.Unmarshal([]byte(f), &m)
		if _, err := s.List(m); !errors.Is(err, errdefs.ErrInvalid) || err.Error() != msg {
			t.Errorf("List(%s) = %v, want %q", f, err, msg)
		}
	}
}

func TestPruneAndDiskUsage(t *testing.T) {
	s, u, root := newStore(t)
	anon1 := create(t, s, volume.CreateRequest{})
	anon2 := create(t, s, volume.CreateRequest{Labels: map[string]string{"keep": "yes"}})
	anonUsed := create(t, s, volume.CreateRequest{})
	named := create(t, s, volume.CreateRequest{Name: "named", Labels: map[string]string{"env": "test"}})
	create(t, s, volume.CreateRequest{Name: "named-used"})
	u.set(anonUsed.Name, "c1")
	u.set("named-used", "c2")
	// 1000 bytes, a hard link to them (counted once), a 10-byte symlink.
	data := filepath.Join(anon1.Mountpoint, "f")
	if err := os.WriteFile(data, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(data, filepath.Join(anon1.Mountpoint, "g")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("0123456789", filepath.Join(anon1.Mountpoint, "l")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(named.Mountpoint, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(named.Mountpoint, "d", "x"), make([]byte, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	du, err := s.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]string{}
	for _, v := range du {
		sizes[v.Name] = fmt.Sprint(*v.UsageData)
	}
	if sizes[anon1.Name] != "{0 1010}" || sizes["named"] != "{0 5}" || sizes[anonUsed.Name] != "{1 0}" || sizes["named-used"] != "{1 0}" {
		t.Fatalf("disk usage %v", sizes)
	}

	// label! keeps anon2; the used one stays; named ones are not anonymous.
	rep, err := s.Prune(ctx, map[string][]string{"label!": {"keep"}})
	if err != nil || fmt.Sprint(rep.VolumesDeleted) != fmt.Sprint([]string{anon1.Name}) || rep.SpaceReclaimed != 1010 {
		t.Fatalf("Prune = %+v, %v", rep, err)
	}
	rep, err = s.Prune(ctx, map[string][]string{"label": {"keep=no"}})
	if err != nil || len(rep.VolumesDeleted) != 0 || rep.VolumesDeleted == nil {
		t.Fatalf("Prune label=keep=no = %+v, %v", rep, err)
	}
	rep, err = s.Prune(ctx, nil)
	if err != nil || fmt.Sprint(rep.VolumesDeleted) != fmt.Sprint([]string{anon2.Name}) {
		t.Fatalf("Prune = %+v, %v", rep, err)
	}
	// all=true: named unused ones too (label filters still apply).
	rep, err = s.Prune(ctx, map[string][]string{"all": {"true"}, "label": {"env=prod"}})
	if err != nil || len(rep.VolumesDeleted) != 0 {
		t.Fatalf("Prune all env=prod = %+v, %v", rep, err)
	}
	rep, err = s.Prune(ctx, map[string][]string{"all": {"1"}})
	if err != nil || fmt.Sprint(rep.VolumesDeleted) != "[named]" || rep.SpaceReclaimed != 5 {
		t.Fatalf("Prune all = %+v, %v", rep, err)
	}
	left, _ := s.List(nil)
	want := []string{anonUsed.Name, "named-used"}
	slices.Sort(want)
	if fmt.Sprint(names(left)) != fmt.Sprint(want) {
		t.Fatalf("left %v", names(left))
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 2 {
		t.Fatalf("left on disk: %v", ents)
	}
	for f, msg := range map[string]string{
		`{"all":["maybe"]}`:     "invalid filter 'all=[maybe]'",
		`{"all":["1","0"]}`:     "invalid filter 'all=[1 0]'",
		`{"dangling":["true"]}`: "invalid filter 'dangling'",
	} {
		var m map[string][]string
		json.Unmarshal([]byte(f), &m)
		if _, err := s.Prune(ctx, m); !errors.Is(err, errdefs.ErrInvalid) || err.Error() != msg {
			t.Errorf("Prune(%s) = %v, want %q", f, err, msg)
		}
	}
}

func TestParseMountOptions(t *testing.T) {
	for o, want := range map[string]string{
		"":                         "0x0 ",
		"size=10m,uid=1000":        "0x0 size=10m,uid=1000",
		"bind":                     "0x1000 ",
		"rbind,ro":                 "0x5001 ",
		"ro,rw,nosuid,nodev,x=1":   "0x6 x=1",
		"addr=1.2.3.4,rw,noexec":   "0x8 addr=1.2.3.4",
		"rprivate,bind":            "0x45000 ",
		"defaults,password=secret": "0x0 password=secret",
	} {
		f, d := parseMountOptions(o)
		if got := fmt.Sprintf("%#x %s", f, d); got != want {
			t.Errorf("parseMountOptions(%q) = %s, want %s", o, got, want)
		}
	}
}
