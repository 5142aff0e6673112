package format

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
)

func containerRows(trunc bool) []any {
	day := time.Now().AddDate(0, 0, -1).Unix()
	return []any{
		&Container{C: container.Summary{ID: "containerID1", Names: []string{"/foobar_baz"}, Image: "ubuntu", Created: day, State: "running"}, Trunc: trunc},
		&Container{C: container.Summary{ID: "containerID2", Names: []string{"/foobar_bar"}, Image: "ubuntu", Created: day, State: "running"}, Trunc: trunc},
	}
}

func render(t *testing.T, f Format, h Header, rows []any) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, f, h, rows); err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	return b.String()
}

// TestContainerTable: docker's ps tables, byte for byte (the expectations are docker's).
func TestContainerTable(t *testing.T) {
	for _, c := range []struct {
		f    Format
		want string
	}{
		{ContainerFormat("table", false, true), "CONTAINER ID   IMAGE     COMMAND   CREATED        STATUS    PORTS     NAMES        SIZE\n" +
			"containerID1   ubuntu    \"\"        24 hours ago                       foobar_baz   0B\n" +
			"containerID2   ubuntu    \"\"        24 hours ago                       foobar_bar   0B\n"},
		{ContainerFormat("table", false, false), "CONTAINER ID   IMAGE     COMMAND   CREATED        STATUS    PORTS     NAMES\n" +
			"containerID1   ubuntu    \"\"        24 hours ago                       foobar_baz\n" +
			"containerID2   ubuntu    \"\"        24 hours ago                       foobar_bar\n"},
		{ContainerFormat("table {{.Image}}", false, false), "IMAGE\nubuntu\nubuntu\n"},
		{ContainerFormat("table {{.Image}}", true, false), "containerID1\ncontainerID2\n"},
		{ContainerFormat("table", true, false), "containerID1\ncontainerID2\n"},
		{ContainerFormat("table {{.State}}", false, true), "STATE\nrunning\nrunning\n"},
		{ContainerFormat("{{.Image}}", false, true), "ubuntu\nubuntu\n"},
		{ContainerFormat(`table {{split .Image ":"}}`, false, false), "IMAGE\n[ubuntu]\n[ubuntu]\n"},
		{ContainerFormat(`table {{truncate .ID 5}}\t{{json .Image}}\t{{upper .Names}}\t{{title .State}}\t{{pad .Ports 2 2}}.`, false, false),
			"CONTAINER ID   IMAGE      NAMES        STATE       PORTS  .\n" +
				"conta          \"ubuntu\"   FOOBAR_BAZ   Running   .\n" +
				"conta          \"ubuntu\"   FOOBAR_BAR   Running   .\n"},
		{`{{.Names}}{{println}}`, "foobar_baz\n\nfoobar_bar\n\n"},
		{`{{join (split .Names "_") "-"}}`, "foobar-baz\nfoobar-bar\n"},
	} {
		if got := render(t, c.f, ContainerHeader, containerRows(true)); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.f, got, c.want)
		}
	}
	// A table header is printed even without rows.
	if got := render(t, "table {{.Image}}\t{{.Size}}", ContainerHeader, nil); got != "IMAGE     SIZE\n" {
		t.Errorf("empty table: %q", got)
	}
	if got := render(t, "{{.Image}}", ContainerHeader, nil); got != "" {
		t.Errorf("empty list: %q", got)
	}
	var b bytes.Buffer
	if err := Write(&b, "{{InvalidFunction}}", ContainerHeader, containerRows(true)); err == nil || !strings.Contains(err.Error(), `template parsing error: template: :1: function "InvalidFunction" not defined`) {
		t.Errorf("invalid template: %v", err)
	}
}

// TestContainerJSON: the json format prints every field of a row, as docker's does.
func TestContainerJSON(t *testing.T) {
	out := render(t, JSONKey, ContainerHeader, containerRows(true))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("json: %q", out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"Command": `""`, "ID": "containerID1", "Image": "ubuntu", "Labels": "", "LocalVolumes": "0",
		"Mounts": "", "Names": "foobar_baz", "Networks": "", "Ports": "", "RunningFor": "24 hours ago", "Size": "0B", "State": "running", "Status": "", "Platform": nil} {
		if v, ok := m[k]; !ok || v != want {
			t.Errorf("json %s: %v (present %v), want %v", k, v, ok, want)
		}
	}
	if len(m) != 15 {
		t.Errorf("json: %d keys, want 15: %v", len(m), m)
	}
}

