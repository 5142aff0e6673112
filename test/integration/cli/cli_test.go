package cli_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var (
	fullID  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	shortID = regexp.MustCompile(`^[0-9a-f]{12}$`)
)

// runArgs is `run <flags> --network none baseImage cmd...`: no test needs a network.
func runArgs(flags []string, cmd ...string) []string {
	args := append([]string{"run", "--network", "none"}, flags...)
	return append(append(args, baseImage), cmd...)
}

// waitFor polls cond until it holds (true) or the deadline passes (false).
func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRunForeground: run prints the container's output on the right streams, feeds -i
// stdin, exits with the container's exit code (127 for a missing command, 125 for a
// daemon error) and --rm removes the container.
func TestRunForeground(t *testing.T) {
	d := berthd(t)
	r := d.berth(t, runArgs([]string{"--rm"}, "echo", "hello from berth")...)
	if wantCode(t, "run echo", r, 0) && r.stdout != "hello from berth\n" {
		t.Errorf("run echo: stdout %q", r.stdout)
	}
	r = d.berth(t, runArgs([]string{"--rm"}, "sh", "-c", "echo out; echo err >&2; exit 42")...)
	if wantCode(t, "run exit 42", r, 42) && (r.stdout != "out\n" || !strings.Contains(r.stderr, "err")) {
		t.Errorf("run: stdout %q stderr %q, want out on stdout and err on stderr", r.stdout, r.stderr)
	}
	r = d.berthIn(t, strings.NewReader("line through stdin\n"), runArgs([]string{"--rm", "-i"}, "cat")...)
	if wantCode(t, "run -i cat", r, 0) && r.stdout != "line through stdin\n" {
		t.Errorf("run -i cat: stdout %q", r.stdout)
	}
	// stderr starts with the daemon's error, or with --rm with what the wait for the removal
	// says first ("error waiting for container: ..."), as docker's does.
	r = d.berth(t, runArgs([]string{"--rm"}, "/no/such/command")...)
	if wantCode(t, "run of a missing command", r, 127) && !regexp.MustCompile(`(?s)^(error waiting for container: [^\n]*\n)?berth: Error response from daemon: [^\n]*/no/such/command`).MatchString(r.stderr) {
		t.Errorf("run of a missing command: stderr %q", r.stderr)
	}
	r = d.berth(t, "run", "--pull", "never", "--network", "none", "berth-cli/missing:latest", "true")
	if wantCode(t, "run --pull never of a missing image", r, 125) && !strings.Contains(r.stderr, "No such image") {
		t.Errorf("run of a missing image: stderr %q", r.stderr)
	}
	if left := strings.TrimSpace(d.ok(t, "ps", "-aq")); left != "" {
		t.Errorf("containers left after run --rm: %q", left)
	}
}

