package opts

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/spf13/pflag"
)

// The files testdata/create/<case>.json are the bodies of POST /containers/create that
// docker 28.2.2 sent for `docker create <args>` of testdata/create/cases.txt (recorded with
// a fake daemon). The test parses the same arguments and compares the request berth makes.

type createCase struct{ name, args string }

func readCases(t *testing.T) []createCase {
	t.Helper()
	f, err := os.Open("testdata/create/cases.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []createCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, args, ok := strings.Cut(sc.Text(), "|")
		if ok {
			cases = append(cases, createCase{name, args})
		}
	}
	return cases
}

// shellWords splits a command line with shell quoting (single and double quotes).
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// parseCreate parses create's arguments as the CLI does (run and create's own flags
// included) and returns the request body.
func parseCreate(t *testing.T, args []string) (*ContainerConfig, error) {
	t.Helper()
	fs := pflag.NewFlagSet("create", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.String("name", "", "")
	fs.String("platform", "", "")
	o := AddContainerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	rest := fs.Args()
	return o.Parse(fs, rest[0], rest[1:])
}

// normalized is a request body as a generic map, with the parts docker sends in an
// unspecified order (Env, Binds: built from maps) sorted.
func normalized(t *testing.T, body []byte) map[string]any {
	t.Helper()
	// Through the API types first, so that both sides have the same fields.
	var req container.CreateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	sortList := func(v any) {
		if l, ok := v.([]any); ok {
			sort.Slice(l, func(i, j int) bool { return l[i].(string) < l[j].(string) })
		}
	}
	sortList(m["Env"])
	if hc, ok := m["HostConfig"].(map[string]any); ok {
		sortList(hc["Binds"])
	}
	return m
}

// normalizeCaps is what the API client does to capabilities when it sends them.
func normalizeCaps(caps []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range caps {
		c = strings.ToUpper(c)
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

func diffMaps(t *testing.T, path string, want, got any) {
	t.Helper()
	wm, wok := want.(map[string]any)
	gm, gok := got.(map[string]any)
	if wok && gok {
		keys := map[string]bool{}
		for k := range wm {
			keys[k] = true
		}
		for k := range gm {
			keys[k] = true
		}
		for k := range keys {
			diffMaps(t, path+"."+k, wm[k], gm[k])
		}
		return
	}
	if !reflect.DeepEqual(want, got) {
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		t.Errorf("%s: docker sends %s, berth %s", path, wb, gb)
	}
}

func TestParseMatchesDocker(t *testing.T) {
	t.Setenv("B", "from-env")
	t.Setenv("C", "")
	os.Unsetenv("C")
	cases := readCases(t)
	t.Chdir("testdata/create")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			golden, err := os.ReadFile(c.name + ".json")
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := parseCreate(t, shellWords(c.args))
			if err != nil {
				t.Fatalf("parse %s: %v", c.args, err)
			}
			cfg.HostConfig.CapAdd = normalizeCaps(cfg.HostConfig.CapAdd)
			cfg.HostConfig.CapDrop = normalizeCaps(cfg.HostConfig.CapDrop)
			body, err := json.Marshal(container.CreateRequest{Config: cfg.Config, HostConfig: cfg.HostConfig, NetworkingConfig: cfg.NetworkingConfig})
			if err != nil {
				t.Fatal(err)
			}
			diffMaps(t, "", normalized(t, golden), normalized(t, body))
		})
	}
}

