package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/oci"
)

// CreateRequest is POST /containers/create.
type CreateRequest struct {
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
	Networking *network.NetworkingConfig
	// Build, when set, is a build step's state to run on instead of an image (a RUN of
	// internal/build): the container's rootfs is a snapshot over the state's layers and
	// its config is merged with the state's. Config.Image is then only a display name.
	Build *image.BuildState
	// Holder makes the holder of a CRI pod sandbox instead of a container of an image: an
	// empty rootfs with berth-init mounted at /pause, run as `/pause --pause` (it only keeps
	// the pod's namespaces and reaps). Config.Image is then only a display name.
	Holder bool
	// Extra is the front end's own record of the container (Container.Extra).
	Extra []byte
	// CRILogPath, when set, is where the shim writes the container's output in the CRI's
	// log format (kubelet reads it there); HostConfig.LogConfig should then be "none".
	CRILogPath string
}

// holderPath is where a sandbox holder's berth-init is mounted.
const holderPath = "/pause"

// CreateResult is the new container's ID and the warnings for the user.
type CreateResult struct {
	ID       string
	Warnings []string
}

// Create makes a container: resolves the image, merges its config, validates everything
// that can be validated before start, prepares and mounts the container's snapshot,
// creates its volumes and writes its record. On any error nothing is left behind.
func (d *Daemon) Create(ctx context.Context, req CreateRequest) (res CreateResult, err error) {
	if req.Config == nil {
		return res, errdefs.Invalid("config cannot be empty in order to create a container")
	}
	cfg := *req.Config
	hc := &container.HostConfig{}
	if req.HostConfig != nil {
		h := *req.HostConfig
		hc = &h
	}
	if cfg.Image == "" && req.Build == nil && !req.Holder {
		return res, errdefs.Invalid("no image specified")
	}
	if err := oci.ExposeConflict(&cfg, hc); err != nil {
		return res, err
	}
	var (
		imageID digest.Digest
		top     digest.Digest
	)
	if req.Holder {
		cfg.Entrypoint, cfg.Cmd = []string{holderPath, "--pause"}, nil
		hc.Binds = append(slices.Clone(hc.Binds), d.cfg.InitBinary+":"+holderPath+":ro")
	} else if st := req.Build; st != nil {
		mergeImageConfig(&cfg, &dockerspec.DockerOCIImageConfig{ImageConfig: st.Config.Config, DockerOCIImageConfigExt: st.Ext})
		imageID, top = st.Base, st.TopLayer()
	} else {
		im, err := d.images.Resolve(cfg.Image)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				// dockerd names the image with its tag: "No such image: busybox:latest".
				if ref, perr := image.ParseRef(cfg.Image); perr == nil {
					return res, errdefs.NotFound("No such image: %s", image.Familiar(ref.String()))
				}
			}
			return res, err
		}
		mergeImageConfig(&cfg, &dockerspec.DockerOCIImageConfig{ImageConfig: im.Config.Config, DockerOCIImageConfigExt: im.ConfigExt})
		imageID, top = im.ID, im.TopLayer()
	}
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		return res, errdefs.Invalid("no command specified")
	}
	if err := d.defaultHostConfig(hc); err != nil {
		return res, err
	}
	if err := oci.Validate(&cfg, hc, nil); err != nil {
		return res, err
	}
	warnings := oci.Adapt(hc, nil)
	if len(hc.PortBindings) > 0 || hc.PublishAllPorts {
		switch {
		case hc.NetworkMode == "host":
			// Adapt has warned that they are discarded.
			hc.PortBindings, hc.PublishAllPorts = nil, false
		case hc.NetworkMode.IsContainer():
			return res, errdefs.Invalid("conflicting options: port publishing and the container type network mode")
		}
	}
	if hc.AutoRemove && hc.RestartPolicy.Name != "" && hc.RestartPolicy.Name != container.RestartPolicyDisabled {
		return res, errdefs.Invalid("can't create 'AutoRemove' container with restart policy")
	}
	mounts, err := parseMounts(&cfg, hc)
	if err != nil {
		return res, err
	}

	c := &Container{
		ID:         newID(),
		Created:    time.Now().UTC(),
		Config:     &cfg,
		HostConfig: hc,
		Image:      imageID.String(),
		ImageName:  req.Config.Image,
		State:      State{Status: container.StateCreated},
		Namespace:  NamespaceOf(ctx),
		Extra:      req.Extra,
		CRILogPath: req.CRILogPath,
		execs:      map[string]*Exec{},
	}
	c.Path, c.Args = commandOf(&cfg)
	if cfg.Hostname == "" && hc.NetworkMode != "host" && !hc.NetworkMode.IsContainer() {
		cfg.Hostname = ShortID(c.ID)
	}
	if err := d.configureEndpoints(c, req.Networking); err != nil {
		return res, err
	}
	if bridged(hc.NetworkMode) {
		if _, err := d.wantedPorts(c); err != nil {
			return res, err
		}
	}
	d.mu.Lock()
	name := req.Name
	if name == "" {
		name = d.generateName()
	}
	if err := d.reserveName(name, c.ID); err != nil {
		d.mu.Unlock()
		return res, err
	}
	c.Name = "/" + strings.TrimPrefix(name, "/")
	d.mu.Unlock()

	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			d.mu.Lock()
			delete(d.names, c.Name)
			d.mu.Unlock()
		}
	}()
	dir := c.dir(d)
	if err = os.Mkdir(dir, 0o710); err != nil {
		return res, fmt.Errorf("create container directory: %w", err)
	}
	undo = append(undo, func() { os.RemoveAll(dir) })
	lease := image.Lease{ID: c.ID, Image: imageID, Snapshot: c.ID}
	if req.Build != nil {
		lease.Image = "" // the base image may go while the build runs; the snapshot keeps the layers
	}
	if err = d.images.AddLease(lease); err != nil {
		return res, err
	}
	undo = append(undo, func() { d.images.RemoveLease(c.ID) })
	if _, err = d.images.Snaps.Prepare(ctx, c.ID, top); err != nil {
		return res, fmt.Errorf("prepare rootfs: %w", err)
	}
	undo = append(undo, func() { d.images.Snaps.Remove(c.ID) })
	c.Rootfs = filepath.Join(dir, "rootfs")
	if err = os.Mkdir(c.Rootfs, 0o755); err != nil {
		return res, err
	}
	if err = d.images.Snaps.Mount(c.ID, c.Rootfs); err != nil {
		return res, fmt.Errorf("mount rootfs: %w", err)
	}
	undo = append(undo, func() { unix.Unmount(c.Rootfs, unix.MNT_DETACH) })
	created, err := d.createVolumes(ctx, c, mounts)
	undo = append(undo, func() { d.removeVolumes(created) })
	if err != nil {
		return res, err
	}
	c.Mounts = mounts
	if hc.LogConfig.Type == "json-file" || hc.LogConfig.Type == "local" {
		c.LogPath = filepath.Join(dir, c.ID+"-json.log")
	}
	if err = d.writeNetworkFiles(c); err != nil {
		return res, err
	}
	c.mu.Lock()
	err = c.saveSync(d)
	c.mu.Unlock()
	if err != nil {
		return res, err
	}
	d.mu.Lock()
	d.containers[c.ID] = c
	d.mu.Unlock()
	d.containerEvent(c, events.ActionCreate, nil)
	if warnings == nil {
		warnings = []string{}
	}
	return CreateResult{ID: c.ID, Warnings: warnings}, nil
}

