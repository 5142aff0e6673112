package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth/test/berthtest"
)

// TestBadInput (acceptance 5): a name conflict, a missing image, invalid flag values, a bind
// source that does not exist: docker's messages and exit codes, and nothing half-made left
// (no container in ps -a, no container directory in the data root).
func TestBadInput(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})
	// nothingLeft checks that only the containers named exist, in ps -a and on disk.
	nothingLeft := func(c *cli, names ...string) {
		c.t.Helper()
		got := c.ps("-a", "--format", "{{.Names}}")
		if strings.Join(sorted(got...), ",") != strings.Join(sorted(names...), ",") {
			c.t.Errorf("containers after a refused create: %q, want %q", got, names)
		}
		dirs, err := containerDirs(c.d)
		if err != nil {
			c.t.Fatal(err)
		}
		if len(dirs) != len(names) {
			c.t.Errorf("container directories: %q, want %d", dirs, len(names))
		}
	}

	t.Run("NameConflict", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("dup")
		id := c.must("create", "--name", "dup", image, "true")
		msg := `Conflict. The container name "/dup" is already in use by container "` + id + `". You have to remove (or rename) that container to be able to reuse that name.`
		c.fails(125, "docker: Error response from daemon: "+msg, "run", "--name", "dup", image, "true")
		c.fails(1, "Error response from daemon: "+msg, "create", "--name", "dup", image, "true")
		nothingLeft(c, "dup")
		c.fails(125, "Invalid container name (bad name!)", "run", "--name", "bad name!", image, "true")
		nothingLeft(c, "dup")
	})

	t.Run("MissingImage", func(t *testing.T) {
		c := d.on(t)
		// run: the create's 404 makes the CLI pull, which fails.
		errOut := c.fails(125, "Unable to find image 'nosuch:latest' locally", "run", "--name", "mi", "nosuch")
		contains(t, "run's stderr", errOut, "docker: Error response from daemon:")
		c.fails(1, "No such image: nosuch", "create", "--pull", "never", "--name", "mi", "nosuch")
		c.fails(125, "No such image: nosuch", "run", "--pull", "never", "--name", "mi", "nosuch:1.0")
		c.fails(1, "No such image", "image", "inspect", "nosuch")
		c.fails(1, "No such image", "rmi", "nosuch")
		c.fails(1, "No such image", "history", "nosuch")
		nothingLeft(c)
		c.fails(1, "No such container: nosuch", "start", "nosuch")
		c.fails(1, "No such container: nosuch", "stop", "nosuch")
		c.fails(1, "No such container: nosuch", "rm", "nosuch")
		c.fails(1, "No such container: nosuch", "logs", "nosuch")
		c.fails(1, "No such container: nosuch", "kill", "nosuch")
		c.fails(1, "No such container: nosuch", "pause", "nosuch")
		c.fails(1, "No such container: nosuch", "rename", "nosuch", "x")
		c.fails(1, "No such container: nosuch", "update", "--memory", "64m", "nosuch")
		c.fails(1, "No such container: nosuch", "top", "nosuch")
	})

	t.Run("InvalidValues", func(t *testing.T) {
		c := d.on(t)
		for _, tc := range []struct {
			name string
			code int
			msg  string
			args []string
		}{
			{"memory too small", 125, "Minimum memory limit allowed is 6MB", []string{"--memory", "1k"}},
			{"memory-swap below memory", 125, "Minimum memoryswap limit should be larger than memory limit", []string{"--memory", "64m", "--memory-swap", "32m"}},
			{"too many cpus", 125, "Range of CPUs is from 0.01 to", []string{"--cpus", "99"}},
			{"cpuset out of range", 125, "", []string{"--cpuset-cpus", "99"}},
			{"bad restart policy", 125, "invalid restart policy", []string{"--restart", "bogus"}},
			{"bad on-failure count", 125, "maximum retry count", []string{"--restart", "on-failure:x"}},
			{"negative on-failure count", 125, "", []string{"--restart", "on-failure:-1"}},
			{"max retries with always", 125, "", []string{"--restart", "always:3"}},
			{"bad ulimit value", 125, "invalid argument", []string{"--ulimit", "nofile=abc"}},
			{"bad ulimit name", 125, "invalid ulimit type", []string{"--ulimit", "bogus=1"}},
			{"ulimit soft above hard", 125, "", []string{"--ulimit", "nofile=2048:1024"}},
			{"bad stop signal", 125, "Invalid signal: BOGUS", []string{"--stop-signal", "BOGUS"}},
			{"missing bind source", 125, "bind source path does not exist: /nonexistent/berth-src", []string{"--mount", "type=bind,source=/nonexistent/berth-src,target=/x"}},
			{"relative bind source", 125, "", []string{"--mount", "type=bind,source=relative,target=/x"}},
			{"relative mount target", 125, "", []string{"-v", "/tmp:relative"}},
			{"mount on /", 125, "", []string{"-v", "/tmp:/"}},
			{"duplicate mount point", 125, "Duplicate mount point", []string{"-v", "/tmp:/x", "-v", "/var:/x"}},
			{"bad volume name", 125, "", []string{"-v", "bad*name:/x"}},
			{"unknown mount type", 125, "", []string{"--mount", "type=bogus,target=/x"}},
			{"bad log driver", 125, "", []string{"--log-driver", "bogus"}},
			{"bad log option", 125, "", []string{"--log-opt", "max-size=abc"}},
			{"bad pid mode", 125, "", []string{"--pid", "container:nosuch"}},
			{"bad network container", 125, "", []string{"--network", "container:nosuch"}},
			{"bad sysctl", 125, "", []string{"--sysctl", "kernel.bogus=1"}},
			{"bad capability", 125, "", []string{"--cap-add", "NOSUCHCAP"}},
			// The CLI gives 127 when the message says "no such file or directory".
			{"bad device", 127, "/dev/nosuchdevice", []string{"--device", "/dev/nosuchdevice"}},
			{"negative shm-size", 125, "", []string{"--shm-size", "-1"}},
			{"bad health interval", 125, "", []string{"--health-cmd", "true", "--health-interval", "500us"}},
			{"bad user", 125, "", []string{"-u", "nosuchuser"}},
		} {
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				c := d.on(t)
				args := append(append([]string{"run", "--name", "bad"}, tc.args...), image, "true")
				c.fails(tc.code, tc.msg, args...)
				// A start that fails leaves the created container (as dockerd does), never a
				// half-made one.
				if st := c.status("bad"); st != "" && st != "created" {
					t.Errorf("after %v: the container is %q", tc.args, st)
				}
				c.d.Docker("rm", "-f", "bad")
				nothingLeft(c)
			})
		}
		// docker kill and stop with a bad signal.
		c.rmOnCleanup("sig")
		c.must("run", "-d", "--name", "sig", image, "sleep", "100000")
		c.fails(1, "Invalid signal: BOGUS", "kill", "-s", "BOGUS", "sig")
		c.fails(1, "", "kill", "-s", "99", "sig")
		c.fails(1, "", "stop", "-s", "BOGUS", "sig")
		want(t, "status after bad signals", c.status("sig"), "running")
		c.fails(1, "Minimum memory limit allowed is 6MB", "update", "--memory", "1k", "sig")
		c.fails(1, "invalid restart policy", "update", "--restart", "bogus", "sig")
		c.fails(1, "", "pause", "nosuch")
	})
}

