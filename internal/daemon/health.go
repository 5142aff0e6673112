package daemon

import (
	"context"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
)

// Docker's health check defaults and limits.
const (
	defaultProbeInterval = 30 * time.Second
	defaultProbeTimeout  = 30 * time.Second
	defaultProbeRetries  = 3
	maxHealthLog         = 5
	maxHealthOutput      = 4096
)

// healthMonitor runs a container's health check while it runs.
type healthMonitor struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startHealth starts the container's health checks, if it has any.
func (d *Daemon) startHealth(c *Container) {
	c.mu.Lock()
	hc := c.Config.Healthcheck
	if hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE" || c.health != nil {
		c.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(d.ctx)
	m := &healthMonitor{cancel: cancel, done: make(chan struct{})}
	c.health = m
	c.mu.Unlock()
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		defer close(m.done)
		d.healthLoop(ctx, c, hc)
	}()
}

// stopHealth stops the checks (the container stopped).
func (d *Daemon) stopHealth(c *Container) {
	c.mu.Lock()
	m := c.health
	c.health = nil
	c.mu.Unlock()
	if m != nil {
		m.cancel()
		<-m.done
	}
}

func (d *Daemon) healthLoop(ctx context.Context, c *Container, hc *container.HealthConfig) {
	interval := orDefault(hc.Interval, defaultProbeInterval)
	timeout := orDefault(hc.Timeout, defaultProbeTimeout)
	retries := hc.Retries
	if retries <= 0 {
		retries = defaultProbeRetries
	}
	startInterval := orDefault(hc.StartInterval, 5*time.Second)
	c.mu.Lock()
	started := c.State.StartedAt
	c.mu.Unlock()
	for {
		wait := interval
		inStart := hc.StartPeriod > 0 && time.Since(started) < hc.StartPeriod
		if inStart && hc.StartInterval > 0 {
			wait = startInterval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		res := d.probe(ctx, c, hc, timeout)
		if ctx.Err() != nil {
			return
		}
		d.recordProbe(c, res, retries, hc.StartPeriod)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// probe runs the check once as an exec in the container.
func (d *Daemon) probe(ctx context.Context, c *Container, hc *container.HealthConfig, timeout time.Duration) *container.HealthcheckResult {
	res := &container.HealthcheckResult{Start: time.Now()}
	var cmd []string
	switch hc.Test[0] {
	case "CMD":
		cmd = hc.Test[1:]
	case "CMD-SHELL":
		shell := []string(c.Config.Shell)
		if len(shell) == 0 {
			shell = []string{"/bin/sh", "-c"}
		}
		cmd = append(append([]string{}, shell...), hc.Test[1:]...)
	default:
		cmd = hc.Test
	}
	id, err := d.ExecCreate(ctx, c.ID, container.ExecCreateRequest{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		res.ExitCode, res.Output, res.End = -1, err.Error(), time.Now()
		return res
	}
	out := LimitedBuffer{Max: maxHealthOutput}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- d.ExecStart(pctx, id, &StreamConn{Out: &out, Err: &out}, false) }()
	e, _ := d.GetExec(id)
	// Probes are not exec sessions anyone inspects: forget them when done.
	defer d.dropExec(c, id)
	select {
	case err = <-errc:
	case <-pctx.Done():
		if e != nil {
			e.kill()
		}
		<-errc
		res.ExitCode = -1
		res.Output = "Health check exceeded timeout (" + timeout.String() + ")"
		res.End = time.Now()
		return res
	}
	res.End = time.Now()
	if err != nil {
		res.ExitCode, res.Output = -1, err.Error()
		return res
	}
	if e != nil {
		res.ExitCode = e.exitCodeValue()
	}
	res.Output = out.String()
	return res
}

// recordProbe updates the health state after a check.
func (d *Daemon) recordProbe(c *Container, res *container.HealthcheckResult, retries int, startPeriod time.Duration) {
	c.mu.Lock()
	h := c.State.Health
	if h == nil || !c.State.Running {
		c.mu.Unlock()
		return
	}
	old := h.Status
	h.Log = append(h.Log, res)
	if len(h.Log) > maxHealthLog {
		h.Log = h.Log[len(h.Log)-maxHealthLog:]
	}
	if res.ExitCode == 0 {
		h.FailingStreak = 0
		h.Status = container.Healthy
	} else if startPeriod > 0 && time.Since(c.State.StartedAt) < startPeriod && h.Status == container.Starting {
		// Failures during the start period do not count.
	} else {
		h.FailingStreak++
		if h.FailingStreak >= retries {
			h.Status = container.Unhealthy
		}
	}
	status := h.Status
	c.save(d)
	c.notify()
	c.mu.Unlock()
	if status != old {
		d.containerEvent(c, events.Action("health_status: "+string(status)), nil)
	}
}
