package build_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestOptions checks docker build's own options and the .dockerignore file, one subtest
// each, against one daemon.
func TestOptions(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T, *daemon)
	}{
		{"dockerignore", testDockerignore},
		{"file", testFileFlag},
		{"stdin", testStdin},
		{"tags_label_iidfile", testTagsLabelIidfile},
		{"quiet", testQuiet},
		{"target", testTarget},
		{"no_cache", testNoCache},
		{"network_none", testNetworkNone},
		{"leftovers", testLeftovers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.clean(t)
			tc.test(t, d)
		})
	}
}

// testDockerignore pins .dockerignore: patterns (*.log, a directory, **/ at any depth, a
// path under a directory) exclude files from the context, a later "!" pattern brings one
// back, comments are ignored; the Dockerfile and .dockerignore themselves are sent; COPY of
// an excluded file fails.
func testDockerignore(t *testing.T, d *daemon) {
	ctx := writeContext(t, map[string]string{
		"Dockerfile":            "FROM busybox\nCOPY . /ctx/\n",
		".dockerignore":         "# a comment\n*.log\n!keep.log\nsecret\n**/*.tmp\ndir/excluded-dir\n",
		"a.log":                 "excluded",
		"keep.log":              "kept",
		"secret/s.txt":          "excluded",
		"dir/x.tmp":             "excluded",
		"dir/y.txt":             "kept",
		"dir/excluded-dir/z":    "excluded",
		"top.tmp":               "excluded",
		"normal.txt":            "kept",
		"deeper/still/file.tmp": "excluded",
	})
	d.mustBuild(t, ctx, "-t", "bt/ignore")
	equal(t, "the files COPY . copied", d.runIn(t, "bt/ignore", "sh", "-c", "cd /ctx && find . -type f | sort"),
		"./.dockerignore\n./Dockerfile\n./dir/y.txt\n./keep.log\n./normal.txt")
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox\nCOPY secret/s.txt /s.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.failBuild(t, nil, ctx, "-t", "bt/ignore-copy")
}

// testFileFlag pins -f: a Dockerfile of another name in a subdirectory of the context, and
// one outside the context (the CLI sends it with the context), whose COPY reads the context.
func testFileFlag(t *testing.T, d *daemon) {
	ctx := writeContext(t, map[string]string{
		"Dockerfile":           "FROM busybox\nRUN echo default > /which\n",
		"sub/Other.dockerfile": "FROM busybox\nRUN echo other > /which\n",
		"marker":               "from the context",
	})
	d.mustBuild(t, ctx, "-t", "bt/f-sub", "-f", filepath.Join(ctx, "sub", "Other.dockerfile"))
	equal(t, "-f sub/Other.dockerfile", d.cat(t, "bt/f-sub", "/which"), "other")
	outside := filepath.Join(t.TempDir(), "outside.Dockerfile")
	if err := os.WriteFile(outside, []byte("FROM busybox\nCOPY marker /marker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.mustBuild(t, ctx, "-t", "bt/f-outside", "-f", outside)
	equal(t, "-f outside the context", d.cat(t, "bt/f-outside", "/marker"), "from the context")
}

// testStdin pins `docker build -` with the Dockerfile on stdin and no context.
func testStdin(t *testing.T, d *daemon) {
	r := d.build(t, []byte("FROM busybox\nRUN echo from-stdin > /stdin\n"), "-", "-t", "bt/stdin")
	if r.code != 0 {
		t.Fatalf("%v\n%s", r, d.logTail())
	}
	equal(t, "a Dockerfile from stdin", d.cat(t, "bt/stdin", "/stdin"), "from-stdin")
}

// testTagsLabelIidfile pins several -t (every name tags the one image, "Successfully tagged"
// for each), --label (added to the Dockerfile's labels) and --iidfile (the image ID,
// sha256:..., without a newline).
func testTagsLabelIidfile(t *testing.T, d *daemon) {
	ctx := dockerfile(t, "FROM busybox\nLABEL from.dockerfile=yes\nRUN echo x > /x\n")
	iid := filepath.Join(t.TempDir(), "iid")
	out := d.mustBuild(t, ctx, "-t", "bt/one", "-t", "bt/two:v2", "--label", "from.cli=yes", "--iidfile", iid)
	for _, want := range []string{"Successfully tagged bt/one:latest", "Successfully tagged bt/two:v2"} {
		if !strings.Contains(out, want) {
			t.Errorf("the build output lacks %q:\n%s", want, out)
		}
	}
	id := d.inspect(t, "bt/one", "{{.Id}}")
	equal(t, "ID of the second tag", d.inspect(t, "bt/two:v2", "{{.Id}}"), id)
	b, err := os.ReadFile(iid)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "--iidfile", string(b), id)
	equal(t, "Config.Labels", d.inspect(t, "bt/one", "{{json .Config.Labels}}"), `{"from.cli":"yes","from.dockerfile":"yes"}`)
}

var imageID = regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`)

// testQuiet pins -q: standard output is the image ID and nothing else (no steps, no RUN
// output).
func testQuiet(t *testing.T, d *daemon) {
	ctx := dockerfile(t, "FROM busybox\nRUN echo run-output\n")
	r := d.build(t, nil, ctx, "-q")
	if r.code != 0 {
		t.Fatalf("%v\n%s", r, d.logTail())
	}
	if !imageID.MatchString(r.stdout) {
		t.Fatalf("docker build -q printed %q, want only the image ID", r.stdout)
	}
	equal(t, "the ID -q printed", d.inspect(t, strings.TrimSpace(r.stdout), "{{.Id}}"), strings.TrimSpace(r.stdout))
}

// testTarget pins --target: the build stops after the named stage (a later failing stage is
// not built), and an unknown target is an error.
func testTarget(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox AS one
RUN echo one > /one
FROM one AS two
RUN exit 7
`)
	d.mustBuild(t, ctx, "-t", "bt/target", "--target", "one")
	equal(t, "--target one", d.cat(t, "bt/target", "/one"), "one")
	d.failBuild(t, nil, ctx, "-t", "bt/target-none", "--target", "nosuchstage")
}

