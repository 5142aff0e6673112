package oci

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"berth/internal/runtime/caps"
)

func TestCapabilities(t *testing.T) {
	def := caps.DockerDefault()
	all := allCaps()
	without := func(list []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
	}
	tests := []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
		err        string
	}{
		{name: "default", want: def},
		{name: "privileged", privileged: true, add: []string{"bogus"}, want: all},
		{name: "drop all", drop: []string{"ALL"}, want: nil},
		{name: "drop all add one", drop: []string{"all"}, add: []string{"net_bind_service"}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "add all", add: []string{"ALL"}, drop: []string{"sys_admin"}, want: without(all, "CAP_SYS_ADMIN")},
		{name: "add and drop", add: []string{"cap_sys_ptrace", "Net_Admin"}, drop: []string{"CHOWN", "mknod"},
			want: append(without(def, "CAP_CHOWN", "CAP_MKNOD"), "CAP_SYS_PTRACE", "CAP_NET_ADMIN")},
		{name: "add existing once", add: []string{"kill"}, want: def},
		{name: "unknown add", add: []string{"foo"}, err: `invalid CapAdd: unknown capability: "CAP_FOO"`},
		{name: "unknown drop", drop: []string{"cap_foo"}, err: `invalid CapDrop: unknown capability: "CAP_FOO"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Capabilities(tt.add, tt.drop, tt.privileged)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
	if len(def) != 14 {
		t.Errorf("Docker's default has %d capabilities", len(def))
	}
}

func TestParseSecurityOpt(t *testing.T) {
	so, err := ParseSecurityOpt([]string{"no-new-privileges", "seccomp=unconfined", "apparmor:unconfined", "label=disable", "writable-cgroups=1"})
	if err != nil {
		t.Fatal(err)
	}
	if so.NoNewPrivileges == nil || !*so.NoNewPrivileges || so.Seccomp != "unconfined" || so.AppArmor != "unconfined" ||
		!reflect.DeepEqual(so.Labels, []string{"disable"}) || so.WritableCgroups == nil || !*so.WritableCgroups {
		t.Errorf("parsed %+v", so)
	}
	so, err = ParseSecurityOpt([]string{"no-new-privileges=false"})
	if err != nil || so.NoNewPrivileges == nil || *so.NoNewPrivileges {
		t.Errorf("no-new-privileges=false: %+v %v", so, err)
	}
	so, err = ParseSecurityOpt(nil)
	if err != nil || so.NoNewPrivileges != nil || so.Seccomp != "" {
		t.Errorf("empty: %+v %v", so, err)
	}
	// a profile's JSON holds ':' and '=': only the first '=' splits
	so, err = ParseSecurityOpt([]string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","a":"b=c"}`})
	if err != nil || !strings.HasPrefix(so.Seccomp, `{"defaultAction"`) {
		t.Errorf("seccomp JSON: %+v %v", so, err)
	}
}