func TestContainerFields(t *testing.T) {
	full := "a5a665ff33eced1e0803148700880edab4269067ed77e27737a708d0d293fbf5"
	for _, c := range []struct {
		ctr   container.Summary
		trunc bool
		call  func(*Container) string
		want  string
	}{
		{container.Summary{ID: full}, true, (*Container).ID, "a5a665ff33ec"},
		{container.Summary{ID: full}, false, (*Container).ID, full},
		{container.Summary{Image: "a5a665ff33eced1e0803148700880edab4", ImageID: "sha256:" + full}, true, (*Container).Image, "a5a665ff33ec"},
		{container.Summary{Image: "docker.io/library/ubuntu:22.04@sha256:" + full, ImageID: "sha256:x"}, true, (*Container).Image, "ubuntu:22.04"},
		{container.Summary{Image: ""}, true, (*Container).Image, "<no image>"},
		{container.Summary{Command: "sh -c 'ls -la'"}, true, (*Container).Command, `"sh -c 'ls -la'"`},
		{container.Summary{Command: "a very long command line that goes on"}, true, (*Container).Command, `"a very long command…"`},
		{container.Summary{SizeRw: 10, SizeRootFs: 20}, true, (*Container).Size, "10B (virtual 20B)"},
		{container.Summary{Labels: map[string]string{"storage": "ssd", "cpu": "6"}}, true, (*Container).Labels, "cpu=6,storage=ssd"},
		{container.Summary{Names: []string{"/a/link", "/b"}}, true, (*Container).Names, "b"},
		{container.Summary{Names: []string{"/a/link", "/b"}}, false, (*Container).Names, "a/link,b"},
		{container.Summary{Mounts: []container.MountPoint{{Name: "this-is-a-long-volume-name-and-will-be-truncated", Driver: "local"}}}, true, (*Container).Mounts, "this-is-a-long…"},
		{container.Summary{Mounts: []container.MountPoint{{Source: "/a/path", Driver: "local"}}}, false, (*Container).Mounts, "/a/path"},
	} {
		if got := c.call(&Container{C: c.ctr, Trunc: c.trunc}); got != c.want {
			t.Errorf("%+v: %q, want %q", c.ctr, got, c.want)
		}
	}
}

func TestDisplayablePorts(t *testing.T) {
	ip := netip.MustParseAddr
	for _, c := range []struct {
		ports []container.PortSummary
		want  string
	}{
		{[]container.PortSummary{{PrivatePort: 9988, Type: "tcp"}}, "9988/tcp"},
		{[]container.PortSummary{{IP: ip("0.0.0.0"), PrivatePort: 9988, Type: "tcp"}}, "0.0.0.0:0->9988/tcp"},
		{[]container.PortSummary{{PrivatePort: 9988, PublicPort: 8899, Type: "tcp"}}, "9988/tcp"},
		{[]container.PortSummary{{IP: ip("4.3.2.1"), PrivatePort: 9988, PublicPort: 8899, Type: "tcp"}}, "4.3.2.1:8899->9988/tcp"},
		{[]container.PortSummary{{IP: ip("4.3.2.1"), PrivatePort: 9988, PublicPort: 9988, Type: "tcp"}}, "4.3.2.1:9988->9988/tcp"},
		{[]container.PortSummary{{PrivatePort: 9988, Type: "udp"}, {PrivatePort: 9988, Type: "udp"}}, "9988/udp, 9988/udp"},
		{[]container.PortSummary{{IP: ip("1.2.3.4"), PublicPort: 9998, PrivatePort: 9998, Type: "udp"}, {IP: ip("1.2.3.4"), PublicPort: 9999, PrivatePort: 9999, Type: "udp"}}, "1.2.3.4:9998-9999->9998-9999/udp"},
		{[]container.PortSummary{{PrivatePort: 9998, Type: "udp"}, {PrivatePort: 9999, Type: "udp"}}, "9998-9999/udp"},
		{[]container.PortSummary{{IP: ip("1.2.3.4"), PrivatePort: 6677, PublicPort: 7766, Type: "tcp"}, {PrivatePort: 9988, PublicPort: 8899, Type: "udp"}}, "9988/udp, 1.2.3.4:7766->6677/tcp"},
		{[]container.PortSummary{{IP: ip("::"), PrivatePort: 80, PublicPort: 8080, Type: "tcp"}}, "[::]:8080->80/tcp"},
	} {
		if got := DisplayablePorts(c.ports); got != c.want {
			t.Errorf("%+v: %q, want %q", c.ports, got, c.want)
		}
	}
}