// testNoCache pins --no-cache: a rebuild hits the cache, the same build with --no-cache
// runs every step again.
func testNoCache(t *testing.T, d *daemon) {
	ctx := dockerfile(t, "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n")
	d.mustBuild(t, ctx, "-t", "bt/cache")
	for _, s := range steps(d.mustBuild(t, ctx, "-t", "bt/cache")) {
		if !strings.HasPrefix(s.instruction, "FROM") && !s.cached() {
			t.Errorf("rebuild: step %q did not use the cache:%s", s.instruction, s.output)
		}
	}
	out := d.mustBuild(t, ctx, "-t", "bt/cache", "--no-cache")
	if strings.Contains(out, "Using cache") {
		t.Errorf("--no-cache used the cache:\n%s", out)
	}
	if n := len(steps(out)); n != 3 {
		t.Errorf("--no-cache: %d steps, want 3:\n%s", n, out)
	}
}

// testNetworkNone pins --network none: RUN has only the loopback interface and cannot reach
// another address. Without it, RUN is on the default bridge (eth0): asserted on berthd only,
// the private dockerd has no bridge. (The build's network is not part of the cache key, in
// Docker as in berth: the second build needs --no-cache.)
func testNetworkNone(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox
RUN ls /sys/class/net > /nets
RUN (wget -q -T 3 -O /dev/null http://192.0.2.1/ && echo reached || echo unreachable) > /reach 2>/dev/null
`)
	d.mustBuild(t, ctx, "-t", "bt/nonet", "--network", "none")
	equal(t, "interfaces with --network none", d.cat(t, "bt/nonet", "/nets"), "lo")
	equal(t, "a remote address with --network none", d.cat(t, "bt/nonet", "/reach"), "unreachable")
	if d.name == "berthd" {
		d.mustBuild(t, dockerfile(t, "FROM busybox\nRUN ls /sys/class/net > /nets\n"), "-t", "bt/net", "--no-cache")
		equal(t, "interfaces on the default network", d.cat(t, "bt/net", "/nets"), "eth0\nlo")
	}
}

// testLeftovers pins what a successful build leaves: no container (the intermediate
// containers are removed, --rm is the default), and the built image. Docker's classic
// builder also lists an intermediate image per step in `docker images -a`; berth keeps its
// build cache apart and lists only the result (asserted on berthd only).
func testLeftovers(t *testing.T, d *daemon) {
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\nRUN echo one > /one\nCOPY f /f\nRUN echo two > /two\n",
		"f":          "f",
	})
	before := d.state(t)
	d.mustBuild(t, ctx, "-t", "bt/leftovers")
	after := d.state(t)
	if c := added(before.containers, after.containers); len(c) > 0 {
		t.Errorf("containers left after a successful build (docker ps -a): %q", c)
	}
	equal(t, "new tags", strings.Join(added(before.tags, after.tags), " "), "bt/leftovers:latest")
	if d.name == "berthd" {
		equal(t, "new images in docker images -a", strings.Join(added(before.images, after.images), " "), d.inspect(t, "bt/leftovers", "{{.Id}}"))
	}
}