func TestMergeTmpfsOptions(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
		err  string
	}{
		{in: nil, want: []string{"noexec", "nosuid", "nodev", "rprivate"}},
		{in: []string{"size=64m"}, want: []string{"noexec", "nosuid", "nodev", "rprivate", "size=64m"}},
		{in: []string{"exec", "mode=1777", "size=1g", "size=2g"}, want: []string{"nosuid", "nodev", "rprivate", "exec", "mode=1777", "size=2g"}},
		{in: []string{"defaults", "ro", "suid", "shared"}, want: []string{"noexec", "nodev", "ro", "suid", "shared"}},
		{in: []string{"uid=1000", "gid=1000", "nr_inodes=1k", "size=50%"}, want: []string{"noexec", "nosuid", "nodev", "rprivate", "uid=1000", "gid=1000", "nr_inodes=1k", "size=50%"}},
		{in: []string{"bogus"}, err: `invalid tmpfs option ["bogus"]`},
		{in: []string{"foo=bar"}, err: `invalid tmpfs option ["foo" "bar"]`},
		{in: []string{"mode=999"}, err: `invalid tmpfs option "mode=999"`},
		{in: []string{"uid=x"}, err: `invalid tmpfs option "uid=x"`},
	}
	for _, tt := range tests {
		got, err := tmpfsOptions(tt.in)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %q %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestTmpfsData(t *testing.T) {
	got := TmpfsData(&mount.TmpfsOptions{SizeBytes: 64 << 20, Mode: 0o1770, Options: [][]string{{"exec"}, {"nr_inodes", "100"}}}, true)
	want := []string{"ro", "mode=1770", "size=64m", "exec", "nr_inodes=100"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q want %q", got, want)
	}
	if got := TmpfsData(&mount.TmpfsOptions{SizeBytes: 1000}, false); !reflect.DeepEqual(got, []string{"size=1000"}) {
		t.Errorf("got %q", got)
	}
	if got := TmpfsData(nil, false); len(got) != 0 {
		t.Errorf("got %q", got)
	}
}

func TestBindMountOptions(t *testing.T) {
	tests := []struct {
		m    Mount
		want []string
		err  bool
	}{
		{m: Mount{Source: "/a", Destination: "/b"}, want: []string{"rbind", "rprivate"}},
		{m: Mount{Source: "/a", Destination: "/b", ReadOnly: true}, want: []string{"rbind", "ro", "rro", "rprivate"}},
		{m: Mount{Source: "/a", Destination: "/b", ReadOnly: true, ReadOnlyNonRecursive: true}, want: []string{"rbind", "ro", "rprivate"}},
		{m: Mount{Source: "/a", Destination: "/b", NonRecursive: true, ReadOnly: true, Propagation: mount.PropagationSlave}, want: []string{"bind", "ro", "slave"}},
		{m: Mount{Source: "/a", Destination: "/b", Options: []string{"nosuid", "nodev", "noexec"}}, want: []string{"rbind", "rprivate", "nosuid", "nodev", "noexec"}},
		{m: Mount{Source: "/a", Destination: "/b", Options: []string{"size=1"}}, err: true},
		{m: Mount{Source: "/a", Destination: "/b", Propagation: "up"}, err: true},
	}
	for _, tt := range tests {
		got, err := bindMountOptions(tt.m)
		if tt.err != (err != nil) || (!tt.err && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("%+v: got %q %v, want %q", tt.m, got, err, tt.want)
		}
	}
}

func TestDeviceCgroupRule(t *testing.T) {
	r, err := parseDeviceCgroupRule("c *:3 rw")
	if err != nil || r.Type != "c" || *r.Major != -1 || *r.Minor != 3 || r.Access != "rw" || !r.Allow {
		t.Errorf("got %+v %v", r, err)
	}
	for _, bad := range []string{"c 1:3", "x 1:3 rwm", "c 1:3 rwmx", "c a:3 r", "c 1:3  r"} {
		if _, err := parseDeviceCgroupRule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDevicesFromMapping(t *testing.T) {
	devs, rules, err := devicesFromMapping(containerDevice("/dev/null", "/dev/mynull", ""))
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].Path != "/dev/mynull" || devs[0].Type != "c" || devs[0].Major != 1 || devs[0].Minor != 3 {
		t.Errorf("devices %+v", devs)
	}
	if len(rules) != 1 || rules[0].Access != "rwm" || *rules[0].Major != 1 || *rules[0].Minor != 3 {
		t.Errorf("rules %+v", rules)
	}
	if _, _, err := devicesFromMapping(containerDevice("/etc/passwd", "", "rwm")); err == nil ||
		!strings.Contains(err.Error(), `error gathering device information while adding custom device "/etc/passwd"`) {
		t.Errorf("regular file as device: %v", err)
	}
	if _, _, err := devicesFromMapping(containerDevice("/dev/does-not-exist", "", "rwm")); err == nil {
		t.Error("missing device accepted")
	}
}

func containerDevice(host, ctr, perms string) container.DeviceMapping {
	return container.DeviceMapping{PathOnHost: host, PathInContainer: ctr, CgroupPermissions: perms}
}
