package daemon

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"berth/internal/atomicfile"
	"berth/internal/network/firewall"
)

// Container is one container: its record (persisted as config.v2.json) and what the daemon
// holds about it while it runs.
type Container struct {
	ID         string
	Name       string // with Docker's leading "/"
	Created    time.Time
	Path       string
	Args       []string
	Config     *container.Config
	HostConfig *container.HostConfig
	// Image is the image ID (sha256:...), ImageName what the user asked for.
	Image     string
	ImageName string
	State     State
	// RestartCount counts restarts by the restart policy since the last manual start.
	RestartCount         int
	HasBeenStartedBefore bool
	// ManuallyStopped: stopped by the user (stop, kill): unless-stopped stays down, and
	// always restarts only with the daemon.
	ManuallyStopped bool
	Mounts          []MountPoint
	LogPath         string
	HostnamePath    string
	HostsPath       string
	ResolvConfPath  string
	// Namespace is the front end that owns the container (namespace.go); "" is Docker's.
	Namespace string `json:",omitempty"`
	// Extra is the owning front end's own record of the container (the CRI's metadata,
	// annotations and log path), saved and removed with it.
	Extra json.RawMessage `json:",omitempty"`
	// CRILogPath is where the shim writes the output in the CRI's log format (CRI
	// containers; LogPath is then empty).
	CRILogPath string `json:",omitempty"`
	// Rootfs is where the container's snapshot is mounted while the container exists.
	Rootfs string
	// Cgroup is the container's cgroup path as the runtime got it (cgroupsPath).
	Cgroup string
	// RemoveVolumes: a removal under way also removes the anonymous volumes (rm -v); kept
	// so that a removal interrupted by a crash is finished the same way.
	RemoveVolumes bool `json:",omitempty"`
	// Networks are the container's endpoints on bridge networks, by network name.
	Networks map[string]*Endpoint `json:",omitempty"`
	// NetNS is the network namespace berthd made for the running container (bridge modes
	// and none).
	NetNS string `json:",omitempty"`
	// Ports are the host ports published while it runs.
	Ports []firewall.PortMapping `json:",omitempty"`

	mu sync.Mutex `json:"-"`
	// op serializes lifecycle operations (start, stop, kill, restart, pause, rm, update).
	op sync.Mutex `json:"-"`
	// changed is closed and replaced on every state change (wait conditions watch it).
	changed chan struct{} `json:"-"`
	// exits counts exits seen by this daemon (wait next-exit).
	exits   int          `json:"-"`
	removed bool         `json:"-"`
	run     *runningTask `json:"-"`
	// attaches are attach streams waiting for the container's next start.
	attaches []*pendingAttach `json:"-"`
	health   *healthMonitor   `json:"-"`
	// restarting: docker restart is under way (its stop must not auto-remove the container).
	restarting bool `json:"-"`
	// backoff counts restarts by the policy since the container last ran 10 s.
	backoff int              `json:"-"`
	execs   map[string]*Exec `json:"-"`
}

// State is the container's state as inspect shows it.
type State struct {
	Status     container.ContainerState
	Running    bool
	Paused     bool
	Restarting bool
	OOMKilled  bool
	Dead       bool
	Removing   bool
	Pid        int
	ExitCode   int
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
	Health     *container.Health `json:",omitempty"`
}

// MountPoint is a mount of the container: a bind, a volume or a tmpfs.
type MountPoint struct {
	Type        mount.Type
	Name        string // volume name
	Source      string // host path (bind, or the volume's data)
	Destination string
	Driver      string
	Mode        string
	RW          bool
	Propagation mount.Propagation
	// Anonymous volumes are removed with the container by rm -v (and --rm).
	Anonymous bool
	// Options are tmpfs options and bind flags, for the spec.
	Options []string `json:",omitempty"`
	// CopyUp: copy the image's content at Destination into a new empty volume on first start.
	CopyUp bool `json:",omitempty"`
	// NonRecursive bind (--mount bind-recursive=disabled).
	NonRecursive bool `json:",omitempty"`
	// ReadOnlyNonRecursive: a read-only bind whose submounts stay writable (--mount
	// bind-recursive=writable).
	ReadOnlyNonRecursive bool `json:",omitempty"`
}

func (c *Container) dir(d *Daemon) string { return filepath.Join(d.root, "containers", c.ID) }

// save writes the record atomically after a state change. It does not fsync: a state only
// matters while the machine is up (after a crash of the machine every container is dead and
// reconcile finds its shim gone), and the rename keeps the record whole. Called with c.mu held.
func (c *Container) save(d *Daemon) error { return c.write(d, false) }

// saveSync writes the record and fsyncs it: for a new record and for changes of its
// configuration (name, resources), which must survive a crash of the machine.
func (c *Container) saveSync(d *Daemon) error { return c.write(d, true) }

func (c *Container) write(d *Daemon, sync bool) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("container %s: encode record: %w", c.ID, err)
	}
	return atomicfile.WriteFile(filepath.Join(c.dir(d), "config.v2.json"), b, 0o600, atomicfile.Durability(sync))
}

// notify wakes the waiters of a state change. Called with c.mu held.
func (c *Container) notify() {
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
}

// watch returns the channel closed on the next state change. Called with c.mu held.
func (c *Container) watch() <-chan struct{} {
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

// ShortID is the 12-character ID Docker shows.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// statusText is the Status column of docker ps ("Up 3 seconds", "Exited (0) 2 minutes ago").
func (s *State) statusText(now time.Time) string {
	switch {
	case s.Restarting:
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, humanDuration(now.Sub(s.FinishedAt)))
	case s.Running && s.Paused:
		return fmt.Sprintf("Up %s (Paused)", humanDuration(now.Sub(s.StartedAt)))
	case s.Running:
		up := "Up " + humanDuration(now.Sub(s.StartedAt))
		if s.Health != nil {
			switch s.Health.Status {
			case container.Starting:
				up += " (health: starting)"
			case container.Healthy:
				up += " (healthy)"
			case container.Unhealthy:
				up += " (unhealthy)"
			}
		}
		return up
	case s.Removing:
		return "Removal In Progress"
	case s.Dead:
		return "Dead"
	case s.StartedAt.IsZero():
		return "Created"
	case s.FinishedAt.IsZero():
		return ""
	default:
		return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, humanDuration(now.Sub(s.FinishedAt)))
	}
}

// humanDuration is docker's units.HumanDuration.
func humanDuration(d time.Duration) string {
	if seconds := int(d.Seconds()); seconds < 1 {
		return "Less than a second"
	} else if seconds == 1 {
		return "1 second"
	} else if seconds < 60 {
		return fmt.Sprintf("%d seconds", seconds)
	} else if minutes := int(d.Minutes()); minutes == 1 {
		return "About a minute"
	} else if minutes < 60 {
		return fmt.Sprintf("%d minutes", minutes)
	} else if hours := int(d.Hours() + 0.5); hours == 1 {
		return "About an hour"
	} else if hours < 48 {
		return fmt.Sprintf("%d hours", hours)
	} else if hours < 24*7*2 {
		return fmt.Sprintf("%d days", hours/24)
	} else if hours < 24*30*2 {
		return fmt.Sprintf("%d weeks", hours/24/7)
	} else if hours < 24*365*2 {
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}
