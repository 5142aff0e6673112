package daemon_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"berth/test/berthtest"
)

// TestImages: docker commit (-c, -m, -a) and running what it made, save and load, import,
// tag, rmi (untag or delete, refused while in use), history, images with filters, image
// prune, container prune and system df.
func TestImages(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})
	busyboxID := d.inspect(image, "{{.Id}}")

	t.Run("Commit", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("cm", "cm-run")
		c.must("run", "--name", "cm", image, "sh", "-c", "echo committed > /hello")
		id := c.must("commit", "-c", `CMD ["cat", "/hello"]`, "-c", "ENV FROM_COMMIT=yes", "-c", "LABEL stage=commit", "-m", "a message", "-a", "A. Author <a@example.com>", "cm", "committed:v1")
		if !strings.HasPrefix(id, "sha256:") {
			t.Fatalf("commit's output = %q, want an image ID", id)
		}
		t.Cleanup(func() { d.d.Docker("rmi", "-f", "committed:v1") })
		want(t, "the image's ID", c.inspect("committed:v1", "{{.Id}}"), id)
		want(t, "Author and Comment", c.inspect("committed:v1", "{{.Author}}|{{.Comment}}"), "A. Author <a@example.com>|a message")
		want(t, "Config.Cmd", c.inspect("committed:v1", "{{json .Config.Cmd}}"), `["cat","/hello"]`)
		contains(t, "Config.Env", c.inspect("committed:v1", "{{json .Config.Env}}"), "FROM_COMMIT=yes")
		want(t, "Config.Labels", c.inspect("committed:v1", `{{index .Config.Labels "stage"}}`), "commit")
		want(t, "layers", c.inspect("committed:v1", "{{len .RootFS.Layers}}"), "2")
		want(t, "running the committed image", c.must("run", "--name", "cm-run", "committed:v1"), "committed")
		want(t, "its environment", c.must("run", "--rm", "--entrypoint", "", "committed:v1", "sh", "-c", "echo $FROM_COMMIT"), "yes")
		// history: newest first, with the message.
		hist := fields(c.must("history", "--format", "{{.ID}}|{{.Comment}}", "--no-trunc", "committed:v1"))
		if len(hist) != 2 || !strings.HasPrefix(hist[0], id+"|a message") {
			t.Errorf("history = %q, want the commit (%s, with its message) on top of the base", hist, id)
		}
		contains(t, "history's table", c.must("history", "committed:v1"), "CREATED BY")
		// Committing a running container pauses it and keeps it running.
		c.must("start", "cm-run")
		c.rmOnCleanup("cm-live")
		c.must("run", "-d", "--name", "cm-live", "--health-cmd", "test -e /live", "--health-interval", "1h", image, "sh", "-c", "echo live > /live; sleep 100000")
		c.waitFor("the live file", func() bool { _, code := c.quiet("exec", "cm-live", "test", "-e", "/live"); return code == 0 })
		c.must("commit", "cm-live", "committed:live")
		t.Cleanup(func() { d.d.Docker("rmi", "-f", "committed:live") })
		want(t, "status after a commit", c.status("cm-live"), "running")
		want(t, "the live commit", c.must("run", "--rm", "committed:live", "cat", "/live"), "live")
		// The container's healthcheck goes into the image, and from there into new containers.
		want(t, "the committed healthcheck", c.inspect("committed:live", "{{json .Config.Healthcheck.Test}}"), `["CMD-SHELL","test -e /live"]`)
		c.rmOnCleanup("cm-health")
		c.must("create", "--name", "cm-health", "committed:live")
		want(t, "a new container's healthcheck", c.must("inspect", "-f", "{{json .Config.Healthcheck.Test}}", "cm-health"), `["CMD-SHELL","test -e /live"]`)
		// An untagged commit is dangling.
		dangling := c.must("commit", "cm")
		want(t, "a dangling image's repo:tag", c.must("images", "--filter", "dangling=true", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}", "--no-trunc"), dangling+" <none>:<none>")
		c.must("rmi", dangling)
		c.fails(1, "No such container", "commit", "nosuch", "x:1")
	})

	t.Run("SaveLoad", func(t *testing.T) {
		c := d.on(t)
		dir := workDir(t)
		c.rmOnCleanup("sl")
		c.must("run", "--name", "sl", image, "sh", "-c", "echo saved > /saved")
		id := c.must("commit", "-c", `CMD ["cat", "/saved"]`, "sl", "saved:1")
		c.must("rm", "sl")
		c.must("save", "-o", dir+"/saved.tar", "saved:1")
		names := tarNames(t, readFile(t, dir+"/saved.tar"))
		if !slices.Contains(names, "manifest.json") || !slices.Contains(names, "index.json") {
			t.Errorf("the saved archive has neither manifest.json nor index.json: %v", names)
		}
		out := c.must("rmi", "saved:1")
		contains(t, "rmi", out, "Untagged: saved:1")
		contains(t, "rmi", out, "Deleted: "+id)
		c.fails(1, "No such image", "image", "inspect", "saved:1")
		contains(t, "load", c.must("load", "-i", dir+"/saved.tar"), "Loaded image: saved:1")
		want(t, "the loaded image's ID", c.inspect("saved:1", "{{.Id}}"), id)
		want(t, "running the loaded image", c.must("run", "--rm", "saved:1"), "saved")
		// Through a pipe, and loading an image that is already there.
		out, _, code := c.run("save", "saved:1")
		want(t, "save to stdout's exit code", code, 0)
		c.must("rmi", "saved:1")
		got, errOut, code := c.runIn(out, "load")
		want(t, "load from stdin's exit code ("+errOut+")", code, 0)
		contains(t, "load from stdin", got, "Loaded image: saved:1")
		contains(t, "loading it again", c.must("load", "-i", dir+"/saved.tar"), "saved:1")
		c.must("rmi", "saved:1")
		c.fails(1, "No such image", "save", "-o", dir+"/x.tar", "nosuch:1")
		if err := os.WriteFile(dir+"/bad.tar", []byte("not a tar"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.fails(1, "", "load", "-i", dir+"/bad.tar")
	})

	t.Run("Import", func(t *testing.T) {
		c := d.on(t)
		dir := workDir(t)
		c.rmOnCleanup("im")
		c.must("run", "--name", "im", image, "sh", "-c", "echo imported > /imported")
		c.must("export", "-o", dir+"/fs.tar", "im")
		id := c.must("import", "-c", `CMD ["cat", "/imported"]`, "-c", "ENV IMPORTED=1", "-m", "from a tarball", dir+"/fs.tar", "imported:1")
		t.Cleanup(func() { d.d.Docker("rmi", "-f", "imported:1") })
		want(t, "import's output", strings.HasPrefix(id, "sha256:"), true)
		want(t, "running the imported image", c.must("run", "--rm", "imported:1"), "imported")
		want(t, "one layer", c.inspect("imported:1", "{{len .RootFS.Layers}}"), "1")
		want(t, "the message", c.must("history", "--format", "{{.Comment}}", "imported:1"), "from a tarball")
		contains(t, "Env", c.inspect("imported:1", "{{json .Config.Env}}"), "IMPORTED=1")
		// From stdin.
		_, _, code := c.runIn(readFile(t, dir+"/fs.tar"), "import", "-", "imported:2")
		want(t, "import - exit code", code, 0)
		t.Cleanup(func() { d.d.Docker("rmi", "-f", "imported:2") })
		want(t, "the same content, the same layer", c.inspect("imported:2", "{{index .RootFS.Layers 0}}"), c.inspect("imported:1", "{{index .RootFS.Layers 0}}"))
		c.fails(1, "", "import", dir+"/nosuch.tar")
	})

	t.Run("TagRmi", func(t *testing.T) {
		c := d.on(t)
		c.must("tag", image, "tagged:1")
		c.must("tag", "tagged:1", "example.com/team/tagged:2")
		want(t, "tags share the ID", c.inspect("example.com/team/tagged:2", "{{.Id}}"), busyboxID)
		tags := c.inspect(image, "{{json .RepoTags}}")
		for _, tag := range []string{"busybox:latest", "tagged:1", "example.com/team/tagged:2"} {
			contains(t, "RepoTags", tags, tag)
		}
		// rmi of one name only untags.
		want(t, "rmi of a tag", c.must("rmi", "tagged:1"), "Untagged: tagged:1")
		want(t, "the image is still there", c.inspect(image, "{{.Id}}"), busyboxID)
		want(t, "rmi of another tag", c.must("rmi", "example.com/team/tagged:2"), "Untagged: example.com/team/tagged:2")
		c.fails(1, "No such image", "rmi", "tagged:1")
		c.fails(1, "", "tag", image, "Bad:Tag:Name")
		c.fails(1, "No such image", "tag", "nosuch:1", "x:1")

		// An image used by a container cannot be deleted (409) until it is forced.
		c.rmOnCleanup("user")
		c.must("run", "--name", "src", image, "true")
		c.must("commit", "src", "inuse:1")
		c.must("rm", "src")
		inuse := c.inspect("inuse:1", "{{.Id}}")
		c.must("run", "-d", "--name", "user", "inuse:1", "sleep", "100000")
		errOut := c.fails(1, "conflict: unable to delete", "rmi", "inuse:1")
		contains(t, "the conflict", errOut, "running container")
		c.fails(1, "conflict", "rmi", inuse)
		want(t, "the image after refusals", c.inspect("inuse:1", "{{.Id}}"), inuse)
		c.must("stop", "-t", "0", "user")
		contains(t, "the conflict with a stopped user", c.fails(1, "conflict: unable to delete", "rmi", "inuse:1"), "stopped container")
		// A second tag can go: it only untags.
		c.must("tag", "inuse:1", "inuse:2")
		want(t, "untag while in use", c.must("rmi", "inuse:2"), "Untagged: inuse:2")
		c.must("rm", "user")
		out := c.must("rmi", "inuse:1")
		contains(t, "rmi once unused", out, "Deleted: "+inuse)
		c.fails(1, "No such image", "image", "inspect", inuse)
	})

	t.Run("ImagesFilters", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("f1", "f2")
		c.must("run", "--name", "f1", image, "true")
		c.must("commit", "-c", "LABEL kind=a", "f1", "filter-a:1")
		c.must("run", "--name", "f2", "filter-a:1", "true")
		c.must("commit", "-c", "LABEL kind=b", "f2", "filter-b:1")
		t.Cleanup(func() { d.d.Docker("rm", "-f", "f1", "f2"); d.d.Docker("rmi", "filter-a:1", "filter-b:1") })
		list := func(args ...string) string {
			got := fields(c.must(append([]string{"images", "--format", "{{.Repository}}:{{.Tag}}"}, args...)...))
			slices.Sort(got)
			return strings.Join(got, ",")
		}
		want(t, "reference=filter-*", list("--filter", "reference=filter-*"), "filter-a:1,filter-b:1")
		want(t, "a repository argument", list("filter-a"), "filter-a:1")
		want(t, "label=kind", list("--filter", "label=kind"), "filter-a:1,filter-b:1")
		want(t, "label=kind=b", list("--filter", "label=kind=b"), "filter-b:1")
		want(t, "since=filter-a:1", list("--filter", "since=filter-a:1"), "filter-b:1")
		want(t, "before=filter-b:1 and reference", list("--filter", "before=filter-b:1", "--filter", "reference=filter-*"), "filter-a:1")
		want(t, "dangling=true", list("--filter", "dangling=true"), "")
		contains(t, "-q", c.must("images", "-q", "--no-trunc"), busyboxID)
		contains(t, "the table", c.must("images"), "REPOSITORY")
		c.fails(1, "invalid filter", "images", "--filter", "bogus=1")
	})

	t.Run("Prune", func(t *testing.T) {
		c := d.on(t)
		// container prune: stopped ones (with the filter's label) go, running ones stay.
		c.must("run", "--name", "pr-a", "--label", "prune=yes", image, "true")
		c.must("run", "--name", "pr-b", "--label", "prune=no", image, "true")
		c.must("run", "-d", "--name", "pr-run", "--label", "prune=yes", image, "sleep", "100000")
		c.rmOnCleanup("pr-a", "pr-b", "pr-run")
		out := c.must("container", "prune", "-f", "--filter", "label=prune=yes")
		contains(t, "container prune", out, "Deleted Containers:")
		c.fails(1, "No such container", "container", "inspect", "pr-a")
		want(t, "a stopped container outside the filter", c.status("pr-b"), "exited")
		want(t, "a running container", c.status("pr-run"), "running")

		// image prune: dangling images go; -a also unused tagged ones, never used ones.
		c.must("run", "--name", "pr-src", image, "sh", "-c", "echo x > /x")
		c.rmOnCleanup("pr-src")
		dangling := c.must("commit", "pr-src")
		c.must("commit", "pr-src", "unused:1")
		out = c.must("image", "prune", "-f")
		contains(t, "image prune", out, "deleted: "+dangling)
		c.fails(1, "No such image", "image", "inspect", dangling)
		c.must("image", "inspect", "unused:1")
		c.must("image", "prune", "-a", "-f")
		c.fails(1, "No such image", "image", "inspect", "unused:1")
		// busybox is used by containers: it stays.
		want(t, "an image in use after prune -a", c.inspect(image, "{{.Id}}"), busyboxID)
	})

	t.Run("SystemDf", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("df-run")
		c.must("run", "-d", "--name", "df-run", "-v", "dfvol:/v", image, "sh", "-c", "head -c 100000 /dev/zero > /blob; sleep 100000")
		t.Cleanup(func() { d.d.Docker("rm", "-f", "df-run"); d.d.Docker("volume", "rm", "dfvol") })
		out := c.must("system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}")
		byType := map[string]string{}
		for _, l := range fields(out) {
			typ, rest, _ := strings.Cut(l, "|")
			byType[typ] = rest
		}
		images, _ := c.quiet("images", "-q")
		containers, _ := c.quiet("ps", "-aq")
		running, _ := c.quiet("ps", "-q")
		want(t, "df's images", byType["Images"], strconv.Itoa(len(fields(images)))+"|1")
		want(t, "df's containers", byType["Containers"], strconv.Itoa(len(fields(containers)))+"|"+strconv.Itoa(len(fields(running))))
		want(t, "df's volumes", byType["Local Volumes"], "1|1")
		verbose := c.must("system", "df", "-v")
		contains(t, "df -v", verbose, "df-run")
		contains(t, "df -v", verbose, "dfvol")
	})
}
