package shim_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/shim"
	"berth/test/bundle"
)

// helperEnv makes the test binary a spawner (a stand-in for berthd): it spawns a shim with the
// JSON shim.Config in the variable, starts the container, prints "ready <shim pid>" and waits to
// be killed.
const helperEnv = "BERTH_SHIM_TEST_HELPER"

func spawnHelper() int {
	var cfg shim.Config
	if err := json.Unmarshal([]byte(os.Getenv(helperEnv)), &cfg); err != nil {
		fmt.Println("error", err)
		return 1
	}
	c, cmd, err := shim.Spawn(context.Background(), cfg)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	if _, err := c.Start(context.Background()); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("ready", cmd.Process.Pid)
	select {}
}

// TestShimOutlivesSpawner: the shim keeps the container running and logging when the process
// that spawned it dies (berthd crashing); a new client then stops and waits for it.
func TestShimOutlivesSpawner(t *testing.T) {
	f := prepare(t, []bundle.Option{bundle.WithArgs("sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.05; done")})
	cfgJSON, err := json.Marshal(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+string(cfgJSON))
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	shimPid := 0
	if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ready "); ok {
		shimPid, _ = strconv.Atoi(rest)
	}
	helper.Process.Kill()
	helper.Wait()
	if shimPid == 0 {
		t.Fatalf("helper: %q, %v", line, err)
	}
	c := shim.Connect(f.cfg.Dir)
	reaped := make(chan struct{})
	go func() {
		// The shim is reparented to us, the nearest child subreaper.
		var ws syscall.WaitStatus
		for {
			if _, err := syscall.Wait4(shimPid, &ws, 0, nil); err != syscall.EINTR {
				break
			}
		}
		close(reaped)
	}()
	t.Cleanup(func() {
		c.Kill(context.Background(), syscall.SIGKILL, true)
		select {
		case <-reaped:
		case <-time.After(timeout):
			t.Errorf("shim %d did not exit", shimPid)
			syscall.Kill(shimPid, syscall.SIGKILL)
			<-reaped
		}
	})
	if _, ppid := procState(shimPid); ppid != os.Getpid() {
		t.Errorf("shim %d has parent %d after its spawner died, want us (%d)", shimPid, ppid, os.Getpid())
	}
	n := len(readLog(t, f.cfg.LogPath))
	waitFor(t, "log lines written after the spawner died", func() bool { return len(readLog(t, f.cfg.LogPath)) > n+5 })
	if st, err := c.State(ctx(t)); err != nil || st.Status != shim.StatusRunning {
		t.Fatalf("state %+v, %v", st, err)
	}
	if err := c.Kill(ctx(t), syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	e, err := c.Wait(ctx(t))
	if err != nil || e.Code != 137 {
		t.Errorf("wait: %+v, %v; want 137", e, err)
	}
	<-reaped
	msgs := messages(readLog(t, f.cfg.LogPath), "stdout")
	for i, m := range msgs {
		if want := fmt.Sprintf("tick-%d\n", i); m != want {
			t.Fatalf("log message %d is %q, want %q", i, m, want)
		}
	}
}
