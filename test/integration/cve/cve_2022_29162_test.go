package cve_test

import (
	"strconv"
	"strings"
	"testing"

	"berth/test/bundle"
)

// CVE-2022-29162: runc exec --cap added the capability to the inheritable set too (and from
// there, with file capabilities or ambient raising, it survived execve into programs that should
// not get it). --cap may only add to the bounding, effective and permitted sets; the init's
// inheritable set is the spec's.

const (
	capKill     = 5
	capNetAdmin = 12
)

var defaultCaps = []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}

func TestCVE_2022_29162_ExecCapNotInheritable(t *testing.T) {
	for _, c := range []struct {
		name     string
		inh, amb []string
		wantInh  uint64
		wantAmb  uint64
	}{
		{"no-inheritable", nil, nil, 0, 0},
		{"kill-inheritable-and-ambient", []string{"CAP_KILL"}, []string{"CAP_KILL"}, 1 << capKill, 1 << capKill},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRT(t)
			b := newBundle(t, bundle.WithArgs("sleep", "3600"), withCaps(defaultCaps, c.inh, c.amb))
			id := containerID("cve-2022-29162")
			initPid := r.start(b, id)
			if got := capSet(t, initPid, "CapInh"); got != c.wantInh {
				t.Errorf("init CapInh = %#x, want the spec's inheritable set %#x", got, c.wantInh)
			}
			if got := capSet(t, initPid, "CapAmb"); got != c.wantAmb {
				t.Errorf("init CapAmb = %#x, want %#x", got, c.wantAmb)
			}
			for _, flag := range []string{"CAP_NET_ADMIN", "net_admin"} {
				pid := r.execDetached("--cap", flag, id, "sleep", "3600")
				inh, amb := capSet(t, pid, "CapInh"), capSet(t, pid, "CapAmb")
				eff, bnd := capSet(t, pid, "CapEff"), capSet(t, pid, "CapBnd")
				t.Logf("exec --cap %s: CapInh=%#x CapAmb=%#x CapEff=%#x CapBnd=%#x", flag, inh, amb, eff, bnd)
				if eff&(1<<capNetAdmin) == 0 || bnd&(1<<capNetAdmin) == 0 {
					t.Errorf("exec --cap %s did not grant it (CapEff=%#x CapBnd=%#x): the test proves nothing", flag, eff, bnd)
				}
				if inh != c.wantInh {
					t.Errorf("exec --cap %s: CapInh = %#x, want %#x (--cap must not add to the inheritable set)", flag, inh, c.wantInh)
				}
				if amb != c.wantAmb {
					t.Errorf("exec --cap %s: CapAmb = %#x, want %#x (--cap must not add to the ambient set)", flag, amb, c.wantAmb)
				}
				// and it does not survive an execve into an unprivileged program: a child of
				// the exec'd process (as non-root) has no NET_ADMIN left
				out := r.run("exec", "--cap", flag, "-u", "65534", id, "sh", "-c", "grep -E '^Cap(Inh|Amb|Prm|Eff)' /proc/self/status")
				if out.Err != nil {
					t.Fatalf("exec -u 65534: %v", out)
				}
				for _, l := range lookupLines(out.Stdout, "Cap") {
					t.Logf("exec --cap %s -u 65534: %s", flag, l)
				}
				for _, field := range []string{"CapInh", "CapAmb", "CapPrm", "CapEff"} {
					if v, ok := capField(out.Stdout, field); !ok {
						t.Errorf("no %s in %q", field, out.Stdout)
					} else if v&(1<<capNetAdmin) != 0 {
						t.Errorf("exec --cap %s -u 65534: %s = %#x holds CAP_NET_ADMIN", flag, field, v)
					}
				}
			}
		})
	}
}

// capField parses "CapInh:\t0000..." out of a /proc/PID/status text.
func capField(status, field string) (uint64, bool) {
	lines := lookupLines(status, field+":")
	if len(lines) == 0 {
		return 0, false
	}
	v := strings.TrimLeft(lines[0][len(field)+1:], "\t ")
	n, err := strconv.ParseUint(v, 16, 64)
	return n, err == nil
}