// TestDiskFull (acceptance 5): on a data root that is full, or nearly (the disk runs out at
// different steps), create and commit fail with a clear message and leave nothing
// half-made; once there is room again they work.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	c := newDaemon(t, berthtest.Options{DataRootSize: 32 << 20})
	c.must("run", "--name", "src", image, "sh", "-c", "head -c 300000 /dev/urandom > /blob")
	images := c.must("images", "-aq", "--no-trunc")
	free := func() int64 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(c.d.DataRoot, &st); err != nil {
			t.Fatal(err)
		}
		return int64(st.Bavail) * st.Bsize
	}
	// Fill the data root to the last page.
	filler := filepath.Join(c.d.DataRoot, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for _, n := range []int{1 << 20, 4096} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	f.Close()
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	full := fi.Size()
	// leave makes room bytes free (about: the filler shrinks by that much).
	leave := func(room int64) {
		if err := os.Truncate(filler, full-room); err != nil {
			t.Fatal(err)
		}
	}
	// untouched checks that a failed operation left nothing: no container but src, no
	// container directory, no new image, and no space kept.
	untouched := func(what string, before int64) {
		t.Helper()
		if got := c.ps("-a", "--format", "{{.Names}}"); strings.Join(got, ",") != "src" {
			t.Errorf("%s: containers %q, want only src", what, got)
		}
		if dirs, _ := containerDirs(c.d); len(dirs) != 1 {
			t.Errorf("%s: container directories %q, want 1", what, dirs)
		}
		if got := c.must("images", "-aq", "--no-trunc"); got != images {
			t.Errorf("%s: images %q, want %q", what, got, images)
		}
		if after := free(); after < before {
			t.Errorf("%s: %d bytes of the disk were kept", what, before-after)
		}
	}

	c.fails(125, "no space left on device", "run", "--name", "full", image, "true")
	c.fails(1, "no space left on device", "create", "--name", "full", image, "true")
	untouched("create on a full disk", 0)
	c.fails(1, "no space left on device", "commit", "src", "full:1")
	untouched("commit on a full disk", 0)

	// Nearly full: the disk runs out further along each time.
	created, committed := false, false
	for room := int64(4096); room <= 1<<20 && !(created && committed); room *= 2 {
		leave(room)
		before := free()
		if !created {
			out, errOut, code := c.run("create", "--name", "full", image, "true")
			switch {
			case code == 0:
				created = true
				c.must("rm", "full")
			case !strings.Contains(errOut, "no space left on device"):
				t.Errorf("create with %d bytes free: exit %d, %q %q, want no space left on device", before, code, out, errOut)
			default:
				t.Logf("create with %d bytes free: %s", before, strings.TrimSpace(errOut))
				untouched(fmt.Sprintf("create with %d bytes free", before), before)
			}
		}
		if !committed {
			out, errOut, code := c.run("commit", "src", "full:1")
			switch {
			case code == 0:
				committed = true
				c.must("rmi", "full:1")
			case !strings.Contains(errOut, "no space left on device"):
				t.Errorf("commit with %d bytes free: exit %d, %q %q, want no space left on device", before, code, out, errOut)
			default:
				t.Logf("commit with %d bytes free: %s", before, strings.TrimSpace(errOut))
				untouched(fmt.Sprintf("commit with %d bytes free", before), before)
			}
		}
	}

	// Room again: both work.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.must("commit", "src", "full:1")
	want(t, "running the commit", c.must("run", "--rm", "full:1", "sh", "-c", "wc -c < /blob"), "300000")
	c.must("create", "--name", "full", image, "true")
}

// containerDirs are the daemon's container directories, without those of removed
// containers whose files it is still deleting (.removing-<id>).
func containerDirs(d *berthtest.Daemon) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(d.DataRoot, "containers"))
	var dirs []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".removing-") {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs, err
}
