package build_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth/test/berthtest"
)

// TestBerthCLI: berth's own `berth build` on berthd (issue 7's second front door): a
// progress line per step and the tag at the end, -q prints only the image ID; --pull with
// a base image made locally (no registry to get a newer one from) warns and builds on it;
// a FROM of an image that is neither here nor pullable fails naming the line.
func TestBerthCLI(t *testing.T) {
	if onDockerd {
		t.Skip("berth's own CLI and berthd's --pull rule for local images")
	}
	d := newDaemon(t)
	bin := filepath.Join(berthtest.Binaries(t), "berth")
	berth := func(args ...string) result {
		cmd := exec.Command(bin, args...)
		cmd.Env = d.env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		r := result{args: args}
		if err := cmd.Run(); err != nil {
			r.code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				r.code = ee.ExitCode()
			}
		}
		r.stdout, r.stderr = out.String(), errb.String()
		t.Logf("$ berth %s -> %d", strings.Join(args, " "), r.code)
		return r
	}
	t.Run("progress", func(t *testing.T) {
		d.clean(t)
		ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo built > /f\nCMD [\"cat\", \"/f\"]\n"})
		r := berth("build", "-t", "bt/berth", ctx)
		if r.code != 0 {
			t.Fatalf("%v\n%s", r, d.logTail())
		}
		for _, want := range []string{"Step 1/3 : FROM busybox", "Step 2/3 : RUN echo built > /f", " ---> Running in ", "Step 3/3 : CMD [\"cat\", \"/f\"]", "Successfully tagged bt/berth:latest"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("berth build printed no %q:\n%s", want, r.stdout)
			}
		}
		equal(t, "the built image's command", d.runIn(t, "bt/berth"), "built")
		q := berth("build", "-q", ctx)
		id := d.inspect(t, "bt/berth", "{{.ID}}")
		if q.code != 0 || strings.TrimSpace(q.stdout) != id {
			t.Errorf("berth build -q printed %q (exit %d), want only the image ID %s (all steps cached)", q.stdout, q.code, id)
		}
	})
	t.Run("pull", func(t *testing.T) {
		d.clean(t)
		ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nLABEL pulled=no\n"})
		r := berth("build", "--pull", "-t", "bt/pull", ctx)
		if r.code != 0 {
			t.Fatalf("%v\n%s", r, d.logTail())
		}
		if !strings.Contains(r.stdout, "--pull: busybox was made locally") {
			t.Errorf("no warning that the local base image is used:\n%s", r.stdout)
		}
		before := d.state(t)
		bad := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY --from=nothere:1 /x /x\n"})
		r = berth("build", bad)
		if r.code == 0 || !strings.Contains(r.stderr, "Dockerfile:2") || !strings.Contains(r.stderr, "nothere") {
			t.Errorf("a COPY --from of an image that is not here: want a failure naming line 2 and the image\n%v", r)
		}
		d.nothingNew(t, before, true, true)
	})
}