func TestImageRows(t *testing.T) {
	img := image.Summary{ID: "sha256:" + strings.Repeat("ab", 32), Size: 1984000, Created: time.Now().Add(-2 * time.Hour).Unix(),
		RepoTags:    []string{"busybox:latest", "busybox:1", "example.com/x/y:v"},
		RepoDigests: []string{"busybox@sha256:" + strings.Repeat("cd", 32)}}
	dangling := image.Summary{ID: "sha256:" + strings.Repeat("ef", 32), RepoTags: []string{"<none>:<none>"}, RepoDigests: []string{"<none>@<none>"}}
	got := render(t, ImageFormat("table", false, false), ImageHeader, ImageRows([]image.Summary{img, dangling}, true, false))
	want := "REPOSITORY        TAG       IMAGE ID       CREATED       SIZE\n" +
		"busybox           latest    abababababab   2 hours ago   1.98MB\n" +
		"busybox           1         abababababab   2 hours ago   1.98MB\n" +
		"example.com/x/y   v         abababababab   2 hours ago   1.98MB\n" +
		"<none>            <none>    efefefefefef   N/A           0B\n"
	if got != want {
		t.Errorf("images:\n got %q\nwant %q", got, want)
	}
	got = render(t, ImageFormat("table", false, true), ImageHeader, ImageRows([]image.Summary{img}, true, true))
	if !strings.Contains(got, "busybox           latest    sha256:"+strings.Repeat("cd", 32)+"   abababababab") {
		t.Errorf("images --digests:\n%s", got)
	}
	if got := render(t, ImageFormat("table", true, false), ImageHeader, ImageRows([]image.Summary{img}, false, false)); strings.Count(got, "sha256:") != 3 {
		t.Errorf("images -q --no-trunc: %q", got)
	}
	if f := ImageFormat("table {{.ID}}", false, true); f != "table {{.ID}}\t{{.Digest}}" {
		t.Errorf("a custom table with --digests: %q", f)
	}
}

func TestVolumeAndDiskUsage(t *testing.T) {
	vols := []any{&Volume{V: volume.Volume{Name: "v1", Driver: "local", Scope: "local"}}, &Volume{V: volume.Volume{Name: "longer-name", Driver: "local"}}}
	if got := render(t, VolumeFormat("", false), VolumeHeader, vols); got != "DRIVER    VOLUME NAME\nlocal     v1\nlocal     longer-name\n" {
		t.Errorf("volume ls: %q", got)
	}
	if got := render(t, VolumeFormat("", true), VolumeHeader, vols); got != "v1\nlonger-name\n" {
		t.Errorf("volume ls -q: %q", got)
	}
	du := client.DiskUsageResult{
		Images:     client.ImagesDiskUsage{TotalCount: 2, ActiveCount: 1, TotalSize: 2000000, Reclaimable: 1000000},
		Containers: client.ContainersDiskUsage{TotalCount: 1, ActiveCount: 1, TotalSize: 28},
	}
	want := "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n" +
		"Images          2         1         2MB       1MB (50%)\n" +
		"Containers      1         1         28B       0B (0%)\n" +
		"Local Volumes   0         0         0B        0B\n" +
		"Build Cache     0         0         0B        0B\n"
	if got := render(t, DefaultDiskUsageTable, DiskUsageHeader, DiskUsageRows(du)); got != want {
		t.Errorf("system df:\n got %q\nwant %q", got, want)
	}
}

func TestStats(t *testing.T) {
	v := &container.StatsResponse{Name: "/web", ID: strings.Repeat("a", 64)}
	v.CPUStats.CPUUsage.TotalUsage, v.PreCPUStats.CPUUsage.TotalUsage = 300, 100
	v.CPUStats.SystemUsage, v.PreCPUStats.SystemUsage = 2000, 1000
	v.CPUStats.OnlineCPUs = 2
	v.MemoryStats = container.MemoryStats{Usage: 2 << 20, Limit: 8 << 20, Stats: map[string]uint64{"total_inactive_file": 1 << 20}}
	v.Networks = map[string]container.NetworkStats{"eth0": {RxBytes: 1000, TxBytes: 2000}}
	v.BlkioStats.IoServiceBytesRecursive = []container.BlkioStatEntry{{Op: "Read", Value: 4096}, {Op: "write", Value: 8192}}
	v.PidsStats.Current = 3
	e := StatsFromResponse(v)
	got := render(t, DefaultStatsTable, StatsHeader, []any{&Stats{S: e, Trunc: true}, &Stats{S: StatsEntry{ID: "gone", Invalid: true}, Trunc: true}})
	want := "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O     BLOCK I/O        PIDS\n" +
		"aaaaaaaaaaaa   web       40.00%    1MiB / 8MiB         12.50%    1kB / 2kB   4.1kB / 8.19kB   3\n" +
		"gone           --        --        -- / --             --        --          --               --\n"
	if got != want {
		t.Errorf("stats:\n got %q\nwant %q", got, want)
	}
}

func TestHelpers(t *testing.T) {
	if got := TruncateID("sha256:" + strings.Repeat("1", 64)); got != "111111111111" {
		t.Errorf("TruncateID: %q", got)
	}
	for in, want := range map[string]string{"abc": "abc", "abcdefghij": "abcdefghij", "abcdefghijk": "abcdefghi…", "日本語日本語日本語日本語": "日本語日…"} {
		if got := Ellipsis(in, 10); got != want {
			t.Errorf("Ellipsis(%q): %q, want %q", in, got, want)
		}
	}
	if got := title("hello wORLD foo_bar x-y"); got != "Hello WORLD Foo_bar X-Y" {
		t.Errorf("title: %q", got)
	}
	if got := (Header{}).Label("com.example.my-label_x"); got != "my label x" {
		t.Errorf("Header.Label: %q", got)
	}
}
