package networking_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
)

// composeProject has a web service published on the host's port 8080 and a client that
// finds it by its service name on the project's default network.
const composeProject = `version: "2.4"
services:
  web:
    image: %[1]s
    ports: ["8080:80"]
    command: ["sh", "-c", "mkdir -p /www && echo hello from compose > /www/index.html && exec httpd -f -p 80 -h /www"]
  client:
    image: %[1]s
    depends_on: [web]
    command: ["sh", "-c", "for i in $$(seq 1 100); do wget -q -O - http://web/ && exit 0; sleep 0.1; done; echo 'web never answered'; exit 1"]
`

// TestComposeDefaultNetwork: docker-compose 1.29 makes the project's network, its
// services resolve each other's names, the published port answers on the host, and down
// removes the network.
func TestComposeDefaultNetwork(t *testing.T) {
	t.Parallel()
	const bin = "/usr/bin/docker-compose"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("docker-compose 1.29 is needed (apt-get install docker-compose): %v", err)
	}
	d := daemon(t, berthtest.Options{})
	dir := t.TempDir()
	yml := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(yml, []byte(fmt.Sprintf(composeProject, image)), 0o644); err != nil {
		t.Fatal(err)
	}
	compose := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"-p", "netproj", "-f", yml}, args...)...)
		cmd.Dir, cmd.Env = dir, d.Env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker-compose %s: %v\n%s\nberthd:\n%s", strings.Join(args, " "), err, out, d.LogTail(30))
		}
		return string(out)
	}
	compose("up", "-d")
	downed := false
	defer func() {
		if !downed {
			compose("down", "-t", "1")
		}
	}()
	if msg := retry(150, func() string {
		st := must(t, d, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "netproj_client_1")
		if st != "exited 0" {
			return st
		}
		return ""
	}); msg != "" {
		t.Fatalf("client: %s; logs:\n%s", msg, must(t, d, "logs", "netproj_client_1"))
	}
	if out := must(t, d, "logs", "netproj_client_1"); out != "hello from compose" {
		t.Fatalf("client logs: %q", out)
	}
	if got := hostGet(t, d, "http://127.0.0.1:8080/"); got != "hello from compose" {
		t.Fatalf("published port: %q", got)
	}
	if out := must(t, d, "network", "ls", "--format", "{{.Name}}", "--filter", "name=netproj"); out != "netproj_default" {
		t.Fatalf("project network: %q", out)
	}
	compose("down", "-t", "1")
	downed = true
	if out := must(t, d, "network", "ls", "--format", "{{.Name}}", "--filter", "name=netproj"); out != "" {
		t.Fatalf("networks after down: %q", out)
	}
}
