package daemon

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"berth/internal/errdefs"
)

func TestParseBind(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want MountPoint
		err  string
	}{
		{spec: "/src:/dst", want: MountPoint{Type: mount.TypeBind, Source: "/src", Destination: "/dst", RW: true, Propagation: mount.PropagationRPrivate}},
		{spec: "/src:/dst:ro", want: MountPoint{Type: mount.TypeBind, Source: "/src", Destination: "/dst", Mode: "ro", Propagation: mount.PropagationRPrivate}},
		{spec: "/src:/dst:ro,rshared", want: MountPoint{Type: mount.TypeBind, Source: "/src", Destination: "/dst", Mode: "ro,rshared", Propagation: mount.PropagationRShared}},
		{spec: "data:/dst", want: MountPoint{Type: mount.TypeVolume, Name: "data", Destination: "/dst", RW: true, Driver: "local", CopyUp: true}},
		{spec: "data:/dst:nocopy", want: MountPoint{Type: mount.TypeVolume, Name: "data", Destination: "/dst", RW: true, Driver: "local", Mode: "nocopy"}},
		{spec: "/dst", want: MountPoint{Type: mount.TypeVolume, Destination: "/dst", RW: true, Driver: "local", Anonymous: true, CopyUp: true}},
		{spec: "a:b:c:d", err: "invalid volume specification"},
		{spec: "/src:/dst:bogus", err: "invalid volume specification"},
		{spec: "data:/dst:rshared", err: "invalid volume specification"},
		{spec: "bad name!:/dst", err: "includes invalid characters"},
	} {
		got, err := parseBind(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("%s: error %v, want %q (invalid)", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || got.Type != tc.want.Type || got.Source != tc.want.Source || got.Name != tc.want.Name ||
			got.Destination != tc.want.Destination || got.RW != tc.want.RW || got.Propagation != tc.want.Propagation ||
			got.Anonymous != tc.want.Anonymous || got.CopyUp != tc.want.CopyUp {
			t.Errorf("%s: got %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
}

func TestParseMountsDuplicates(t *testing.T) {
	cfg := &container.Config{Volumes: map[string]struct{}{"/data": {}, "/other": {}}}
	hc := &container.HostConfig{Binds: []string{"/host:/data"}}
	ms, err := parseMounts(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Type != mount.TypeBind || ms[1].Destination != "/other" || !ms[1].Anonymous {
		t.Fatalf("image volume under a bind must be skipped: %+v", ms)
	}
	hc = &container.HostConfig{Binds: []string{"/a:/x", "/b:/x/"}}
	if _, err := parseMounts(&container.Config{}, hc); err == nil || !strings.Contains(err.Error(), "Duplicate mount point: /x") {
		t.Fatalf("duplicate: %v", err)
	}
	hc = &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: "/nonexistent-berth-src", Target: "/x"}}}
	if _, err := parseMounts(&container.Config{}, hc); err == nil || !strings.Contains(err.Error(), "bind source path does not exist: /nonexistent-berth-src") {
		t.Fatalf("missing bind source: %v", err)
	}
}

func TestMergeImageConfig(t *testing.T) {
	im := &dockerspec.DockerOCIImageConfig{}
	im.Env = []string{"PATH=/bin", "A=image"}
	im.Cmd = []string{"sh"}
	im.Entrypoint = []string{"/entry"}
	im.WorkingDir = "/w"
	im.User = "nobody"
	im.Labels = map[string]string{"a": "1", "b": "1"}
	im.StopSignal = "SIGQUIT"

	c := &container.Config{Env: []string{"A=user"}, Labels: map[string]string{"b": "2"}}
	mergeImageConfig(c, im)
	if strings.Join(c.Env, ",") != "PATH=/bin,A=user" {
		t.Errorf("env %v", c.Env)
	}
	if strings.Join(c.Entrypoint, " ") != "/entry" || strings.Join(c.Cmd, " ") != "sh" {
		t.Errorf("entrypoint %v cmd %v", c.Entrypoint, c.Cmd)
	}
	if c.WorkingDir != "/w" || c.User != "nobody" || c.StopSignal != "SIGQUIT" || c.Labels["a"] != "1" || c.Labels["b"] != "2" {
		t.Errorf("merged %+v", c)
	}
	// A user entrypoint drops the image's cmd.
	c = &container.Config{Entrypoint: []string{"/mine"}}
	mergeImageConfig(c, im)
	if len(c.Cmd) != 0 || strings.Join(c.Entrypoint, " ") != "/mine" {
		t.Errorf("entrypoint override: %v %v", c.Entrypoint, c.Cmd)
	}
	// A user cmd keeps the image's entrypoint.
	c = &container.Config{Cmd: []string{"x"}}
	mergeImageConfig(c, im)
	if strings.Join(c.Entrypoint, " ") != "/entry" || strings.Join(c.Cmd, " ") != "x" {
		t.Errorf("cmd override: %v %v", c.Entrypoint, c.Cmd)
	}
	// --entrypoint "" clears it.
	c = &container.Config{Entrypoint: []string{""}, Cmd: []string{"y"}}
	mergeImageConfig(c, im)
	if c.Entrypoint != nil || strings.Join(c.Cmd, " ") != "y" {
		t.Errorf("empty entrypoint: %v %v", c.Entrypoint, c.Cmd)
	}
}

func TestDetachKeys(t *testing.T) {
	keys, err := ParseDetachKeys("")
	if err != nil || !bytes.Equal(keys, []byte{16, 17}) {
		t.Fatalf("default: %v %v", keys, err)
	}
	if keys, err = ParseDetachKeys("ctrl-a,x,ctrl-@,ctrl-["); err != nil || !bytes.Equal(keys, []byte{1, 'x', 0, 27}) {
		t.Fatalf("parse: %v %v", keys, err)
	}
	if _, err := ParseDetachKeys("ctrl-1"); err == nil {
		t.Fatal("ctrl-1 accepted")
	}
	var out bytes.Buffer
	err = copyDetach(&out, strings.NewReader("ab\x10c\x10\x11zz"), []byte{16, 17})
	if !errors.Is(err, ErrDetached) || out.String() != "ab\x10c" {
		t.Fatalf("copyDetach: %q %v", out.String(), err)
	}
	out.Reset()
	if err := copyDetach(&out, strings.NewReader("plain\x10"), []byte{16, 17}); err != nil || out.String() != "plain\x10" {
		t.Fatalf("partial sequence at EOF is data: %q %v", out.String(), err)
	}
	out.Reset()
	if err := copyDetach(&out, strings.NewReader("x\x10\x10\x11y"), []byte{16, 17}); !errors.Is(err, ErrDetached) || out.String() != "x\x10" {
		t.Fatalf("sequence after a partial match: %q %v", out.String(), err)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"1700000000":           time.Unix(1700000000, 0),
		"1700000000.5":         time.Unix(1700000000, 500000000),
		"10m":                  now.Add(-10 * time.Minute),
		"2026-11-23T10:00:00Z": time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	} {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := ParseTime("yesterday", now); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad time: %v", err)
	}
}

func TestStatusText(t *testing.T) {
	now := time.Now()
	s := State{Running: true, StartedAt: now.Add(-3 * time.Second)}
	if got := s.statusText(now); got != "Up 3 seconds" {
		t.Errorf("%q", got)
	}
	s = State{StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-2 * time.Minute), ExitCode: 137}
	if got := s.statusText(now); got != "Exited (137) 2 minutes ago" {
		t.Errorf("%q", got)
	}
	if got := (&State{}).statusText(now); got != "Created" {
		t.Errorf("%q", got)
	}
}

func TestShouldRestart(t *testing.T) {
	d := &Daemon{}
	d.ctx, d.cancel = t.Context(), func() {}
	c := &Container{HostConfig: &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 2}}}
	c.State.ExitCode = 1
	c.State.StartedAt = time.Now().Add(-time.Second)
	c.State.FinishedAt = time.Now()
	if ok, delay := d.shouldRestart(c); !ok || delay != 100*time.Millisecond {
		t.Fatalf("first failure: %v %v", ok, delay)
	}
	c.RestartCount = 2
	if ok, _ := d.shouldRestart(c); ok {
		t.Fatal("restarted past the maximum")
	}
	c.HostConfig.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyAlways}
	c.backoff = 3
	if ok, delay := d.shouldRestart(c); !ok || delay != 800*time.Millisecond || c.backoff != 4 {
		t.Fatalf("backoff: %v %v", ok, delay)
	}
	// After 10 s of running the delay starts again at 100 ms; the count stays.
	c.State.StartedAt = c.State.FinishedAt.Add(-time.Minute)
	if ok, delay := d.shouldRestart(c); !ok || delay != 100*time.Millisecond || c.RestartCount != 2 {
		t.Fatalf("backoff after a long run: %v %v count %d", ok, delay, c.RestartCount)
	}
	c.ManuallyStopped = true
	if ok, _ := d.shouldRestart(c); ok {
		t.Fatal("restarted a stopped container")
	}
}
