package runtime_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/test/bundle"
)

func shHook(script string, env ...string) specs.Hook {
	return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", script}, Env: env}
}

func readState(t *testing.T, path string) state {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("hook did not run: %v", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("hook stdin is not the state JSON: %v: %q", err, data)
	}
	return st
}

func TestHooks(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	host := func(kind string) specs.Hook {
		// runtime namespace: record the mount namespace, the state on stdin and an env var
		return shHook(fmt.Sprintf("readlink /proc/self/ns/mnt > %s/%s.ns; echo \"$HOOK_VAR\" > %s/%s.env; cat > %s/%s.json", dir, kind, dir, kind, dir, kind), "HOOK_VAR="+kind)
	}
	// createContainer: path resolved in the runtime namespace, run in the container's
	// namespaces before pivot_root, so the host path of dir is still valid
	createContainer := shHook(fmt.Sprintf("readlink /proc/self/ns/mnt > %s/createContainer.ns; cat > %s/createContainer.json", dir, dir))
	// startContainer: path resolved in the container (busybox sh), after pivot_root
	startContainer := shHook("readlink /proc/self/ns/mnt > /markers/startContainer.ns; cat > /markers/startContainer.json")
	c := e.ctr(
		bundle.WithArgs("sh", "-c", "cat /markers/startContainer.ns > /markers/seen-by-process; sleep 1000"),
		bundle.WithMounts(specs.Mount{Destination: "/markers", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}}),
		bundle.WithSpec(func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{
				//lint:ignore SA1019 prestart hooks are deprecated but still in the spec
				Prestart:        []specs.Hook{host("prestart")},
				CreateRuntime:   []specs.Hook{host("createRuntime")},
				CreateContainer: []specs.Hook{createContainer},
				StartContainer:  []specs.Hook{startContainer},
				Poststart:       []specs.Hook{host("poststart")},
				Poststop:        []specs.Hook{host("poststop")},
			}
		}))
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }
	content := func(name string) string {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(data))
	}

	pidFile := filepath.Join(t.TempDir(), "pid")
	ok(t, c.create("--pid-file", pidFile))
	pid := readPidFile(t, pidFile)
	ctrMnt, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	for _, k := range []string{"prestart", "createRuntime", "createContainer"} {
		if !exists(k + ".json") {
			t.Errorf("%s hook did not run at create", k)
			continue
		}
		st := readState(t, filepath.Join(dir, k+".json"))
		if st.ID != c.id || (st.Pid != pid && k != "createContainer") || st.Bundle != c.b.Dir {
			t.Errorf("%s hook state: %+v (want id %s pid %d)", k, st, c.id, pid)
		}
	}
	for _, k := range []string{"prestart", "createRuntime"} {
		if ns := content(k + ".ns"); ns != hostMnt {
			t.Errorf("%s hook ran in mount ns %s, want the runtime's %s", k, ns, hostMnt)
		}
		if v := content(k + ".env"); v != k {
			t.Errorf("%s hook env HOOK_VAR=%q", k, v)
		}
	}
	if ns := content("createContainer.ns"); ns != ctrMnt {
		t.Errorf("createContainer hook ran in mount ns %q, want the container's %s", ns, ctrMnt)
	}
	for _, k := range []string{"startContainer", "poststart", "poststop"} {
		if exists(k + ".json") {
			t.Errorf("%s hook ran at create", k)
		}
	}

	ok(t, c.do("start"))
	if !exists("startContainer.json") || !exists("poststart.json") {
		t.Fatalf("startContainer/poststart hooks did not run at start: %v", dirEntries(dir))
	}
	if ns := content("startContainer.ns"); ns != ctrMnt {
		t.Errorf("startContainer hook ran in mount ns %q, want the container's %s", ns, ctrMnt)
	}
	if st := readState(t, filepath.Join(dir, "poststart.json")); st.Pid != pid {
		t.Errorf("poststart state %+v", st)
	}
	// the startContainer hook ran before the process
	deadline := time.Now().Add(5 * time.Second)
	for content("seen-by-process") == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := content("seen-by-process"); got != ctrMnt {
		t.Errorf("process saw startContainer marker %q, want %q", got, ctrMnt)
	}
	if exists("poststop.json") {
		t.Error("poststop hook ran before delete")
	}

	ok(t, e.berth("kill", c.id, "KILL"))
	c.waitStatus("stopped")
	ok(t, c.do("delete"))
	if !exists("poststop.json") {
		t.Fatal("poststop hook did not run at delete")
	}
	if st := readState(t, filepath.Join(dir, "poststop.json")); st.ID != c.id || st.Status != "stopped" {
		t.Errorf("poststop state %+v", st)
	}
}

func TestHooksRun(t *testing.T) {
	// the same hooks through `run`
	e := newEnv(t)
	dir := t.TempDir()
	var hooks specs.Hooks
	mark := func(kind string) []specs.Hook {
		return []specs.Hook{shHook(fmt.Sprintf("echo %s >> %s/order", kind, dir))}
	}
	//lint:ignore SA1019 prestart hooks are deprecated but still in the spec
	hooks.Prestart, hooks.CreateRuntime, hooks.CreateContainer = mark("prestart"), mark("createRuntime"), mark("createContainer")
	hooks.StartContainer = []specs.Hook{shHook("echo startContainer >> /markers/order")}
	hooks.Poststart, hooks.Poststop = mark("poststart"), mark("poststop")
	c := e.ctr(bundle.WithArgs("sh", "-c", "echo process >> /markers/order"),
		bundle.WithMounts(specs.Mount{Destination: "/markers", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}}),
		bundle.WithSpec(func(s *specs.Spec) { s.Hooks = &hooks }))
	ok(t, c.run())
	data, _ := os.ReadFile(filepath.Join(dir, "order"))
	got := strings.Fields(string(data))
	// poststart runs after start; the process may write before or after it
	want1 := "prestart createRuntime createContainer startContainer process poststart poststop"
	want2 := "prestart createRuntime createContainer startContainer poststart process poststop"
	if s := strings.Join(got, " "); s != want1 && s != want2 {
		t.Errorf("hook order %q, want %q", s, want1)
	}
}

func TestPoststopHookFailure(t *testing.T) {
	// poststop failures are warnings: the container is deleted anyway
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("true"), bundle.WithSpec(func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{Poststop: []specs.Hook{shHook("echo poststop-failed >&2; exit 1")}}
	}))
	c.startDetached()
	c.waitStatus("stopped")
	ok(t, c.do("delete"))
	fails(t, c.do("state"), "does not exist")
}
