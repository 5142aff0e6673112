package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"

	"berth/internal/image"
)

// BuildStep is one RUN of a build, as internal/build asks for it.
type BuildStep struct {
	// State is the build state the container runs on.
	State *image.BuildState
	// Config has the step's command, environment, user, working directory; Image is
	// only the name shown by docker ps.
	Config *container.Config
	// HostConfig has the build's network mode, resources and cgroup parent.
	HostConfig *container.HostConfig
	// Output gets the command's stdout and stderr, interleaved as they come.
	Output io.Writer
	// Started is called with the container's ID once it exists.
	Started func(id string)
	// Dirs are directories to make in the rootfs before the command runs (the image's
	// VOLUME paths, which a RUN may write to).
	Dirs []string
}

// RunBuildStep runs a build step's command in a container made over the step's state and
// waits for it to exit. The container is left (stopped) for the caller to commit its
// snapshot (its ID is the snapshot key) and then to remove with RemoveBuildContainer, on
// success and failure alike; an error with an ID means the container exists and must be
// removed.
func (d *Daemon) RunBuildStep(ctx context.Context, s BuildStep) (id string, exitCode int, err error) {
	cfg := *s.Config
	cfg.AttachStdout, cfg.AttachStderr, cfg.Tty, cfg.OpenStdin = true, true, false, false
	hc := container.HostConfig{}
	if s.HostConfig != nil {
		hc = *s.HostConfig
	}
	hc.LogConfig = container.LogConfig{Type: "none"}
	hc.AutoRemove = false
	hc.RestartPolicy = container.RestartPolicy{}
	res, err := d.Create(ctx, CreateRequest{Config: &cfg, HostConfig: &hc, Build: s.State})
	if err != nil {
		return "", 0, err
	}
	id = res.ID
	if s.Started != nil {
		s.Started(id)
	}
	c, err := d.Get(id)
	if err != nil {
		return id, 0, err
	}
	for _, dir := range s.Dirs {
		if err := pathrs.MkdirAll(c.Rootfs, dir, 0o755); err != nil {
			return id, 0, fmt.Errorf("make %s in the rootfs: %w", dir, err)
		}
	}
	out := &lockedWriter{w: s.Output}
	pr, pw := io.Pipe()
	demuxed := make(chan struct{})
	go func() {
		defer close(demuxed)
		_, err := stdcopy.StdCopy(out, out, pr)
		pr.CloseWithError(err)
	}()
	a := &pendingAttach{opts: AttachOptions{Stdout: true, Stderr: true, Stream: true}, conn: &writerConn{w: pw}, done: make(chan error, 1)}
	c.mu.Lock()
	c.attaches = append(c.attaches, a)
	c.mu.Unlock()
	finish := func() {
		// The streams end when the process exits (or at once if it never started).
		select {
		case <-a.done:
		case <-time.After(5 * time.Second):
		}
		pw.Close()
		<-demuxed
	}
	if err := d.Start(ctx, id); err != nil {
		a.finish(nil)
		finish()
		return id, 0, err
	}
	wr, err := d.Wait(ctx, id, container.WaitConditionNotRunning, nil)
	finish()
	if err != nil {
		return id, 0, err
	}
	if wr.Error != "" {
		return id, 0, fmt.Errorf("wait: %s", wr.Error)
	}
	return id, int(wr.StatusCode), nil
}

// RemoveBuildContainer removes a build step's container (and its snapshot), killing it
// first if it still runs.
func (d *Daemon) RemoveBuildContainer(id string) error {
	// A build that was cancelled still cleans up: not the build's context.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return d.Remove(ctx, id, RemoveOptions{Force: true})
}

// BuildLabel marks a build step's container.
const BuildLabel = "com.berth.build"

// removeBuildLeftovers removes what builds of an earlier berthd left when it died: their
// RUN containers, their COPY snapshots (leases "build-*") and their contexts.
func (d *Daemon) removeBuildLeftovers() {
	for _, c := range d.List() {
		c.mu.Lock()
		isStep := c.Config != nil && c.Config.Labels[BuildLabel] != ""
		c.mu.Unlock()
		if isStep {
			d.log.Info("removing a build container of an interrupted build", "id", c.ID)
			if err := d.RemoveBuildContainer(c.ID); err != nil {
				d.log.Warn("remove build container", "id", c.ID, "err", err)
			}
		}
	}
	if ls, err := d.images.Leases(); err == nil {
		for _, l := range ls {
			if !strings.HasPrefix(l.ID, "build-") {
				continue
			}
			if l.Snapshot != "" {
				d.images.Snaps.Remove(l.Snapshot)
			}
			d.images.RemoveLease(l.ID)
		}
	}
	if err := os.RemoveAll(filepath.Join(d.root, "build")); err != nil {
		d.log.Warn("remove build contexts", "err", err)
	}
}

// writerConn is a Conn that only takes output: a build step's attach.
type writerConn struct {
	w io.WriteCloser
}

func (c *writerConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (c *writerConn) Write(b []byte) (int, error) { return c.w.Write(b) }
func (c *writerConn) Close() error                { return nil }
func (c *writerConn) CloseWrite() error           { return nil }

// lockedWriter serializes stdout and stderr writes to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
