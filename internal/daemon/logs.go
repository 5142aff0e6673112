package daemon

import (
	"context"
	"io"
	"time"

	"berth/internal/errdefs"
	"berth/internal/logs"
)

// LogsOptions are GET /containers/{id}/logs' parameters.
type LogsOptions struct {
	Stdout, Stderr bool
	Follow         bool
	Timestamps     bool
	Tail           int // -1: all
	Since, Until   time.Time
}

// Logs writes a container's logs to w (stdcopy frames, raw for a TTY container). With
// Follow it keeps writing until the container stops or ctx ends. started is called before
// the first byte, with whether the stream is raw (TTY).
func (d *Daemon) Logs(ctx context.Context, ref string, opts LogsOptions, w io.Writer, started func(tty bool)) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	if !opts.Stdout && !opts.Stderr {
		return errdefs.Invalid("Bad parameters: you must choose at least one stream")
	}
	c.mu.Lock()
	path, tty := c.LogPath, c.Config.Tty
	driver := c.HostConfig.LogConfig.Type
	maxFiles := maxLogFiles(c)
	var done <-chan struct{}
	if opts.Follow {
		if t := c.run; t != nil && c.State.Running {
			done = t.exited
		} else {
			ch := make(chan struct{})
			close(ch)
			done = ch
		}
	}
	c.mu.Unlock()
	if path == "" {
		return errdefs.Invalid("configured logging driver does not support reading: %s", driver)
	}
	started(tty)
	write := logWriter(w, tty)
	flush := func() {
		if f, ok := w.(interface{ Flush() }); ok {
			f.Flush()
		}
	}
	lo := logs.Options{Tail: opts.Tail, Since: opts.Since, Until: opts.Until, Follow: opts.Follow, Stdout: opts.Stdout, Stderr: opts.Stderr, Done: done}
	err = logs.Read(ctx, path, maxFiles, lo, func(m logs.Message) error {
		line := m.Line
		if opts.Timestamps {
			line = append([]byte(m.Time.UTC().Format("2006-01-02T15:04:05.000000000Z")+" "), line...)
		}
		if err := write(m.Stream, line); err != nil {
			return err
		}
		if opts.Follow {
			flush()
		}
		return nil
	})
	flush()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// ReopenLog makes a running container's shim close its log file and open the path anew:
// kubelet rotates a CRI log by renaming it and asking for this.
func (d *Daemon) ReopenLog(ctx context.Context, ref string) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	t, running := c.run, c.State.Running
	c.mu.Unlock()
	if t == nil || !running {
		return errdefs.Conflict("container %s is not running", c.ID)
	}
	return t.shim.ReopenLog(ctx)
}
