package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunSignalProxy: a signal berth receives while running a container in the foreground
// reaches the container (--sig-proxy, the default), and berth exits with the container's code.
func TestRunSignalProxy(t *testing.T) {
	d := berthd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, runArgs([]string{"--rm"}, "sh", "-c", `trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.1; done`)...)
	cmd.Env, cmd.Dir = d.Env, work
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if sc.Text() == "ready" {
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	err = cmd.Wait()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	t.Logf("berth run with SIGTERM: exit %d (%v), output %q", code, err, seen)
	if code != 7 || strings.Join(seen, "|") != "ready|got TERM" {
		t.Errorf("SIGTERM to berth run: exit %d, output %q; want 7 and ready, got TERM", code, seen)
	}
}

// TestContainerVerbs: the other container verbs against a running container: pause,
// unpause, top, port, rename, update, diff, commit, export, kill, wait, restart, stats and
// events.
func TestContainerVerbs(t *testing.T) {
	d := berthd(t)
	id := strings.TrimSpace(d.ok(t, runArgs([]string{"-d", "--name", "verbs", "--expose", "8080"}, "sh", "-c", "echo x > /tmp/changed; exec sleep 300")...))
	if out := d.ok(t, "pause", "verbs"); out != "verbs\n" {
		t.Errorf("pause: %q", out)
	}
	if got := strings.TrimSpace(d.ok(t, "inspect", "-f", "{{.State.Status}}", "verbs")); got != "paused" {
		t.Errorf("after pause: %q", got)
	}
	d.ok(t, "unpause", "verbs")
	top := lines(d.ok(t, "top", "verbs"))
	if len(top) < 2 || !strings.Contains(top[0], "PID") || !strings.Contains(strings.Join(top, "\n"), "sleep 300") {
		t.Errorf("top: %q", top)
	}
	if out := d.ok(t, "port", "verbs"); out != "" {
		t.Errorf("port without published ports: %q", out)
	}
	if r := d.berth(t, "port", "verbs", "8080"); wantCode(t, "port of an unpublished port", r, 1) && !strings.Contains(r.stderr, "No public port '8080'") {
		t.Errorf("port 8080: %q", r.stderr)
	}
	d.ok(t, "rename", "verbs", "verbs2")
	if got := strings.TrimSpace(d.ok(t, "inspect", "-f", "{{.Name}}", id)); got != "/verbs2" {
		t.Errorf("after rename: %q", got)
	}
	d.ok(t, "update", "--pids-limit", "64", "--restart", "on-failure:2", "verbs2")
	if got := strings.TrimSpace(d.ok(t, "inspect", "-f", "{{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}", "verbs2")); got != "64 on-failure" {
		t.Errorf("after update: %q", got)
	}
	if !waitFor(func() bool { out, _ := d.quiet("diff", "verbs2"); return strings.Contains(out, "A /tmp/changed") }) {
		t.Errorf("diff never showed A /tmp/changed")
	}
	img := strings.TrimSpace(d.ok(t, "commit", "-m", "a message", "-c", "ENV COMMITTED=1", "verbs2", "berth-cli/committed:1"))
	if !strings.HasPrefix(img, "sha256:") {
		t.Errorf("commit printed %q", img)
	}
	if out := d.ok(t, "run", "--rm", "--network", "none", "berth-cli/committed:1", "sh", "-c", "cat /tmp/changed; echo $COMMITTED"); out != "x\n1\n" {
		t.Errorf("the committed image: %q", out)
	}
	hist := lines(d.ok(t, "history", "berth-cli/committed:1"))
	if len(hist) < 3 || !strings.HasPrefix(hist[0], "IMAGE ") || !strings.Contains(hist[1], "a message") {
		t.Errorf("history: %q", hist)
	}
	export := filepath.Join(t.TempDir(), "export.tar")
	d.ok(t, "export", "-o", export, "verbs2")
	f, err := os.Open(export)
	if err != nil {
		t.Fatal(err)
	}
	if names := tarNames(t, f); !contains(names, "tmp/changed") || !contains(names, "bin/busybox") {
		t.Errorf("export: %d entries, tmp/changed or bin/busybox missing", len(names))
	}
	f.Close()
	stats := lines(d.ok(t, "stats", "--no-stream", "verbs2"))
	if len(stats) != 2 || !strings.HasPrefix(stats[0], "CONTAINER ID   NAME") || !strings.Contains(stats[1], "verbs2") {
		t.Errorf("stats --no-stream: %q", stats)
	}
	if out := d.ok(t, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "verbs2"); out != "verbs2 1\n" {
		t.Errorf("stats --format: %q", out)
	}
	if out := d.ok(t, "kill", "-s", "KILL", "verbs2"); out != "verbs2\n" {
		t.Errorf("kill: %q", out)
	}
	if out := d.ok(t, "wait", "verbs2"); out != "137\n" {
		t.Errorf("wait after kill: %q", out)
	}
	d.ok(t, "restart", "-t", "1", "verbs2")
	if got := strings.TrimSpace(d.ok(t, "inspect", "-f", "{{.State.Running}}", "verbs2")); got != "true" {
		t.Errorf("after restart: running %q", got)
	}
	// The past events up to now. Not --until 0s: the client sends a duration as whole
	// seconds, which leaves out the events of the current second.
	pastEvents := func(format string) []string {
		now := time.Now()
		return lines(d.ok(t, "events", "--since", "10m", "--until", fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond()),
			"--filter", "container="+id, "--format", format))
	}
	wantEvents := []string{"create", "start", "pause", "unpause", "rename", "kill", "die"}
	var evs []string
	// A daemon may publish an event just after the request that caused it has returned.
	waitFor(func() bool {
		evs = pastEvents("{{.Action}}")
		for _, want := range wantEvents {
			if !contains(evs, want) {
				return false
			}
		}
		return true
	})
	for _, want := range wantEvents {
		if !contains(evs, want) {
			t.Errorf("events: no %s in %q", want, evs)
		}
	}
	for _, l := range pastEvents("json") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["Type"] != "container" {
			t.Errorf("events --format json: %q %v", l, err)
		}
	}
	d.ok(t, "rm", "-f", "verbs2")
}