// TestRunDetachedLogsStopRm: run -d prints the ID, logs shows the output (also --tail and
// -t), stop's SIGTERM reaches the container, rm removes it.
func TestRunDetachedLogsStopRm(t *testing.T) {
	d := berthd(t)
	r := d.berth(t, runArgs([]string{"-d", "--name", "web"}, "sh", "-c", `trap "echo got TERM; exit 7" TERM; echo started; while :; do sleep 0.1; done`)...)
	if !wantCode(t, "run -d", r, 0) {
		t.FailNow()
	}
	if id := strings.TrimSpace(r.stdout); !fullID.MatchString(id) {
		t.Errorf("run -d printed %q, want a container ID", r.stdout)
	}
	if got := strings.TrimSpace(d.ok(t, "inspect", "-f", "{{.State.Status}}", "web")); got != "running" {
		t.Fatalf("after run -d: status %q", got)
	}
	if !waitFor(func() bool { out, _ := d.quiet("logs", "web"); return strings.Contains(out, "started") }) {
		t.Fatalf("logs never showed the container's output")
	}
	if r := d.berth(t, "stop", "-t", "20", "web"); wantCode(t, "stop", r, 0) && r.stdout != "web\n" {
		t.Errorf("stop printed %q, want the name", r.stdout)
	}
	if got := strings.TrimSpace(d.ok(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web")); got != "exited 7" {
		t.Errorf("after stop: %q, want exited 7 (the TERM trap's exit)", got)
	}
	if got := d.ok(t, "logs", "web"); got != "started\ngot TERM\n" {
		t.Errorf("logs: %q", got)
	}
	if got := d.ok(t, "logs", "--tail", "1", "web"); got != "got TERM\n" {
		t.Errorf("logs --tail 1: %q", got)
	}
	ts := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z started$`)
	if got := lines(d.ok(t, "logs", "-t", "web")); len(got) != 2 || !ts.MatchString(got[0]) {
		t.Errorf("logs -t: %q", got)
	}
	if r := d.berth(t, "rm", "web"); wantCode(t, "rm", r, 0) && r.stdout != "web\n" {
		t.Errorf("rm printed %q", r.stdout)
	}
	if r := d.berth(t, "rm", "web"); wantCode(t, "rm of a removed container", r, 1) && !strings.Contains(r.stderr, "No such container: web") {
		t.Errorf("rm of a removed container: stderr %q", r.stderr)
	}
	if left := strings.TrimSpace(d.ok(t, "ps", "-aq")); left != "" {
		t.Errorf("containers left after rm: %q", left)
	}
}

// columnStart is where column name starts in a table's header line.
func columnStart(t *testing.T, header, name string) int {
	t.Helper()
	i := strings.Index(header, name)
	if i < 0 {
		t.Fatalf("header %q has no column %s", header, name)
	}
	return i
}

// TestPsTableAndFormat: ps prints docker's table (headers, aligned columns), -a, -q,
// --no-trunc, --filter, -n, and --format with templates, the table directive and json.
func TestPsTableAndFormat(t *testing.T) {
	d := berthd(t)
	d.ok(t, runArgs([]string{"-d", "--name", "ps-running", "-l", "tier=front"}, "sleep", "300")...)
	d.ok(t, "create", "--network", "none", "--name", "ps-created", baseImage, "true")

	out := lines(d.ok(t, "ps"))
	if len(out) != 2 {
		t.Fatalf("ps: %d lines, want header and one container: %q", len(out), out)
	}
	header := out[0]
	wantHeader := []string{"CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"}
	prev := -1
	for _, h := range wantHeader {
		i := columnStart(t, header, h)
		if i <= prev {
			t.Errorf("ps header %q: %s out of order", header, h)
		}
		prev = i
	}
	if !strings.HasPrefix(header, "CONTAINER ID   IMAGE") {
		t.Errorf("ps header %q: want docker's 3-space padding", header)
	}
	row := out[1]
	if id := strings.Fields(row)[0]; !shortID.MatchString(id) {
		t.Errorf("ps row %q: ID %q is not a short ID", row, id)
	}
	for col, want := range map[string]string{"IMAGE": baseImage, "COMMAND": `"sleep 300"`, "STATUS": "Up ", "NAMES": "ps-running"} {
		if i := columnStart(t, header, col); !strings.HasPrefix(row[i:], want) {
			t.Errorf("ps: column %s of %q is not aligned with its header or is not %q", col, row, want)
		}
	}

	if n := len(lines(d.ok(t, "ps", "-a"))); n != 3 {
		t.Errorf("ps -a: %d lines, want header and two containers", n)
	}
	got := lines(d.ok(t, "ps", "-a", "--format", `{{.Names}}\t{{.State}}`))
	sort.Strings(got)
	if want := []string{"ps-created\tcreated", "ps-running\trunning"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("ps --format: %q, want %q", got, want)
	}
	got = lines(d.ok(t, "ps", "--format", `table {{.Names}}\t{{.Label "tier"}}`))
	if len(got) != 2 || strings.Fields(got[0])[0] != "NAMES" || strings.Fields(got[1])[1] != "front" {
		t.Errorf("ps --format table with a label: %q", got)
	}
	for _, id := range lines(d.ok(t, "ps", "-aq", "--no-trunc")) {
		if !fullID.MatchString(id) {
			t.Errorf("ps -q --no-trunc: %q is not a full ID", id)
		}
	}
	if got := lines(d.ok(t, "ps", "-aq", "--filter", "name=ps-created")); len(got) != 1 || !shortID.MatchString(got[0]) {
		t.Errorf("ps --filter name=: %q", got)
	}
	if got := lines(d.ok(t, "ps", "-n", "1", "--format", "{{.Names}}")); len(got) != 1 || got[0] != "ps-created" {
		t.Errorf("ps -n 1: %q, want the last created", got)
	}
	for _, l := range lines(d.ok(t, "ps", "-a", "--format", "json")) {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Errorf("ps --format json: %q: %v", l, err)
		} else if v["Names"] != "ps-running" && v["Names"] != "ps-created" {
			t.Errorf("ps --format json: Names %v", v["Names"])
		}
	}
}

// TestExec: exec's output, exit code, stdin with -i, user, workdir, environment (also from a
// file), detached execs, and a missing container.
func TestExec(t *testing.T) {
	d := berthd(t)
	d.ok(t, runArgs([]string{"-d", "--name", "ex"}, "sleep", "300")...)
	r := d.berth(t, "exec", "ex", "sh", "-c", "echo exec-out; echo exec-err >&2; exit 3")
	if wantCode(t, "exec exit 3", r, 3) && (r.stdout != "exec-out\n" || !strings.Contains(r.stderr, "exec-err")) {
		t.Errorf("exec: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = d.berthIn(t, strings.NewReader("piped into exec\n"), "exec", "-i", "ex", "cat")
	if wantCode(t, "exec -i cat", r, 0) && r.stdout != "piped into exec\n" {
		t.Errorf("exec -i cat: stdout %q", r.stdout)
	}
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# comment\nFROMFILE=file value\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = d.berth(t, "exec", "-u", "1000:1000", "-w", "/tmp", "-e", "X=y", "--env-file", envFile, "ex",
		"sh", "-c", `echo "$(id -u):$(id -g) $(pwd) $X $FROMFILE"`)
	if wantCode(t, "exec -u -w -e --env-file", r, 0) && r.stdout != "1000:1000 /tmp y file value\n" {
		t.Errorf("exec -u 1000:1000 -w /tmp -e X=y --env-file: stdout %q", r.stdout)
	}
	if r := d.berth(t, "exec", "-d", "ex", "sh", "-c", "echo done > /tmp/flag"); wantCode(t, "exec -d", r, 0) && r.stdout != "" {
		t.Errorf("exec -d printed %q", r.stdout)
	}
	if !waitFor(func() bool { out, _ := d.quiet("exec", "ex", "cat", "/tmp/flag"); return out == "done\n" }) {
		t.Errorf("exec -d: the command never ran")
	}
	if r := d.berth(t, "exec", "berth-cli-missing", "true"); wantCode(t, "exec in a missing container", r, 1) && !strings.Contains(r.stderr, "No such container") {
		t.Errorf("exec in a missing container: stderr %q", r.stderr)
	}
}

// TestInspectFormat: inspect's JSON array (4-space indent), -f on the typed value and on the
// raw JSON (fields the API types lack), --type, and missing objects.
func TestInspectFormat(t *testing.T) {
	d := berthd(t)
	d.ok(t, runArgs([]string{"-d", "--name", "insp", "-l", "k=v", "-e", "A=1"}, "sleep", "300")...)
	for _, c := range []struct{ tmpl, want string }{
		{"{{.State.Status}}", "running"},
		{"{{json .Config.Cmd}}", `["sleep","300"]`},
		{`{{index .Config.Labels "k"}}`, "v"},
		{"{{.Name}} {{.HostConfig.NetworkMode}}", "/insp none"},
		{`{{range .Config.Env}}{{if eq . "A=1"}}found{{end}}{{end}}`, "found"},
		{"{{upper .State.Status}} {{len .ID}}", "RUNNING 64"},
	} {
		if got := strings.TrimSpace(d.ok(t, "inspect", "-f", c.tmpl, "insp")); got != c.want {
			t.Errorf("inspect -f %q: %q, want %q", c.tmpl, got, c.want)
		}
	}
	out := d.ok(t, "inspect", "insp")
	var arr []map[string]any
	if err := json.Unmarshal([]byte(out), &arr); err != nil || len(arr) != 1 || arr[0]["Name"] != "/insp" {
		t.Errorf("inspect: %v %d objects: %.300s", err, len(arr), out)
	}
	if l := lines(out); len(l) < 2 || l[0] != "[" || l[1] != "    {" {
		t.Errorf("inspect: not indented as docker does: %.100q", out)
	}
	// .Id is only in the raw JSON (the API type calls it ID).
	imgID := strings.TrimSpace(d.ok(t, "inspect", "--type", "image", "-f", "{{.Id}}", baseImage))
	if imgID != d.baseID {
		t.Errorf("inspect --type image -f {{.Id}}: %q, want %q", imgID, d.baseID)
	}
	r := d.berth(t, "inspect", "berth-cli-missing")
	if wantCode(t, "inspect of a missing object", r, 1) && (r.stdout != "[]\n" || !strings.Contains(r.stderr, "No such object: berth-cli-missing")) {
		t.Errorf("inspect of a missing object: %v", r)
	}
	r = d.berth(t, "inspect", "--type", "volume", "insp")
	wantCode(t, "inspect --type volume of a container", r, 1)
}

// TestImagesTagRmi: images's table and formats, tag, rmi.
func TestImagesTagRmi(t *testing.T) {
	d := berthd(t)
	d.ok(t, "tag", baseImage, "berth-cli/tagged:v1")
	out := lines(d.ok(t, "images"))
	if len(out) != 3 {
		t.Fatalf("images: %q, want header and two rows", out)
	}
	header := out[0]
	if !strings.HasPrefix(header, "REPOSITORY") {
		t.Errorf("images header %q", header)
	}
	for _, h := range []string{"TAG", "IMAGE ID", "CREATED", "SIZE"} {
		columnStart(t, header, h)
	}
	short := strings.TrimPrefix(d.baseID, "sha256:")[:12]
	found := false
	for _, row := range out[1:] {
		if strings.HasPrefix(row, "berth-cli/tagged ") {
			found = true
			if i := columnStart(t, header, "IMAGE ID"); !strings.HasPrefix(row[i:], short) {
				t.Errorf("images row %q: IMAGE ID column is not %s", row, short)
			}
			if i := columnStart(t, header, "TAG"); !strings.HasPrefix(row[i:], "v1") {
				t.Errorf("images row %q: TAG column is not v1", row)
			}
		}
	}
	if !found {
		t.Errorf("images: no row for berth-cli/tagged: %q", out)
	}
	if got := lines(d.ok(t, "images", "berth-cli/tagged")); len(got) != 2 {
		t.Errorf("images REPOSITORY: %q, want one row", got)
	}
	got := lines(d.ok(t, "images", "--format", "{{.Repository}}:{{.Tag}}"))
	sort.Strings(got)
	if want := []string{"berth-cli/tagged:v1", baseImage}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("images --format: %q, want %q", got, want)
	}
	for _, id := range lines(d.ok(t, "images", "-q")) {
		if id != short {
			t.Errorf("images -q: %q, want %s", id, short)
		}
	}
	for _, l := range lines(d.ok(t, "images", "--format", "json")) {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil || v["ID"] != short {
			t.Errorf("images --format json: %q: %v", l, err)
		}
	}
	if r := d.berth(t, "rmi", "berth-cli/tagged:v1"); wantCode(t, "rmi", r, 0) && r.stdout != "Untagged: berth-cli/tagged:v1\n" {
		t.Errorf("rmi: stdout %q", r.stdout)
	}
	if r := d.berth(t, "rmi", "berth-cli/missing"); wantCode(t, "rmi of a missing image", r, 1) && !strings.Contains(r.stderr, "No such image") {
		t.Errorf("rmi of a missing image: stderr %q", r.stderr)
	}
}

// tarNames lists the entries of a tar stream.
func tarNames(t *testing.T, r io.Reader) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("read tar: %v (after %q)", err, names)
		}
		names = append(names, h.Name)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestSaveLoad: save to a file and to stdout, load from a file and from stdin, and the
// loaded image runs.
func TestSaveLoad(t *testing.T) {
	d := berthd(t)
	d.ok(t, "tag", baseImage, "berth-cli/saved:1")
	archive := filepath.Join(t.TempDir(), "saved.tar")
	d.ok(t, "save", "-o", archive, "berth-cli/saved:1")
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	if names := tarNames(t, f); !contains(names, "manifest.json") {
		t.Errorf("save -o: no manifest.json in %q", names)
	}
	f.Close()
	r := d.berth(t, "save", "berth-cli/saved:1")
	if wantCode(t, "save to stdout", r, 0) {
		if names := tarNames(t, strings.NewReader(r.stdout)); !contains(names, "manifest.json") {
			t.Errorf("save to stdout: no manifest.json in %q", names)
		}
	}
	d.ok(t, "rmi", "berth-cli/saved:1")
	if out := d.ok(t, "load", "-i", archive); !strings.Contains(out, "Loaded image: berth-cli/saved:1") {
		t.Errorf("load -i: %q", out)
	}
	d.ok(t, "rmi", "berth-cli/saved:1")
	in, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if r := d.berthIn(t, in, "load", "-q"); wantCode(t, "load -q from stdin", r, 0) && !strings.Contains(r.stdout, "Loaded image: berth-cli/saved:1") {
		t.Errorf("load from stdin: %q", r.stdout)
	}
	if out := d.ok(t, "run", "--rm", "--network", "none", "berth-cli/saved:1", "echo", "loaded"); out != "loaded\n" {
		t.Errorf("run of the loaded image: %q", out)
	}
}

// TestVolumes: volume create, ls (table, -q, --format), inspect -f, data kept across
// containers, rm.
func TestVolumes(t *testing.T) {
	d := berthd(t)
	if out := d.ok(t, "volume", "create", "--label", "k=v", "berth-cli-vol"); out != "berth-cli-vol\n" {
		t.Errorf("volume create: %q", out)
	}
	if got := lines(d.ok(t, "volume", "ls")); len(got) != 2 || got[0] != "DRIVER    VOLUME NAME" || got[1] != "local     berth-cli-vol" {
		t.Errorf("volume ls: %q", got)
	}
	if got := d.ok(t, "volume", "ls", "-q"); got != "berth-cli-vol\n" {
		t.Errorf("volume ls -q: %q", got)
	}
	if got := d.ok(t, "volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Label \"k\"}}"); got != "berth-cli-vol local v\n" {
		t.Errorf("volume ls --format: %q", got)
	}
	if got := d.ok(t, "volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels}}", "berth-cli-vol"); got != "berth-cli-vol local map[k:v]\n" {
		t.Errorf("volume inspect -f: %q", got)
	}
	d.ok(t, runArgs([]string{"--rm", "-v", "berth-cli-vol:/data"}, "sh", "-c", "echo persisted > /data/f")...)
	if got := d.ok(t, runArgs([]string{"--rm", "-v", "berth-cli-vol:/data:ro"}, "cat", "/data/f")...); got != "persisted\n" {
		t.Errorf("the volume's data in a second container: %q", got)
	}
	if out := d.ok(t, "volume", "rm", "berth-cli-vol"); out != "berth-cli-vol\n" {
		t.Errorf("volume rm: %q", out)
	}
	if got := d.ok(t, "volume", "ls", "-q"); got != "" {
		t.Errorf("volume ls -q after rm: %q", got)
	}
	wantCode(t, "volume rm of a missing volume", d.berth(t, "volume", "rm", "berth-cli-vol"), 1)
}

// TestCp: cp both ways with docker's path rules: into an existing directory, to a new name,
// a directory's contents ("/."), following links or not, "-" as a tar on stdin and stdout,
// and the errors.
func TestCp(t *testing.T) {
	d := berthd(t)
	d.ok(t, runArgs([]string{"-d", "--name", "cp"}, "sleep", "300")...)
	local := t.TempDir()
	src := filepath.Join(local, "src")
	for p, content := range map[string]string{"a.txt": "hello\n", "sub/b.txt": "deep\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	inCtr := func(script string) string {
		t.Helper()
		return d.ok(t, "exec", "cp", "sh", "-c", script)
	}

	d.ok(t, "cp", src, "cp:/tmp/")
	if got := inCtr("cat /tmp/src/a.txt /tmp/src/sub/b.txt; readlink /tmp/src/link"); got != "hello\ndeep\na.txt\n" {
		t.Errorf("cp dir into an existing dir: %q", got)
	}
	d.ok(t, "cp", filepath.Join(src, "a.txt"), "cp:/tmp/renamed.txt")
	if got := inCtr("cat /tmp/renamed.txt"); got != "hello\n" {
		t.Errorf("cp file to a new name: %q", got)
	}
	d.ok(t, "cp", src+"/.", "cp:/newdir")
	if got := inCtr("ls /newdir"); got != "a.txt\nlink\nsub\n" {
		t.Errorf("cp dir/. to a new dir: %q, want the contents", got)
	}
	d.ok(t, "cp", src, "cp:/tmp/src-copy")
	if got := inCtr("cat /tmp/src-copy/sub/b.txt"); got != "deep\n" {
		t.Errorf("cp dir to a new name: %q", got)
	}
	d.ok(t, "cp", "-L", filepath.Join(src, "link"), "cp:/tmp/followed")
	if got := inCtr("cat /tmp/followed; [ -L /tmp/followed ] || echo regular"); got != "hello\nregular\n" {
		t.Errorf("cp -L of a link: %q", got)
	}

	out := filepath.Join(local, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	d.ok(t, "cp", "cp:/tmp/src", out+"/")
	if b, err := os.ReadFile(filepath.Join(out, "src", "sub", "b.txt")); err != nil || string(b) != "deep\n" {
		t.Errorf("cp container dir into a local dir: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(out, "src", "link")); err != nil || l != "a.txt" {
		t.Errorf("cp container dir: link %q %v", l, err)
	}
	d.ok(t, "cp", "cp:/tmp/renamed.txt", filepath.Join(out, "file.txt"))
	if b, err := os.ReadFile(filepath.Join(out, "file.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("cp container file to a new local name: %q %v", b, err)
	}
	d.ok(t, "cp", "cp:/newdir/.", filepath.Join(out, "contents"))
	if b, err := os.ReadFile(filepath.Join(out, "contents", "a.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("cp container dir/. to a new local dir: %q %v", b, err)
	}

	r := d.berth(t, "cp", "cp:/tmp/renamed.txt", "-")
	if wantCode(t, "cp to stdout", r, 0) {
		if names := tarNames(t, strings.NewReader(r.stdout)); len(names) != 1 || names[0] != "renamed.txt" {
			t.Errorf("cp to stdout: entries %q", names)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "from-stdin.txt", Mode: 0o644, Size: 6, Typeflag: tar.TypeReg})
	tw.Write([]byte("stdin\n"))
	tw.Close()
	if r := d.berthIn(t, &buf, "cp", "-", "cp:/tmp"); wantCode(t, "cp from stdin", r, 0) {
		if got := inCtr("cat /tmp/from-stdin.txt"); got != "stdin\n" {
			t.Errorf("cp from stdin: %q", got)
		}
	}

	if r := d.berth(t, "cp", "cp:/no/such/file", out); wantCode(t, "cp of a missing container file", r, 1) && !strings.Contains(r.stderr, "/no/such/file") {
		t.Errorf("cp of a missing container file: stderr %q", r.stderr)
	}
	if r := d.berth(t, "cp", filepath.Join(src, "a.txt"), "cp:/no/such/dir/"); wantCode(t, "cp of a file to a missing dir", r, 1) && !strings.Contains(r.stderr, "no such directory") {
		t.Errorf("cp of a file to a missing dir: stderr %q", r.stderr)
	}
	if r := d.berth(t, "cp", src, out); wantCode(t, "cp without a container", r, 1) && !strings.Contains(r.stderr, "must specify at least one container source") {
		t.Errorf("cp without a container: stderr %q", r.stderr)
	}
}

// TestBuild: build of a context directory (.dockerignore, --build-arg, -t, --iidfile,
// docker's step output), -q, and a failing step.
func TestBuild(t *testing.T) {
	d := dockerd(t)
	ctx := t.TempDir()
	files := map[string]string{
		"Dockerfile":      "FROM " + baseImage + "\nARG X=def\nCOPY . /ctx/\nRUN echo \"x=$X\" > /x.txt\nLABEL l=v\nCMD [\"cat\",\"/x.txt\"]\n",
		".dockerignore":   "ignored\n*.log\n",
		"a.txt":           "a\n",
		"sub/s.txt":       "s\n",
		"ignored/i.txt":   "i\n",
		"x.log":           "log\n",
		"sub/keep.log.md": "kept\n",
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(ctx, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctx, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iid := filepath.Join(t.TempDir(), "iid")
	out := d.ok(t, "build", "-t", "berth-cli/built:1", "--build-arg", "X=yes", "--network", "none", "--iidfile", iid, ctx)
	for _, want := range []string{"Sending build context to Docker daemon", "Step 1/6 : FROM " + baseImage, "Successfully built ", "Successfully tagged berth-cli/built:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("build output lacks %q:\n%s", want, out)
		}
	}
	id, err := os.ReadFile(iid)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(d.ok(t, "inspect", "-f", "{{.Id}}", "berth-cli/built:1")); got != string(id) {
		t.Errorf("--iidfile has %q, the image is %q", id, got)
	}
	if got := d.ok(t, "run", "--rm", "--network", "none", "berth-cli/built:1"); got != "x=yes\n" {
		t.Errorf("the built image's CMD: %q", got)
	}
	got := lines(d.ok(t, "run", "--rm", "--network", "none", "berth-cli/built:1", "find", "/ctx", "-type", "f"))
	sort.Strings(got)
	if want := []string{"/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/a.txt", "/ctx/sub/keep.log.md", "/ctx/sub/s.txt"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the build context: %q, want %q", got, want)
	}
	if r := d.berth(t, "build", "-q", "--network", "none", ctx); wantCode(t, "build -q", r, 0) {
		if l := lines(r.stdout); len(l) != 1 || !strings.HasPrefix(l[0], "sha256:") {
			t.Errorf("build -q: %q, want the image ID only", r.stdout)
		}
	}
	r := d.berthIn(t, strings.NewReader("FROM "+baseImage+"\nRUN exit 3\n"), "build", "--network", "none", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "returned a non-zero code: 3") {
		t.Errorf("build of a failing step: %v", r)
	}
}

// TestRunInteractiveTTY: run -t and -it through a pseudo-terminal (the container sees a
// terminal of berth's size, typed input reaches it, its exit code is berth's), the detach
// keys, and exec -it.
func TestRunInteractiveTTY(t *testing.T) {
	d := berthd(t)
	r := d.ptyRun(t, nil, runArgs([]string{"--rm", "-t"}, "sh", "-c",
		`tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; for i in $(seq 100); do s=$(stty size); [ "$s" = "24 80" ] && break; sleep 0.1; done; echo "size=$s"; exit 5`)...)
	if wantCode(t, "run -t", r, 5) {
		for _, want := range []string{"/dev/pts/", "both-ttys", "size=24 80"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("run -t: the terminal lacks %q: %q", want, r.stdout)
			}
		}
	}
	r = d.ptyRun(t, []step{{"# ", "echo typed-$((6*7)); exit 4\r"}}, runArgs([]string{"--rm", "-it"}, "sh")...)
	if wantCode(t, "run -it", r, 4) && !strings.Contains(r.stdout, "typed-42") {
		t.Errorf("run -it: the terminal showed %q, want typed-42", r.stdout)
	}
	// ctrl-p ctrl-q detaches: berth exits 0, the container runs on.
	r = d.ptyRun(t, []step{{"ready", "\x10\x11"}}, runArgs([]string{"-it", "--name", "detached"}, "sh", "-c", "echo ready; sleep 300")...)
	wantCode(t, "run -it then the detach keys", r, 0)
	if got := strings.TrimSpace(d.ok(t, "inspect", "-f", "{{.State.Running}}", "detached")); got != "true" {
		t.Errorf("after detaching: running %q", got)
	}
	r = d.ptyRun(t, []step{{"# ", "echo in-exec; exit 6\r"}}, "exec", "-it", "detached", "sh")
	if wantCode(t, "exec -it", r, 6) && !strings.Contains(r.stdout, "in-exec") {
		t.Errorf("exec -it: the terminal showed %q", r.stdout)
	}
	// attach to a container started with -dit: typed input reaches it, the detach keys end
	// berth's attachment (exit 1, "read escape sequence") and the container runs on.
	d.ok(t, runArgs([]string{"-dit", "--name", "att"}, "sh")...)
	r = d.ptyRun(t, []step{{"", "echo attached-$((1+1))\r"}, {"attached-2", "\x10\x11"}}, "attach", "att")
	if wantCode(t, "attach then the detach keys", r, 1) && (!strings.Contains(r.stdout, "attached-2") || !strings.Contains(r.stdout, "read escape sequence")) {
		t.Errorf("attach: the terminal showed %q", r.stdout)
	}
	if got := strings.TrimSpace(d.ok(t, "inspect", "-f", "{{.State.Running}}", "att")); got != "true" {
		t.Errorf("after detaching from attach: running %q", got)
	}
	// Without a terminal, -it is refused as docker refuses it.
	if r := d.berthIn(t, strings.NewReader(""), runArgs([]string{"--rm", "-it"}, "true")...); r.code == 0 || !strings.Contains(r.stderr, "the input device is not a TTY") {
		t.Errorf("run -it without a terminal: %v", r)
	}
}

// TestHostAndErrors: the daemon is found through BERTH_HOST, DOCKER_HOST or -H (in this
// order of precedence reversed); usage errors and an unreachable daemon give docker's
// messages and exit codes.
func TestHostAndErrors(t *testing.T) {
	d := berthd(t)
	envWith := func(extra ...string) *testDaemon {
		var env []string
		for _, e := range d.Env {
			if !strings.HasPrefix(e, "BERTH_HOST=") {
				env = append(env, e)
			}
		}
		return &testDaemon{Host: d.Host, Env: append(env, extra...), baseID: d.baseID}
	}
	if out := envWith("DOCKER_HOST="+d.Host).ok(t, "version", "--format", "{{.Server.Version}}"); strings.TrimSpace(out) == "" {
		t.Errorf("DOCKER_HOST: no server version")
	}
	envWith("DOCKER_HOST=unix:///nonexistent.sock", "BERTH_HOST="+d.Host).ok(t, "ps")
	envWith("BERTH_HOST=unix:///nonexistent.sock").ok(t, "-H", d.Host, "ps")

	r := envWith("BERTH_HOST=unix:///nonexistent.sock").berth(t, "ps")
	if wantCode(t, "ps without a daemon", r, 1) && !strings.Contains(r.stderr, "Cannot connect to the berth daemon at unix:///nonexistent.sock") {
		t.Errorf("ps without a daemon: stderr %q", r.stderr)
	}
	r = d.berth(t, "run")
	if wantCode(t, "run without an image", r, 1) && !strings.Contains(r.stderr, "'berth run' requires at least 1 argument") {
		t.Errorf("run without an image: stderr %q", r.stderr)
	}
	r = d.berth(t, "ps", "--bogus")
	if wantCode(t, "an unknown flag", r, 125) && !strings.HasPrefix(r.stderr, "unknown flag: --bogus") {
		t.Errorf("an unknown flag: stderr %q", r.stderr)
	}
	r = d.berth(t, "frobnicate")
	if wantCode(t, "an unknown command", r, 1) && !strings.Contains(r.stderr, "unknown command: berth frobnicate") {
		t.Errorf("an unknown command: stderr %q", r.stderr)
	}
	r = d.berth(t, "run", "--pull", "sometimes", baseImage)
	if wantCode(t, "an invalid --pull", r, 125) && !strings.Contains(r.stderr, "invalid pull option") {
		t.Errorf("an invalid --pull: stderr %q", r.stderr)
	}
}
