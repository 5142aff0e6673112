package durability_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
)

// composeBinary is Debian's docker-compose 1.29 (hack/install-deps.sh installs it).
const composeBinary = "/usr/bin/docker-compose"

// page is what the web service serves.
const page = "hello from a berth compose project"

// composeFile is a two-service project in the host's network namespace (berth has no
// bridge network yet): web serves page on 127.0.0.1:%[2]d with busybox httpd; client
// fetches it (retrying until web listens), prints it and exits 0. $$ is compose's escape
// of $.
const composeFile = `version: "2.4"
services:
  web:
    image: %[1]s
    network_mode: host
    command: ["sh", "-c", "mkdir -p /www && echo '%[3]s' > /www/index.html && exec httpd -f -p 127.0.0.1:%[2]d -h /www"]
  client:
    image: %[1]s
    network_mode: host
    depends_on: [web]
    command: ["sh", "-c", "for i in $$(seq 1 300); do wget -q -O - http://127.0.0.1:%[2]d/ && exit 0; sleep 0.1; done; echo 'web never answered'; exit 1"]
`

// TestCompose is acceptance 2 of issue 5: docker-compose 1.29, which talks to the Engine API
// as the SDKs do, brings a two-service project up (-d), lists it, shows its logs (the client
// got the web service's page), and brings it down leaving no container.
func TestCompose(t *testing.T) {
	if _, err := os.Stat(composeBinary); err != nil {
		t.Fatalf("docker-compose 1.29 is needed (apt-get install docker-compose): %v", err)
	}
	d, img := start(t)
	dir := t.TempDir()
	port := freePort(t)
	project := fmt.Sprintf("berthdur%d", os.Getpid())
	yml := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(yml, []byte(fmt.Sprintf(composeFile, img, port, page)), 0o644); err != nil {
		t.Fatal(err)
	}
	compose := func(args ...string) string {
		t.Helper()
		out, err := runCompose(d, dir, append([]string{"-p", project, "-f", yml}, args...)...)
		if err != nil {
			t.Fatalf("docker-compose %s: %v\n%s\nberthd log:\n%s", strings.Join(args, " "), err, out, d.LogTail(2000))
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			runCompose(d, dir, "-p", project, "-f", yml, "down", "-t", "1")
		}
	})

	compose("up", "-d")
	web, client := project+"_web_1", project+"_client_1"
	waitFor(t, "the client service fetched the page and exited", func() (bool, string) {
		st := d.Must("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", client)
		return strings.HasPrefix(st, "exited"), st
	})
	if st := d.Must("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", client); st != "exited 0" {
		t.Errorf("client: %q, want exited 0; its logs:\n%s", st, d.Must("logs", client))
	}
	if st := d.Must("inspect", "-f", "{{.State.Status}}", web); st != "running" {
		t.Errorf("web: %q, want running", st)
	}

	ps := compose("ps")
	t.Logf("docker-compose ps:\n%s", ps)
	for _, want := range []string{web, client} {
		if !strings.Contains(ps, want) {
			t.Errorf("docker-compose ps does not list %s", want)
		}
	}
	if !psLineHas(ps, web, "Up") || !psLineHas(ps, client, "Exit 0") {
		t.Errorf("docker-compose ps: want %s Up and %s Exit 0", web, client)
	}
	if ids := strings.Fields(compose("ps", "-q")); len(ids) != 2 {
		t.Errorf("docker-compose ps -q: %q, want two IDs", ids)
	}
	logs := compose("logs", "--no-color", "client")
	if !strings.Contains(logs, page) {
		t.Errorf("docker-compose logs client does not show the page %q:\n%s", page, logs)
	}
	if labels := d.Must("ps", "-a", "--filter", "label=com.docker.compose.project="+project, "--format", "{{.Names}}"); len(strings.Fields(labels)) != 2 {
		t.Errorf("docker ps -a --filter label=com.docker.compose.project=%s: %q, want both services", project, labels)
	}

	compose("down", "-t", "1")
	if left := d.Must("ps", "-a", "--filter", "label=com.docker.compose.project="+project, "-q"); left != "" {
		t.Errorf("containers of the project left after docker-compose down: %q", left)
	}
	if left := d.Must("ps", "-aq"); left != "" {
		t.Errorf("containers left after docker-compose down: %q", left)
	}
	if ps := compose("ps", "-q"); strings.TrimSpace(ps) != "" {
		t.Errorf("docker-compose ps -q after down: %q", ps)
	}
}

// runCompose runs docker-compose in dir against d (DOCKER_HOST from d.Env) and returns its
// combined output.
func runCompose(d *berthtest.Daemon, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, composeBinary, args...)
	cmd.Dir = dir
	cmd.Env = d.Env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// psLineHas reports whether a line of docker-compose ps names name and contains what.
func psLineHas(ps, name, what string) bool {
	for _, l := range strings.Split(ps, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name && strings.Contains(l, what) {
			return true
		}
	}
	return false
}

// freePort is a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
