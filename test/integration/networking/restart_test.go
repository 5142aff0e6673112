package networking_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/test/berthtest"
)

// TestKill9Reconcile: berthd is killed with containers running on two networks; after it
// restarts, published ports and names still work, a container that exited meanwhile lost
// its address and veth, and a new container gets a free address.
func TestKill9Reconcile(t *testing.T) {
	t.Parallel()
	d := daemon(t, berthtest.Options{})
	must(t, d, "network", "create", "n1")
	must(t, d, "network", "create", "n2")
	defer must(t, d, "network", "rm", "n1", "n2")
	httpd(t, d, "web-a", "--network", "n1", "--network-alias", "alpha", "-p", "8080:80")
	defer must(t, d, "rm", "-f", "web-a")
	httpd(t, d, "web-b", "--network", "n2", "-p", "8081:80")
	defer must(t, d, "rm", "-f", "web-b")
	must(t, d, "run", "-d", "--name", "cc", "--network", "n1", image, "sleep", "300")
	defer must(t, d, "rm", "-f", "cc")
	// gone exits (when told through its filesystem) while berthd is down.
	must(t, d, "run", "-d", "--name", "gone", "--network", "n1", image, "sh", "-c", "while [ ! -f /tmp/stop ]; do sleep 0.1; done")
	defer must(t, d, "rm", "-f", "gone")
	goneID := must(t, d, "inspect", "-f", "{{.Id}}", "gone")
	goneIP := inspect(t, d, "{{(index .NetworkSettings.Networks \"n1\").IPAddress}}", "gone")
	aIP := inspect(t, d, "{{(index .NetworkSettings.Networks \"n1\").IPAddress}}", "web-a")
	cIP := inspect(t, d, "{{(index .NetworkSettings.Networks \"n1\").IPAddress}}", "cc")

	d.Kill9()
	if err := os.WriteFile(filepath.Join(d.DataRoot, "containers", goneID, "rootfs", "tmp", "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d.Restart()

	if got := hostGet(t, d, "http://127.0.0.1:8080/"); got != "hello from web-a" {
		t.Fatalf("published port of a after the restart: %q", got)
	}
	if got := hostGet(t, d, "http://"+d.HostAddr+":8081/"); got != "hello from web-b" {
		t.Fatalf("published port of b after the restart: %q", got)
	}
	if out := must(t, d, "exec", "cc", "sh", "-c", "wget -qO- http://web-a/ && wget -qO- http://alpha/"); out != "hello from web-a\nhello from web-a" {
		t.Fatalf("names after the restart: %q", out)
	}
	if msg := fails(t, d, "run", "--rm", "-p", "8080:80", image, "true"); !strings.Contains(msg, "already allocated") {
		t.Fatalf("the port of a is not reserved after the restart: %s", msg)
	}
	if msg := retry(100, func() string {
		if st := must(t, d, "inspect", "-f", "{{.State.Status}}", "gone"); st != "exited" {
			return "gone is " + st
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	links, err := d.Links()
	if err != nil {
		t.Fatal(err)
	}
	veths := 0
	for name, typ := range links {
		if typ == "veth" && strings.HasPrefix(name, "veth") {
			veths++
		}
	}
	if veths != 3 {
		t.Fatalf("%d veths after the restart, want 3 (a, b, c): %v", veths, links)
	}
	must(t, d, "run", "-d", "--name", "new", "--network", "n1", image, "sleep", "300")
	defer must(t, d, "rm", "-f", "new")
	newIP := inspect(t, d, "{{(index .NetworkSettings.Networks \"n1\").IPAddress}}", "new")
	if newIP == aIP || newIP == cIP {
		t.Fatalf("new container got %s, already used (a %s, c %s)", newIP, aIP, cIP)
	}
	_ = goneIP
}
