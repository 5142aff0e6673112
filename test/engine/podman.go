package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PodmanOptions say how to set up a private podman.
type PodmanOptions struct {
	// Dir is podman's private directory (made when missing): containers.conf, storage.conf,
	// the store (root), temporary files (tmp), network configuration (networks), the
	// configuration home (config) and the events log.
	Dir string
	// RunRoot is the --runroot (Dir/run when empty). podman takes at most 50 bytes.
	RunRoot string
	// Events keeps podman's events in Dir/events.log; without it none are kept.
	Events bool
	// Runtime is the OCI runtime's path (--runtime), when set.
	Runtime string
	// Ulimits are the containers' default_ulimits ("nofile=20000:20000"), when set.
	Ulimits []string
	// Env is the base environment of podman (BaseEnv() when nil).
	Env []string
}

// Podman is a private podman installation: its own store, run root, temporary directory,
// network configuration and containers.conf and storage.conf, so that the host's do not
// matter, with the cgroupfs manager and the overlay driver.
type Podman struct {
	Dir       string
	Root      string // --root, the store
	RunRoot   string // --runroot
	Tmp       string // --tmpdir and TMPDIR
	EventsLog string // "" without Events
	// Env is the environment podman runs in: the options' Env with CONTAINERS_CONF,
	// CONTAINERS_STORAGE_CONF, XDG_CONFIG_HOME and TMPDIR.
	Env []string
	// Flags are the global flags that point podman at its private directories (Args).
	Flags []string
}

// NewPodman writes podman's private configuration and makes its directories.
func NewPodman(o PodmanOptions) (*Podman, error) {
	dir := o.Dir
	p := &Podman{Dir: dir, Root: filepath.Join(dir, "root"), RunRoot: o.RunRoot, Tmp: filepath.Join(dir, "tmp")}
	if p.RunRoot == "" {
		p.RunRoot = filepath.Join(dir, "run")
	}
	// podman refuses a longer run root (its conmon socket paths must fit).
	if len(p.RunRoot) > 50 {
		return nil, fmt.Errorf("podman run root %s is %d bytes, podman takes at most 50: use a shorter directory", p.RunRoot, len(p.RunRoot))
	}
	networks, config := filepath.Join(dir, "networks"), filepath.Join(dir, "config")
	for _, d := range []string{p.Root, p.RunRoot, p.Tmp, networks, config} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	var conf strings.Builder
	if len(o.Ulimits) > 0 {
		fmt.Fprintf(&conf, "[containers]\ndefault_ulimits = [\"%s\"]\n", strings.Join(o.Ulimits, `", "`))
	}
	events := "none"
	conf.WriteString("[engine]\ncgroup_manager = \"cgroupfs\"\n")
	if o.Events {
		events, p.EventsLog = "file", filepath.Join(dir, "events.log")
		fmt.Fprintf(&conf, "events_logger = \"file\"\nevents_logfile_path = %q\n", p.EventsLog)
	} else {
		conf.WriteString("events_logger = \"none\"\n")
	}
	fmt.Fprintf(&conf, "image_copy_tmp_dir = %q\n[network]\nnetwork_config_dir = %q\n", p.Tmp, networks)
	storage := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n", p.Root, p.RunRoot)
	containersConf, storageConf := filepath.Join(dir, "containers.conf"), filepath.Join(dir, "storage.conf")
	if err := os.WriteFile(containersConf, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(storageConf, []byte(storage), 0o644); err != nil {
		return nil, err
	}
	env := o.Env
	if env == nil {
		env = BaseEnv()
	}
	p.Env = append(append([]string{}, env...), "CONTAINERS_CONF="+containersConf,
		"CONTAINERS_STORAGE_CONF="+storageConf, "XDG_CONFIG_HOME="+config, "TMPDIR="+p.Tmp)
	p.Flags = []string{
		"--root", p.Root, "--runroot", p.RunRoot, "--tmpdir", p.Tmp, "--network-config-dir", networks,
		"--events-backend", events, "--cgroup-manager", "cgroupfs", "--storage-driver", "overlay",
	}
	if o.Runtime != "" {
		p.Flags = append(p.Flags, "--runtime", o.Runtime)
	}
	return p, nil
}

// Args are Flags followed by args: a podman command line on the private store.
func (p *Podman) Args(args ...string) []string {
	return append(append([]string{}, p.Flags...), args...)
}

// Reset drops the whole store without podman: it unmounts what podman left mounted in Root
// and RunRoot (in this mount namespace), removes them and Tmp, and makes them again, empty.
// It returns the number of mounts it found.
func (p *Podman) Reset() (mounts int, err error) {
	for _, d := range []string{p.Root, p.RunRoot} {
		n, left := UnmountUnder(d)
		mounts += n
		if len(left) > 0 {
			return mounts, fmt.Errorf("cannot unmount %q", left)
		}
	}
	for _, d := range []string{p.Root, p.RunRoot, p.Tmp} {
		if err := os.RemoveAll(d); err != nil {
			return mounts, err
		}
		if err := os.Mkdir(d, 0o700); err != nil {
			return mounts, err
		}
	}
	return mounts, nil
}
