package daemon_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"berth/test/berthtest"
)

// TestVolumes: docker volume create/ls/inspect/rm/prune, named volumes that keep data
// across containers, anonymous volumes removed by rm -v and --rm, the image's VOLUME copied
// up into new volumes, and bind mounts.
func TestVolumes(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})
	volumes := func(c *cli, args ...string) string {
		got := fields(c.must(append([]string{"volume", "ls", "-q"}, args...)...))
		slices.Sort(got)
		return strings.Join(got, ",")
	}

	t.Run("CreateLsInspectRm", func(t *testing.T) {
		c := d.on(t)
		want(t, "volume create's output", c.must("volume", "create", "--label", "team=a", "v1"), "v1")
		c.must("volume", "create", "v2")
		anon := c.must("volume", "create")
		if len(anon) != 64 {
			t.Errorf("volume create without a name = %q, want a generated name", anon)
		}
		want(t, "volume ls", volumes(c), strings.Join(sorted("v1", "v2", anon), ","))
		want(t, "volume ls --filter label=team=a", volumes(c, "--filter", "label=team=a"), "v1")
		want(t, "volume ls --filter name=v", volumes(c, "--filter", "name=v"), "v1,v2")
		var vols []struct {
			Name, Driver, Mountpoint, Scope string
			Labels                          map[string]string
		}
		if err := json.Unmarshal([]byte(c.must("volume", "inspect", "v1", "v2")), &vols); err != nil {
			t.Fatal(err)
		}
		if len(vols) != 2 || vols[0].Name != "v1" || vols[0].Driver != "local" || vols[0].Scope != "local" || vols[0].Labels["team"] != "a" {
			t.Errorf("volume inspect = %+v", vols)
		}
		if fi, err := os.Stat(vols[0].Mountpoint); err != nil || !fi.IsDir() || !strings.HasPrefix(vols[0].Mountpoint, c.d.DataRoot) {
			t.Errorf("Mountpoint %s: %v (want a directory under the data root)", vols[0].Mountpoint, err)
		}
		c.fails(1, "", "volume", "inspect", "nosuch")
		c.fails(1, "", "volume", "create", "bad/name")
		// In use: refused until the container is gone.
		c.rmOnCleanup("vuser")
		c.must("create", "--name", "vuser", "-v", "v1:/data", image, "true")
		c.fails(1, "volume is in use", "volume", "rm", "v1")
		want(t, "volume ls --filter dangling=false", volumes(c, "--filter", "dangling=false"), "v1")
		c.must("rm", "vuser")
		want(t, "volume rm's output", c.must("volume", "rm", "v1", "v2", anon), "v1\nv2\n"+anon)
		want(t, "volume ls after rm", volumes(c), "")
		c.fails(1, "", "volume", "rm", "v1")
	})

	t.Run("NamedKeepsData", func(t *testing.T) {
		c := d.on(t)
		t.Cleanup(func() { d.d.Docker("volume", "rm", "-f", "keep") })
		c.must("run", "--rm", "-v", "keep:/data", image, "sh", "-c", "echo kept > /data/f")
		want(t, "the volume made by run", volumes(c, "--filter", "name=keep"), "keep")
		want(t, "read by a second container", c.must("run", "--rm", "-v", "keep:/d", image, "cat", "/d/f"), "kept")
		want(t, "read through --mount", c.must("run", "--rm", "--mount", "type=volume,source=keep,target=/m,readonly", image, "sh", "-c", "cat /m/f; touch /m/x 2>&1 || true"), "kept\ntouch: /m/x: Read-only file system")
		want(t, "read-only -v", c.must("run", "--rm", "-v", "keep:/d:ro", image, "sh", "-c", "touch /d/x 2>&1 || true"), "touch: /d/x: Read-only file system")
		// Two containers share it live.
		c.rmOnCleanup("sh1")
		c.must("run", "-d", "--name", "sh1", "-v", "keep:/data", image, "sleep", "100000")
		c.must("run", "--rm", "-v", "keep:/data", image, "sh", "-c", "echo shared > /data/s")
		want(t, "seen by the running one", c.must("exec", "sh1", "cat", "/data/s"), "shared")
	})

	t.Run("Anonymous", func(t *testing.T) {
		c := d.on(t)
		before := volumes(c)
		// rm without -v keeps the anonymous volume; rm -v removes it.
		c.must("run", "--name", "an1", "-v", "/anon", image, "true")
		v1 := c.inspect("an1", "{{(index .Mounts 0).Name}}")
		c.must("rm", "an1")
		contains(t, "volumes after rm", volumes(c), v1)
		c.must("run", "--name", "an2", "-v", "/anon", image, "true")
		v2 := c.inspect("an2", "{{(index .Mounts 0).Name}}")
		c.must("rm", "-v", "an2")
		if strings.Contains(volumes(c), v2) {
			t.Errorf("rm -v left the anonymous volume %s", v2)
		}
		// --rm removes them with the container; a named volume stays.
		c.must("run", "--rm", "-v", "/anon", "-v", "named-rm:/named", image, "true")
		t.Cleanup(func() { d.d.Docker("volume", "rm", "-f", "named-rm") })
		want(t, "volumes after run --rm", volumes(c), strings.Join(sorted(append(strings.Split(before, ","), v1, "named-rm")...), ","))
		// -d --rm: removed when it stops.
		c.must("run", "-d", "--rm", "--name", "an3", "-v", "/anon", image, "sleep", "100000")
		v3 := c.inspect("an3", "{{(index .Mounts 0).Name}}")
		c.must("stop", "-t", "0", "an3")
		c.waitFor("an3's removal", func() bool { _, code := c.quiet("container", "inspect", "an3"); return code != 0 })
		if strings.Contains(volumes(c), v3) {
			t.Errorf("the auto-removed container left its anonymous volume %s", v3)
		}
		// prune removes unused anonymous volumes only; -a also named ones.
		c.must("volume", "create", "unused-named")
		out := c.must("volume", "prune", "-f")
		contains(t, "volume prune", out, v1)
		got := volumes(c)
		if strings.Contains(got, v1) || !strings.Contains(got, "unused-named") {
			t.Errorf("volumes after prune = %s", got)
		}
		c.must("volume", "prune", "-a", "-f")
		want(t, "volumes after prune -a", volumes(c), "")
	})

	t.Run("CopyUp", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("cu-src")
		c.must("run", "--name", "cu-src", image, "sh", "-c", "mkdir -p /data/sub && echo seed > /data/seed && echo deep > /data/sub/deep && chown -R nobody /data")
		c.must("commit", "-c", `VOLUME ["/data"]`, "cu-src", "withvolume:1")
		t.Cleanup(func() { d.d.Docker("rmi", "-f", "withvolume:1") })
		want(t, "the image's Volumes", c.inspect("withvolume:1", "{{json .Config.Volumes}}"), `{"/data":{}}`)
		// An anonymous volume for the image's VOLUME, filled from the image.
		c.rmOnCleanup("cu1")
		want(t, "copy-up into an anonymous volume", c.must("run", "--name", "cu1", "withvolume:1", "sh", "-c", "cat /data/seed /data/sub/deep; stat -c %U /data/seed"), "seed\ndeep\nnobody")
		want(t, "its mount", c.inspect("cu1", "{{(index .Mounts 0).Type}} {{(index .Mounts 0).Destination}}"), "volume /data")
		// A new named volume is filled too; a volume with content is not touched.
		t.Cleanup(func() { d.d.Docker("volume", "rm", "-f", "cu-named", "cu-nocopy") })
		want(t, "copy-up into a new named volume", c.must("run", "--rm", "-v", "cu-named:/data", "withvolume:1", "sh", "-c", "cat /data/seed; echo mine > /data/seed"), "seed")
		want(t, "a named volume keeps its content", c.must("run", "--rm", "-v", "cu-named:/data", "withvolume:1", "cat", "/data/seed"), "mine")
		want(t, "nocopy", c.must("run", "--rm", "-v", "cu-nocopy:/data:nocopy", "withvolume:1", "ls", "/data"), "")
		// A volume at a path the image does not have: empty.
		want(t, "a new path", c.must("run", "--rm", "-v", "/elsewhere", image, "ls", "-A", "/elsewhere"), "")
	})

	t.Run("Binds", func(t *testing.T) {
		c := d.on(t)
		dir := workDir(t)
		writeFile(t, dir+"/in", "from host\n")
		want(t, "a bind mount", c.must("run", "--rm", "-v", dir+":/h", image, "sh", "-c", "cat /h/in; echo back > /h/out"), "from host")
		want(t, "written through the bind", readFile(t, dir+"/out"), "back\n")
		want(t, "a read-only bind", c.must("run", "--rm", "-v", dir+":/h:ro", image, "sh", "-c", "touch /h/x 2>&1 || true"), "touch: /h/x: Read-only file system")
		want(t, "--mount type=bind", c.must("run", "--rm", "--mount", "type=bind,source="+dir+"/in,target=/file", image, "cat", "/file"), "from host")
		// -v creates a missing host directory (dockerd does); --mount does not.
		c.must("run", "--rm", "-v", dir+"/created:/c", image, "true")
		if fi, err := os.Stat(dir + "/created"); err != nil || !fi.IsDir() {
			t.Errorf("-v did not create the missing host directory: %v", err)
		}
		want(t, "--tmpfs", c.must("run", "--rm", "--tmpfs", "/t:size=1m", image, "sh", "-c", "grep ' /t ' /proc/mounts | cut -d' ' -f3"), "tmpfs")
		want(t, "--mount type=tmpfs", c.must("run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=1048576", image, "sh", "-c", "df -k /t | tail -1 | awk '{print $2}'"), "1024")
	})
}

func sorted(s ...string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}