// TestParseSeccompProfile: a seccomp profile file travels as its compacted content.
func TestParseSeccompProfile(t *testing.T) {
	cfg, err := parseCreate(t, []string{"--security-opt", "seccomp=testdata/create/seccomp.json", "img"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}`}
	if !reflect.DeepEqual(cfg.HostConfig.SecurityOpt, want) {
		t.Errorf("SecurityOpt %q, want %q", cfg.HostConfig.SecurityOpt, want)
	}
	for _, builtin := range []string{"unconfined", "builtin"} {
		cfg, err := parseCreate(t, []string{"--security-opt", "seccomp=" + builtin, "img"})
		if err != nil || cfg.HostConfig.SecurityOpt[0] != "seccomp="+builtin {
			t.Errorf("seccomp=%s: %v %q", builtin, err, cfg.HostConfig.SecurityOpt)
		}
	}
}

// TestParseRelativeBind: a bind source starting with "." is made absolute; a name is a
// volume; a lone path is an anonymous volume in Config.Volumes.
func TestParseRelativeBind(t *testing.T) {
	cfg, err := parseCreate(t, []string{"-v", "./rel:/rel", "-v", "vol:/v", "-v", "/anon", "img"})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	want := []string{filepath.Join(wd, "rel") + ":/rel", "vol:/v"}
	if !reflect.DeepEqual(cfg.HostConfig.Binds, want) {
		t.Errorf("Binds %q, want %q", cfg.HostConfig.Binds, want)
	}
	if _, ok := cfg.Config.Volumes["/anon"]; !ok || len(cfg.Config.Volumes) != 1 {
		t.Errorf("Volumes %v, want /anon only", cfg.Config.Volumes)
	}
}

// TestParseErrors: invalid flag combinations and values give docker's messages.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--rm", "--restart", "always"}, "conflicting options: cannot specify both --restart and --rm"},
		{[]string{"--no-healthcheck", "--health-cmd", "true"}, "--no-healthcheck conflicts with --health-* options"},
		{[]string{"--health-interval", "-1s"}, "--health-interval cannot be negative"},
		{[]string{"--pid", "bogus"}, "--pid: invalid PID mode"},
		{[]string{"--uts", "bogus"}, "--uts: invalid UTS mode"},
		{[]string{"--userns", "bogus"}, "--userns: invalid USER mode"},
		{[]string{"--cgroupns", "bogus"}, "--cgroupns: invalid CGROUP mode"},
		{[]string{"--memory-swappiness", "101"}, "invalid value: 101. Valid memory swappiness range is 0-100"},
		{[]string{"--mac-address", "nope"}, "nope is not a valid mac address"},
		{[]string{"-a", "stdbogus"}, "valid streams are STDIN, STDOUT and STDERR"},
		{[]string{"-p", "bogus:80:80:80"}, "invalid"},
		{[]string{"--sysctl", "kernel.panic=1"}, "sysctl 'kernel.panic=1' is not allowed"},
		{[]string{"--env-file", "/nonexistent/env"}, "no such file or directory"},
		{[]string{"--security-opt", "seccomp=/nonexistent.json"}, "opening seccomp profile (/nonexistent.json) failed"},
		{[]string{"--security-opt", "label"}, `invalid --security-opt: "label"`},
		{[]string{"--log-driver", "none", "--log-opt", "a=b"}, "invalid logging opts for driver none"},
		{[]string{"--restart", ":3"}, "invalid restart policy format: no policy provided before colon"},
		{[]string{"--restart", "on-failure:x"}, "invalid restart policy format: maximum retry count must be an integer"},
		{[]string{"--device", "/dev/sda:/dev/xvda:rwx"}, "bad mode specified: rwx"},
		{[]string{"--device", "/dev/sda:rel"}, "rel is not an absolute path"},
		{[]string{"--storage-opt", "size"}, "invalid storage option"},
		{[]string{"--network", "none", "--network-alias", "a"}, "network-scoped aliases are only supported for user-defined networks"},
		{[]string{"--network", "n1", "--network", "host"}, "conflicting options: cannot attach both user-defined and non-user-defined network-modes"},
		{[]string{"--network", "n1", "--network", "n1"}, `network "n1" is specified multiple times`},
		{[]string{"--expose", "x-y"}, "invalid range format for --expose"},
		{[]string{"--mount", "type=bind,src=/a"}, "target is required"},
		{[]string{"--mount", "type=tmpfs,dst=/a,volume-nocopy"}, "cannot mix 'volume-*' options with mount type 'tmpfs'"},
		{[]string{"--add-host", "nohost"}, `bad format for add-host: "nohost"`},
		{[]string{"--add-host", "h:999.1.1.1"}, `invalid IP address in add-host: "999.1.1.1"`},
		{[]string{"--ulimit", "nofile=2:1"}, "ulimit soft limit must be less than or equal to hard limit"},
		{[]string{"--cpus", "0.0000000001"}, "value is too precise"},
		{[]string{"-e", "=x"}, "invalid environment variable: =x"},
		{[]string{"-l", " =x"}, "invalid label ' =x': empty name"},
	} {
		_, err := parseCreate(t, append(c.args, "img"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.args, err, c.want)
		}
	}
}

func TestParseRestartPolicy(t *testing.T) {
	for in, want := range map[string]container.RestartPolicy{
		"no":           {Name: "no"},
		"always":       {Name: "always"},
		"on-failure":   {Name: "on-failure"},
		"on-failure:5": {Name: "on-failure", MaximumRetryCount: 5},
		"":             {},
	} {
		got, err := ParseRestartPolicy(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
}

func TestReadEnvFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "env")
	os.WriteFile(f, []byte("\xEF\xBB\xBFA=1\n  # comment\n\n  B = spaced\nPASS\nMISSING\nQ=\"quoted\"\n"), 0o644)
	t.Setenv("PASS", "through")
	_, err := ReadEnv([]string{f}, nil)
	if err == nil || !strings.Contains(err.Error(), "variable 'B ' contains whitespaces") {
		t.Errorf("a key with spaces: %v", err)
	}
	os.WriteFile(f, []byte("\xEF\xBB\xBFA=1\n  # comment\n\nPASS\nMISSING_BERTH_VAR\nQ=\"quoted\" \n"), 0o644)
	got, err := ReadEnv([]string{f}, []string{"O=override"})
	want := []string{"A=1", "PASS=through", "MISSING_BERTH_VAR", `Q="quoted" `, "O=override"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ReadEnv: %q %v, want %q", got, err, want)
	}
}

func TestParseVolumeSpec(t *testing.T) {
	for _, c := range []struct {
		in   string
		want VolumeSpec
	}{
		{"/data", VolumeSpec{Target: "/data"}},
		{"vol:/data", VolumeSpec{Source: "vol", Target: "/data"}},
		{"/h:/c:ro", VolumeSpec{Source: "/h", Target: "/c", ReadOnly: true, Bind: true}},
		{"./h:/c:rw,z", VolumeSpec{Source: "./h", Target: "/c", Bind: true}},
		{"~/h:/c", VolumeSpec{Source: "~/h", Target: "/c", Bind: true}},
	} {
		got, err := ParseVolumeSpec(c.in)
		if err != nil || got != c.want {
			t.Errorf("%q: %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
	if _, err := ParseVolumeSpec("a::b"); err == nil {
		t.Errorf("an empty section: no error")
	}
}

func TestFilters(t *testing.T) {
	f := NewFilters()
	for _, v := range []string{"name=a", "Status = running", "name=b", ""} {
		if err := f.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]map[string]bool{"name": {"a": true, "b": true}, "status": {"running": true}}
	if !reflect.DeepEqual(map[string]map[string]bool(f.Value()), want) {
		t.Errorf("filters %v, want %v", f.Value(), want)
	}
	if err := f.Set("noequals"); err == nil {
		t.Errorf("a filter without =: no error")
	}
}

func TestMemBytesAndCPUs(t *testing.T) {
	var m MemBytes
	if err := m.Set("1.5g"); err != nil || m.Value() != 1610612736 {
		t.Errorf("1.5g: %d %v", m.Value(), err)
	}
	var s MemSwapBytes
	if err := s.Set("-1"); err != nil || s.Value() != -1 {
		t.Errorf("swap -1: %d %v", s.Value(), err)
	}
	var c NanoCPUs
	if err := c.Set("0.25"); err != nil || c.Value() != 250000000 || c.String() != "0.250" {
		t.Errorf("cpus 0.25: %d %q %v", c.Value(), c.String(), err)
	}
}