// TestSystemAndNetworks: version, info, system df, networks, published ports and berth
// port against berthd.
func TestSystemAndNetworks(t *testing.T) {
	d := berthd(t)
	if out := d.ok(t, "version"); !strings.Contains(out, "Client: berth") || !strings.Contains(out, "Server:") {
		t.Errorf("version: %q", out)
	}
	if out := strings.TrimSpace(d.ok(t, "info", "--format", "{{.Images}} {{.OSType}}")); out != "1 linux" {
		t.Errorf("info --format: %q", out)
	}
	if out := d.ok(t, "info"); !strings.Contains(out, " Server Version: ") || !strings.Contains(out, " Images: 1\n") {
		t.Errorf("info: %q", out)
	}
	df := lines(d.ok(t, "system", "df"))
	if len(df) != 5 || !strings.HasPrefix(df[0], "TYPE            TOTAL     ACTIVE    SIZE") || !strings.HasPrefix(df[1], "Images          1 ") {
		t.Errorf("system df: %q", df)
	}
	netID := strings.TrimSpace(d.ok(t, "network", "create", "--driver", "bridge", "--subnet", "10.213.0.0/24", "--gateway", "10.213.0.1", "--label", "k=v", "berth-cli-net"))
	if !fullID.MatchString(netID) {
		t.Errorf("network create printed %q", netID)
	}
	if got := strings.TrimSpace(d.ok(t, "network", "inspect", "-f", "{{.Name}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{.Labels}}", "berth-cli-net")); got != "berth-cli-net 10.213.0.0/24 10.213.0.1 map[k:v]" {
		t.Errorf("network inspect -f: %q", got)
	}
	ls := lines(d.ok(t, "network", "ls", "--filter", "name=berth-cli-net"))
	if len(ls) != 2 || !strings.HasPrefix(ls[0], "NETWORK ID     NAME") || !strings.HasPrefix(ls[1], netID[:12]+"   berth-cli-net   bridge") {
		t.Errorf("network ls: %q", ls)
	}
	d.ok(t, "run", "-d", "--name", "cli-web", "--network", "berth-cli-net", "--network-alias", "www", "-p", "127.0.0.1:8080:80", baseImage,
		"sh", "-c", "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 80 -h /www")
	if out := d.ok(t, "port", "cli-web"); out != "80/tcp -> 127.0.0.1:8080\n" {
		t.Errorf("port: %q", out)
	}
	if out := d.ok(t, "ps", "--format", "{{.Names}} {{.Ports}} {{.Networks}}"); out != "cli-web 127.0.0.1:8080->80/tcp berth-cli-net\n" {
		t.Errorf("ps: %q", out)
	}
	if d.bd != nil {
		// -s, not -sS: an attempt refused before httpd listens would print
		// its error into the output even though a retry gets the page.
		if out, code := d.bd.Host(20*time.Second, "curl", "-s", "--retry", "20", "--retry-connrefused", "--retry-delay", "0", "http://127.0.0.1:8080/"); code != 0 || out != "hi\n" {
			t.Errorf("curl through the published port: exit %d: %q", code, out)
		}
	}
	if out := d.ok(t, "run", "--rm", "--network", "berth-cli-net", baseImage, "wget", "-qO-", "http://www/"); out != "hi\n" {
		t.Errorf("by alias: %q", out)
	}
	d.ok(t, "network", "create", "berth-cli-other")
	d.ok(t, "network", "connect", "--alias", "other-web", "berth-cli-other", "cli-web")
	if got := strings.TrimSpace(d.ok(t, "inspect", "-f", "{{len .NetworkSettings.Networks}}", "cli-web")); got != "2" {
		t.Errorf("networks after connect: %s", got)
	}
	d.ok(t, "network", "disconnect", "berth-cli-other", "cli-web")
	if out := d.ok(t, "network", "rm", "berth-cli-other"); out != "berth-cli-other\n" {
		t.Errorf("network rm: %q", out)
	}
	if r := d.berth(t, "network", "rm", "berth-cli-net"); r.code == 0 || !strings.Contains(r.stderr, "active endpoints") {
		t.Errorf("network rm of a network in use: %d %q", r.code, r.stderr)
	}
	d.ok(t, "rm", "-f", "cli-web")
	if out := d.ok(t, "network", "rm", "berth-cli-net"); out != "berth-cli-net\n" {
		t.Errorf("network rm: %q", out)
	}
}
