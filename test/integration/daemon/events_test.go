package daemon_test

import (
	"bufio"
	"context"
	"strings"
	"testing"

	"berth/test/berthtest"
)

// TestEvents: docker events replayed with --since/--until, filtered by type, event,
// container, image, volume and label, and followed live.
func TestEvents(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})

	t.Run("SinceUntil", func(t *testing.T) {
		c := d.on(t)
		since := now()
		id := c.must("create", "--name", "ev", "--label", "evlabel=1", image, "sh", "-c", "exit 2")
		c.must("start", "ev")
		c.must("wait", "ev")
		c.must("rm", "ev")
		until := now()
		format := "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"
		got := fields(c.must("events", "--since", since, "--until", until, "--format", format))
		want(t, "events between --since and --until", strings.Join(got, ", "), "container create ev, container start ev, container die ev, container destroy ev")
		got = fields(c.must("events", "--since", since, "--until", until, "--filter", "type=container", "--filter", "event=die",
			"--format", "{{.Actor.ID}} {{.Action}} {{.Actor.Attributes.exitCode}} {{.Actor.Attributes.image}} {{.Actor.Attributes.evlabel}}"))
		want(t, "--filter type=container --filter event=die", strings.Join(got, ", "), id+" die 2 busybox 1")
		got = fields(c.must("events", "--since", since, "--until", until, "--filter", "event=create", "--filter", "event=destroy", "--format", "{{.Action}}"))
		want(t, "two event filters", strings.Join(got, ","), "create,destroy")
		got = fields(c.must("events", "--since", since, "--until", until, "--filter", "container="+id[:12], "--filter", "event=start", "--format", "{{.Action}}"))
		want(t, "--filter container=<short id>", strings.Join(got, ","), "start")
		got = fields(c.must("events", "--since", since, "--until", until, "--filter", "label=evlabel=1", "--format", "{{.Action}}"))
		want(t, "--filter label", len(got), 4)
		got = fields(c.must("events", "--since", since, "--until", until, "--filter", "type=image"))
		want(t, "--filter type=image", len(got), 0)
		// --until alone ends at once with the past; nothing after until.
		got = fields(c.must("events", "--since", until, "--until", now()))
		want(t, "events after everything", len(got), 0)
		var js struct {
			Type, Action string
			Actor        struct{ ID string }
			TimeNano     int64 `json:"timeNano"`
		}
		line := c.must("events", "--since", since, "--until", until, "--filter", "event=create", "--format", "{{json .}}")
		if err := jsonUnmarshal(line, &js); err != nil || js.Type != "container" || js.Action != "create" || js.Actor.ID != id || js.TimeNano == 0 {
			t.Errorf("events --format '{{json .}}' = %s (%v)", line, err)
		}
		c.fails(1, "invalid filter", "events", "--since", since, "--until", until, "--filter", "bogus=1")
	})

	t.Run("Live", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("live")
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		// By label: a name filter would miss the events that carry the other name.
		cmd := c.d.Cmd(ctx, "events", "--filter", "label=evlive=1", "--format", "{{.Action}}")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// The subscription is live once berthd counts the listener.
		c.waitFor("the events listener", func() bool {
			out, _ := c.quiet("info", "--format", "{{.NEventsListener}}")
			return out != "" && out != "0"
		})
		c.must("run", "-d", "--name", "live", "--label", "evlive=1", image, "sh", "-c", `trap "exit 0" TERM; while true; do sleep 0.05; done`)
		c.waitLooping("live")
		c.must("pause", "live")
		c.must("unpause", "live")
		c.must("rename", "live", "live2")
		c.must("rename", "live2", "live")
		c.must("exec", "live", "true")
		c.must("stop", "live")
		var got []string
		for l := range lines {
			got = append(got, l)
			if l == "stop" {
				break
			}
		}
		want(t, "live events", strings.Join(got, ","), "create,start,pause,unpause,rename,rename,exec_create: true,exec_start: true,exec_die,kill,die,stop")
	})

	t.Run("ImagesAndVolumes", func(t *testing.T) {
		c := d.on(t)
		since := now()
		c.must("tag", image, "evtag:1")
		c.must("rmi", "evtag:1")
		c.must("volume", "create", "evvol")
		c.must("volume", "rm", "evvol")
		until := now()
		got := fields(c.must("events", "--since", since, "--until", until, "--filter", "type=image", "--format", "{{.Action}} {{.Actor.Attributes.name}}"))
		want(t, "image events", strings.Join(got, ", "), "tag evtag:1, untag evtag:1")
		got = fields(c.must("events", "--since", since, "--until", until, "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}"))
		want(t, "volume events", strings.Join(got, ", "), "create evvol, destroy evvol")
		got = fields(c.must("events", "--since", since, "--until", until, "--filter", "volume=evvol", "--format", "{{.Action}}"))
		want(t, "--filter volume=", strings.Join(got, ","), "create,destroy")
	})
}
