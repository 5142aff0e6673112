package networking_test

import (
	"strings"
	"testing"

	"berth/test/berthtest"
)

func TestUserNetworks(t *testing.T) {
	t.Parallel()
	d := daemon(t, berthtest.Options{})
	must(t, d, "network", "create", "--label", "team=a", "front")
	defer must(t, d, "network", "rm", "front")
	must(t, d, "network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.254", "back")
	defer must(t, d, "network", "rm", "back")
	httpd(t, d, "web", "--network", "front", "--network-alias", "www")
	defer must(t, d, "rm", "-f", "web")
	httpd(t, d, "db", "--network", "back", "--ip", "10.77.0.10")
	defer must(t, d, "rm", "-f", "db")

	t.Run("by-name-and-alias", func(t *testing.T) {
		out := must(t, d, "run", "--rm", "--network", "front", image, "sh", "-c",
			"ping -c1 -W2 web >/dev/null && timeout 5 wget -qO- http://web/ && timeout 5 wget -qO- http://www/ && cat /etc/resolv.conf")
		if !strings.HasPrefix(out, "hello from web\nhello from web\n") || !strings.Contains(out, "nameserver 127.0.0.11") {
			t.Fatalf("got:\n%s", out)
		}
	})
	t.Run("static-ip-and-gateway", func(t *testing.T) {
		if ip := inspect(t, d, "{{(index .NetworkSettings.Networks \"back\").IPAddress}}", "db"); ip != "10.77.0.10" {
			t.Fatalf("--ip: %s", ip)
		}
		if gw := inspect(t, d, "{{(index .NetworkSettings.Networks \"back\").Gateway}}", "db"); gw != "10.77.0.254" {
			t.Fatalf("gateway: %s", gw)
		}
		out := must(t, d, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{len .Containers}} {{.Labels}}", "back")
		if out != "10.77.0.0/24 10.77.0.254 1 map[]" {
			t.Fatalf("network inspect: %q", out)
		}
	})
	t.Run("isolated", func(t *testing.T) {
		webIP := inspect(t, d, "{{(index .NetworkSettings.Networks \"front\").IPAddress}}", "web")
		// --init: timeout cannot kill a PID 1 that ignores SIGTERM
		out, _, code := d.Docker("run", "--rm", "--init", "--network", "back", image, "sh", "-c", "timeout 3 wget -qO- http://"+webIP+"/")
		if code == 0 {
			t.Fatalf("a container on back reached web on front: %s", out)
		}
		out, _, code = d.Docker("run", "--rm", "--network", "back", image, "nslookup", "web")
		if code == 0 && strings.Contains(out, webIP) {
			t.Fatalf("a container on back resolved web on front:\n%s", out)
		}

	})
	t.Run("connect-disconnect", func(t *testing.T) {
		must(t, d, "run", "-d", "--name", "both", "--network", "back", image, "sleep", "300")
		defer must(t, d, "rm", "-f", "both")
		must(t, d, "network", "connect", "--alias", "second", "front", "both")
		out := must(t, d, "exec", "both", "sh", "-c", "timeout 5 wget -qO- http://web/ && ip -o -4 addr show eth1")
		if !strings.HasPrefix(out, "hello from web\n") {
			t.Fatalf("after connect:\n%s", out)
		}
		frontIP := inspect(t, d, "{{(index .NetworkSettings.Networks \"front\").IPAddress}}", "both")
		if hosts := must(t, d, "exec", "both", "cat", "/etc/hosts"); !strings.Contains(hosts, frontIP+"\t") {
			t.Fatalf("/etc/hosts after connect lacks %s:\n%s", frontIP, hosts)
		}
		out = must(t, d, "run", "--rm", "--network", "front", image, "nslookup", "second")
		bothIP := inspect(t, d, "{{(index .NetworkSettings.Networks \"front\").IPAddress}}", "both")
		if !strings.Contains(out, bothIP) {
			t.Fatalf("alias given at connect (%s):\n%s", bothIP, out)
		}
		fails(t, d, "network", "rm", "front")
		must(t, d, "network", "disconnect", "front", "both")
		out = must(t, d, "exec", "both", "ip", "-o", "link")
		if strings.Contains(out, "eth1") {
			t.Fatalf("eth1 after disconnect:\n%s", out)
		}
		if hosts := must(t, d, "exec", "both", "cat", "/etc/hosts"); strings.Contains(hosts, frontIP+"\t") {
			t.Fatalf("/etc/hosts after disconnect still has %s:\n%s", frontIP, hosts)
		}
	})
	t.Run("internal", func(t *testing.T) {
		must(t, d, "network", "create", "--internal", "sealed")
		defer must(t, d, "network", "rm", "sealed")
		out := must(t, d, "run", "--rm", "--init", "--network", "sealed", image, "sh", "-c", "ip route; timeout 3 wget -qO- http://"+d.HostAddr+":1/ 2>&1; echo done")
		if strings.Contains(out, "default") {
			t.Fatalf("an internal network has a default route:\n%s", out)
		}
	})
	t.Run("list-filter-prune", func(t *testing.T) {
		must(t, d, "network", "create", "spare")
		if out := must(t, d, "network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}"); out != "front" {
			t.Fatalf("label filter: %q", out)
		}
		if out := must(t, d, "network", "ls", "--filter", "type=custom", "--format", "{{.Name}}"); len(strings.Fields(out)) != 3 {
			t.Fatalf("custom networks: %q", out)
		}
		out := must(t, d, "network", "prune", "-f")
		if !strings.Contains(out, "spare") || strings.Contains(out, "front") {
			t.Fatalf("prune:\n%s", out)
		}
	})
}

