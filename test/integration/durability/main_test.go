// Package durability_test proves, against a private berthd driven by the stock docker 28 CLI
// and Debian's docker-compose 1.29 (test/berthtest), what issue 5 promises of the daemon as a
// whole:
//
//   - containers outlive berthd: after `kill -9` of berthd, twenty logging containers keep
//     running and writing their json-file logs under their shims; a restarted berthd lists
//     them as running, follows their logs with no line lost, and stops and removes them; a
//     container that exited while berthd was down, or was killed from outside, shows its exit
//     code, and one with `--restart always` is left running as it was (TestKill9*);
//   - nothing leaks: 500 `docker run --rm ... true` cycles leave no container, mount, shim,
//     cgroup, runtime state or directory behind, and berthd's open descriptors do not grow
//     (TestRunRmCycles);
//   - docker-compose works: a two-service project (an httpd and a client that fetches its
//     page, both in the host's network namespace) goes up, is listed, logs, and goes down
//     leaving nothing (TestCompose).
//
// The tests need root. berthd's shims are orphaned when the harness kills berthd: the test
// process becomes their child subreaper and reaps them (see berthtest.Daemon.Kill9).
package durability_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"berth/test/bundle"
)

// skipAll, when set, is why every test skips.
var skipAll string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		skipAll = "the durability tests need root (they run berthd)"
	}
	code := m.Run()
	if skipAll == "" {
		bundle.RemoveCgroupParent()
		// Every orphaned shim came back to this process (a subreaper) and was reaped.
		if z := zombieChildren(); len(z) > 0 {
			fmt.Fprintf(os.Stderr, "durability: LEAK: zombie children of the test process: %v\n", z)
			code = 1
		}
	}
	os.Exit(code)
}

// zombieChildren lists this process's children that exited and were not reaped, as
// "pid (name)".
func zombieChildren() []string {
	var out []string
	self := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		if f := strings.Fields(s[end+1:]); len(f) >= 2 && f[0] == "Z" && f[1] == self {
			out = append(out, e.Name()+" "+s[strings.IndexByte(s, '('):end+1])
		}
	}
	return out
}