// removeLeftoverCreate removes what a create that died half-way left: the mount, the
// snapshot, the lease and the directory.
func (d *Daemon) removeLeftoverCreate(id string) {
	dir := filepath.Join(d.root, "containers", id)
	unix.Unmount(filepath.Join(dir, "rootfs"), unix.MNT_DETACH)
	d.images.Snaps.Remove(id)
	d.images.RemoveLease(id)
	os.RemoveAll(dir)
}

// mergeImageConfig folds the image's config into the container's, as dockerd does: the
// user's values win, lists of ports, volumes and labels are joined, environment variables
// are overridden by name.
func mergeImageConfig(c *container.Config, im *dockerspec.DockerOCIImageConfig) {
	if c.User == "" {
		c.User = im.User
	}
	if len(im.ExposedPorts) > 0 {
		if c.ExposedPorts == nil {
			c.ExposedPorts = network.PortSet{}
		}
		for p := range im.ExposedPorts {
			if port, err := network.ParsePort(p); err == nil {
				if _, ok := c.ExposedPorts[port]; !ok {
					c.ExposedPorts[port] = struct{}{}
				}
			}
		}
	}
	if len(c.Env) == 0 {
		c.Env = slices.Clone(im.Env)
	} else {
		var env []string
		for _, ie := range im.Env {
			k, _, _ := strings.Cut(ie, "=")
			if !slices.ContainsFunc(c.Env, func(e string) bool { ek, _, _ := strings.Cut(e, "="); return ek == k }) {
				env = append(env, ie)
			}
		}
		c.Env = append(env, c.Env...)
	}
	if len(im.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range im.Labels {
			labels[k] = v
		}
		for k, v := range c.Labels {
			labels[k] = v
		}
		c.Labels = labels
	}
	if len(c.Entrypoint) == 0 {
		if len(c.Cmd) == 0 {
			c.Cmd = slices.Clone(im.Cmd)
		}
		if c.Entrypoint == nil {
			c.Entrypoint = slices.Clone(im.Entrypoint)
		}
	}
	if c.Healthcheck == nil {
		c.Healthcheck = im.Healthcheck
	} else if len(c.Healthcheck.Test) == 0 && im.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = im.Healthcheck.Test
		if h.Interval == 0 {
			h.Interval = im.Healthcheck.Interval
		}
		if h.Timeout == 0 {
			h.Timeout = im.Healthcheck.Timeout
		}
		if h.StartPeriod == 0 {
			h.StartPeriod = im.Healthcheck.StartPeriod
		}
		if h.Retries == 0 {
			h.Retries = im.Healthcheck.Retries
		}
		c.Healthcheck = &h
	}
	if c.WorkingDir == "" {
		c.WorkingDir = im.WorkingDir
	}
	if len(im.Volumes) > 0 {
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		for v := range im.Volumes {
			c.Volumes[v] = struct{}{}
		}
	}
	if c.StopSignal == "" {
		c.StopSignal = im.StopSignal
	}
	if len(c.Shell) == 0 {
		c.Shell = im.Shell
	}
	if len(c.Entrypoint) == 1 && c.Entrypoint[0] == "" {
		c.Entrypoint = nil
	}
}