func TestNetworkBadInput(t *testing.T) {
	t.Parallel()
	d := daemon(t, berthtest.Options{})
	must(t, d, "network", "create", "--subnet", "10.78.0.0/16", "one")
	defer must(t, d, "network", "rm", "one")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "--subnet", "10.78.1.0/24", "overlap"}, "overlaps"},
		{[]string{"network", "create", "one"}, "already exists"},
		{[]string{"network", "create", "--subnet", "10.79.0.0/33", "badcidr"}, "invalid"},
		{[]string{"network", "create", "--subnet", "10.79.0.0/24", "--gateway", "10.80.0.1", "badgw"}, "gateway"},
		{[]string{"network", "create", "-d", "overlay", "ov"}, "overlay"},
		{[]string{"network", "rm", "bridge"}, "pre-defined"},
		{[]string{"network", "rm", "nosuch"}, "not found"},
		{[]string{"run", "--rm", "--network", "nosuch", image, "true"}, "not found"},
		{[]string{"run", "--rm", "--ip", "10.78.0.5", image, "true"}, "user"},
		{[]string{"run", "--rm", "--network", "one", "--ip", "10.99.0.5", image, "true"}, "subnet"},
	} {
		msg := fails(t, d, tc.args...)
		if !strings.Contains(strings.ToLower(msg), tc.want) {
			t.Errorf("docker %s: %s (want %q)", strings.Join(tc.args, " "), msg, tc.want)
		}
	}
	// Nothing half-made: only the predefined networks and "one".
	if out := must(t, d, "network", "ls", "--format", "{{.Name}}"); strings.Join(strings.Fields(out), " ") != "bridge host none one" {
		t.Fatalf("networks after bad input: %q", out)
	}
	must(t, d, "run", "-d", "--name", "user", "--network", "one", image, "sleep", "300")
	defer must(t, d, "rm", "-f", "user")
	if msg := fails(t, d, "network", "rm", "one"); !strings.Contains(msg, "active endpoints") {
		t.Fatalf("network rm in use: %s", msg)
	}
}

func TestNetworkModes(t *testing.T) {
	t.Parallel()
	d := daemon(t, berthtest.Options{})
	t.Run("none", func(t *testing.T) {
		out := must(t, d, "run", "--rm", "--network", "none", image, "ip", "-o", "link")
		if strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo:") {
			t.Fatalf("--network none:\n%s", out)
		}
	})
	t.Run("host", func(t *testing.T) {
		out := must(t, d, "run", "--rm", "--network", "host", image, "ip", "-o", "-4", "addr")
		if !strings.Contains(out, "hostif0") || !strings.Contains(out, d.HostAddr) {
			t.Fatalf("--network host does not see the host's interfaces:\n%s", out)
		}
	})
	t.Run("container", func(t *testing.T) {
		must(t, d, "run", "-d", "--name", "peer", image, "sleep", "300")
		defer must(t, d, "rm", "-f", "peer")
		ip := inspect(t, d, "{{(index .NetworkSettings.Networks \"bridge\").IPAddress}}", "peer")
		out := must(t, d, "run", "--rm", "--network", "container:peer", image, "ip", "-o", "-4", "addr", "show", "eth0")
		if !strings.Contains(out, ip+"/") {
			t.Fatalf("container:peer does not share the peer's namespace (%s):\n%s", ip, out)
		}
	})
	t.Run("bridge", func(t *testing.T) {
		out := must(t, d, "run", "--rm", "--hostname", "box", "--add-host", "gw:host-gateway", image, "sh", "-c", "ip route; cat /etc/hosts")
		gw := must(t, d, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "bridge")
		if !strings.Contains(out, "default via "+gw) || !strings.Contains(out, gw+"\tgw") || !strings.Contains(out, "\tbox") {
			t.Fatalf("default bridge (gateway %s):\n%s", gw, out)
		}
	})
}
