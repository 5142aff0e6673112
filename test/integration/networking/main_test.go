// Package networking_test drives berthd's networking with the stock docker CLI: the default
// bridge with published ports (tcp, udp, ranges, -P) reached from the host's loopback and
// own address, from another host and from other containers; user-defined networks with
// names and aliases through the embedded DNS server, their isolation, internal networks,
// connect and disconnect; the host, none and container: modes; docker-compose's project
// network; teardown after stop and rm, and reconciliation after berthd is killed.
//
// Every berthd runs in a network namespace of its own that berthtest makes (its "host"):
// the tests never touch the machine's own network. Commands "on the host" run there
// through nsenter. Cleanup checks that no veth, rule, lease or bridge is left.
package networking_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
)

const image = "busybox"

// daemon starts a private berthd with the busybox image.
func daemon(t *testing.T, o berthtest.Options) *berthtest.Daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("berthd needs root")
	}
	d := berthtest.Start(t, o)
	d.Busybox(image)
	return d
}

// must runs the docker CLI and fails the test on a non-zero exit.
func must(t *testing.T, d *berthtest.Daemon, args ...string) string {
	t.Helper()
	out, errOut, code := d.Docker(args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s\nberthd:\n%s", strings.Join(args, " "), code, out, errOut, d.LogTail(30))
	}
	return strings.TrimSpace(out)
}

// fails runs the docker CLI, expects a failure and returns stderr.
func fails(t *testing.T, d *berthtest.Daemon, args ...string) string {
	t.Helper()
	out, errOut, code := d.Docker(args...)
	if code == 0 {
		t.Fatalf("docker %s: succeeded, want an error\nstdout: %s", strings.Join(args, " "), out)
	}
	return errOut
}

// httpd runs a detached busybox httpd serving "hello from <name>" on port 80 with extra
// docker run flags.
func httpd(t *testing.T, d *berthtest.Daemon, name string, flags ...string) {
	t.Helper()
	args := append([]string{"run", "-d", "--name", name}, flags...)
	args = append(args, image, "sh", "-c", fmt.Sprintf("mkdir -p /www && echo hello from %s > /www/index.html && exec httpd -f -p 80 -h /www", name))
	must(t, d, args...)
}

// hostGet fetches url from berthd's host namespace with curl and returns the body.
func hostGet(t *testing.T, d *berthtest.Daemon, url string) string {
	t.Helper()
	var out string
	var code int
	for i := 0; i < 50; i++ {
		out, code = d.Host(10*time.Second, "curl", "-sS", "--max-time", "5", url)
		if code == 0 {
			return strings.TrimSpace(out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("curl %s from the host: exit %d: %s\nberthd:\n%s", url, code, out, d.LogTail(30))
	return ""
}

// inspect formats one value of docker inspect.
func inspect(t *testing.T, d *berthtest.Daemon, format, ref string) string {
	t.Helper()
	return must(t, d, "inspect", "-f", format, ref)
}