// commandOf is the container's Path and Args.
func commandOf(c *container.Config) (string, []string) {
	argv := append(slices.Clone([]string(c.Entrypoint)), c.Cmd...)
	if len(argv) == 0 {
		return "", nil
	}
	return argv[0], argv[1:]
}

// defaultHostConfig fills what the user left out with the daemon's defaults.
func (d *Daemon) defaultHostConfig(hc *container.HostConfig) error {
	if hc.LogConfig.Type == "" {
		hc.LogConfig.Type = d.cfg.LogDriver
		if len(hc.LogConfig.Config) == 0 && len(d.cfg.LogOpts) > 0 {
			hc.LogConfig.Config = map[string]string{}
			for k, v := range d.cfg.LogOpts {
				hc.LogConfig.Config[k] = v
			}
		}
	}
	if err := checkLogConfig(hc.LogConfig.Type, hc.LogConfig.Config); err != nil {
		return errdefs.InvalidWrap(err, "invalid log config")
	}
	if hc.NetworkMode == "" || hc.NetworkMode == "default" {
		hc.NetworkMode = "bridge"
		if d.cfg.Bridge == "none" {
			hc.NetworkMode = "none"
		}
	}
	if hc.RestartPolicy.Name == "" {
		hc.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	if hc.ShmSize == 0 && d.cfg.DefaultShmSize != "" {
		hc.ShmSize, _ = ramInBytes(d.cfg.DefaultShmSize)
	}
	return nil
}
