package networking_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
)

func TestPublishedPorts(t *testing.T) {
	t.Parallel()
	d := daemon(t, berthtest.Options{})
	remote := d.LinkToRemote()
	httpd(t, d, "web", "-p", "8080:80")
	defer must(t, d, "rm", "-f", "web")

	t.Run("host-loopback", func(t *testing.T) {
		if got := hostGet(t, d, "http://127.0.0.1:8080/"); got != "hello from web" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("host-address", func(t *testing.T) {
		if got := hostGet(t, d, "http://"+d.HostAddr+":8080/"); got != "hello from web" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("other-host", func(t *testing.T) {
		out, code := remoteGet(d, remote, "http://"+d.HostAddr+":8080/")
		if code != 0 || strings.TrimSpace(out) != "hello from web" {
			t.Fatalf("curl from another host: exit %d: %s", code, out)
		}
	})
	t.Run("other-container", func(t *testing.T) {
		gw := inspect(t, d, "{{(index .NetworkSettings.Networks \"bridge\").Gateway}}", "web")
		out := must(t, d, "run", "--rm", image, "sh", "-c", "timeout 5 wget -qO- http://"+gw+":8080/")
		if out != "hello from web" {
			t.Fatalf("got %q", out)
		}
		ip := inspect(t, d, "{{(index .NetworkSettings.Networks \"bridge\").IPAddress}}", "web")
		out = must(t, d, "run", "--rm", image, "sh", "-c", "timeout 5 wget -qO- http://"+ip+":80/")
		if out != "hello from web" {
			t.Fatalf("direct: got %q", out)
		}
	})
	t.Run("docker-port", func(t *testing.T) {
		if out := must(t, d, "port", "web", "80"); out != "0.0.0.0:8080" {
			t.Fatalf("docker port: %q", out)
		}
		if out := must(t, d, "ps", "--format", "{{.Ports}}", "--filter", "name=web"); out != "0.0.0.0:8080->80/tcp" {
			t.Fatalf("docker ps ports: %q", out)
		}
	})
}

// remoteGet runs curl in the remote namespace.
func remoteGet(d *berthtest.Daemon, remote, url string) (string, int) {
	cmd := []string{"--net=" + remote, "--", "curl", "-sS", "--max-time", "5", url}
	return runCmd("nsenter", cmd...)
}

func TestPortsUDPRangesAndAll(t *testing.T) {
	t.Parallel()
	d := daemon(t, berthtest.Options{})
	t.Run("udp", func(t *testing.T) {
		bin := udpecho(t)
		must(t, d, "create", "--name", "dns", "-p", "5353:53/udp", image, "/udpecho", "-listen", ":53")
		defer must(t, d, "rm", "-f", "dns")
		must(t, d, "cp", bin, "dns:/udpecho")
		must(t, d, "start", "dns")
		for _, addr := range []string{"127.0.0.1:5353", d.HostAddr + ":5353"} {
			out, code := d.Host(30*time.Second, bin, "-send", addr, "ping")
			if code != 0 || strings.TrimSpace(out) != "echo: ping" {
				t.Fatalf("udp to %s: exit %d: %q", addr, code, out)
			}
		}
		if out := must(t, d, "port", "dns"); out != "53/udp -> 0.0.0.0:5353" {
			t.Fatalf("docker port: %q", out)
		}
	})
	t.Run("range", func(t *testing.T) {
		httpd(t, d, "r1", "-p", "9000-9002:80")
		defer must(t, d, "rm", "-f", "r1")
		httpd(t, d, "r2", "-p", "9000-9002:80")
		defer must(t, d, "rm", "-f", "r2")
		p1, p2 := must(t, d, "port", "r1", "80"), must(t, d, "port", "r2", "80")
		if p1 != "0.0.0.0:9000" || p2 != "0.0.0.0:9001" {
			t.Fatalf("ports from a range: %q and %q", p1, p2)
		}
		if got := hostGet(t, d, "http://127.0.0.1:9001/"); got != "hello from r2" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("publish-all", func(t *testing.T) {
		httpd(t, d, "all", "--expose", "80", "--expose", "81", "-P")
		defer must(t, d, "rm", "-f", "all")
		hp := must(t, d, "port", "all", "80")
		if !strings.HasPrefix(hp, "0.0.0.0:") || hp == "0.0.0.0:0" {
			t.Fatalf("docker port: %q", hp)
		}
		if got := hostGet(t, d, "http://127.0.0.1:"+strings.TrimPrefix(hp, "0.0.0.0:")+"/"); got != "hello from all" {
			t.Fatalf("got %q", got)
		}
		if out := must(t, d, "port", "all"); strings.Count(out, "\n") != 1 {
			t.Fatalf("want two published ports:\n%s", out)
		}
	})
	t.Run("host-ip", func(t *testing.T) {
		httpd(t, d, "lo-only", "-p", "127.0.0.1:8088:80")
		defer must(t, d, "rm", "-f", "lo-only")
		if got := hostGet(t, d, "http://127.0.0.1:8088/"); got != "hello from lo-only" {
			t.Fatalf("got %q", got)
		}
		if out, code := d.Host(10*time.Second, "curl", "-sS", "--max-time", "2", "http://"+d.HostAddr+":8088/"); code == 0 {
			t.Fatalf("a port published on 127.0.0.1 answered on %s: %s", d.HostAddr, out)
		}
	})
}

func TestPortConflicts(t *testing.T) {
	t.Parallel()
	d := daemon(t, berthtest.Options{})
	httpd(t, d, "first", "-p", "8080:80")
	defer must(t, d, "rm", "-f", "first")
	t.Run("published-by-berth", func(t *testing.T) {
		msg := fails(t, d, "run", "-d", "--name", "second", "-p", "8080:80", image, "httpd", "-f")
		if !strings.Contains(msg, "port is already allocated") {
			t.Fatalf("error: %s", msg)
		}
		if st := inspect(t, d, "{{.State.Status}}", "second"); st != "created" {
			t.Fatalf("state after a failed start: %s", st)
		}
		must(t, d, "rm", "second")
		if got := hostGet(t, d, "http://127.0.0.1:8080/"); got != "hello from first" {
			t.Fatalf("the first container's port after the conflict: %q", got)
		}
	})
	t.Run("taken-by-another-process", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		nc := d.HostCmd(ctx, "busybox", "nc", "-l", "-p", "8081")
		if err := nc.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); nc.Wait() }()
		if msg := retry(25, func() string {
			_, errOut, code := d.Docker("run", "--rm", "-p", "8081:80", image, "true")
			if code == 0 || !strings.Contains(errOut, "port is already allocated") {
				return fmt.Sprintf("exit %d: %s", code, errOut)
			}
			return ""
		}); msg != "" {
			t.Fatalf("publishing a port another process listens on: %s", msg)
		}
	})
	t.Run("bad-specs", func(t *testing.T) {
		for _, p := range []string{"8080:80/sctp", "[::1]:8080:80"} {
			fails(t, d, "run", "--rm", "-p", p, image, "true")
		}
		fails(t, d, "run", "--rm", "--network", "container:first", "-p", "8082:80", image, "true")
		fails(t, d, "run", "--rm", "--network", "container:first", "--expose", "8082", image, "true")
	})
	t.Run("image-expose-with-container-network", func(t *testing.T) {
		// An image's EXPOSE is no conflict with --network container:X (as dockerd: only
		// the request's own ports are).
		must(t, d, "commit", "--change", "EXPOSE 80", "first", "exposing:v1")
		defer must(t, d, "rmi", "exposing:v1")
		must(t, d, "run", "--rm", "--network", "container:first", "exposing:v1", "true")
	})
}

func TestManyRunsLeaveNothing(t *testing.T) {
	t.Parallel()
	d := daemon(t, berthtest.Options{})
	n := 300
	if testing.Short() {
		n = 30
	}
	for i := 0; i < n; i++ {
		if _, errOut, code := d.Docker("run", "--rm", "-p", "8090:80", "-p", "8091:81/udp", image, "true"); code != 0 {
			t.Fatalf("run %d: exit %d: %s\n%s", i, code, errOut, d.LogTail(20))
		}
	}
	// The cleanup checks links, rules and leases; check them here too, with the daemon up.
	links, err := d.Links()
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range links {
		if typ == "veth" && strings.HasPrefix(name, "veth") {
			t.Errorf("veth %s left after %d runs", name, n)
		}
	}
}
