package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"berth/internal/cli/opts"
)

// The --pull values of run and create.
const (
	pullAlways  = "always"
	pullMissing = "missing"
	pullNever   = "never"
)

// createOptions are the flags run and create share besides the container's.
type createOptions struct {
	name     string
	platform string
	pull     string
	quiet    bool
}

func addCreateFlags(fs *pflag.FlagSet, o *createOptions, run bool) {
	fs.StringVar(&o.name, "name", "", "Assign a name to the container")
	verb := "creating"
	if run {
		verb = "running"
	}
	fs.StringVar(&o.pull, "pull", pullMissing, fmt.Sprintf(`Pull image before %s ("%s", "%s", "%s")`, verb, pullAlways, pullMissing, pullNever))
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress the pull output")
	fs.StringVar(&o.platform, "platform", os.Getenv("DOCKER_DEFAULT_PLATFORM"), "Set platform if server is multi-platform capable")
	fs.Bool("disable-content-trust", true, "Skip image verification")
	addHelpFlag(fs)
}

func validatePull(p string) error {
	switch p {
	case pullAlways, pullMissing, pullNever, "":
		return nil
	}
	return fmt.Errorf(`invalid pull option: '%s': must be one of "%s", "%s" or "%s"`, p, pullAlways, pullMissing, pullNever)
}

// reportError prints "berth: <message>" (with a pointer to the help) and returns the exit
// code 125 of a failed run or create.
func (c *CLI) reportError(cmd string, err error, withHelp bool) error {
	msg := c.errorText(err)
	if withHelp {
		msg += "\n\nRun 'berth " + cmd + " --help' for more information"
	}
	fmt.Fprintln(c.err, "berth: "+msg)
	return StatusError{Code: 125}
}

// parseContainerFlags checks --pull and parses the container flags of run or create (verb),
// an error reported as they report it (exit code 125).
func (c *CLI) parseContainerFlags(verb string, cmd *cobra.Command, pull string, copts *opts.ContainerOptions, args []string) (*opts.ContainerConfig, error) {
	if err := validatePull(pull); err != nil {
		return nil, c.reportError(verb, err, true)
	}
	cfg, err := copts.Parse(cmd.Flags(), args[0], args[1:])
	if err != nil {
		return nil, c.reportError(verb, err, true)
	}
	return cfg, nil
}

func (c *CLI) newCreateCommand() *cobra.Command {
	var co createOptions
	var copts *opts.ContainerOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.parseContainerFlags("create", cmd, co.pull, copts, args)
			if err != nil {
				return err
			}
			id, err := c.createContainer(cmd.Context(), cfg, &co)
			if err != nil {
				return c.reportError("create", err, true)
			}
			fmt.Fprintln(c.out, id)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	addCreateFlags(fs, &co, false)
	copts = opts.AddContainerFlags(fs)
	return cmd
}

// runOptions are run's own flags.
type runOptions struct {
	createOptions
	detach     bool
	sigProxy   bool
	detachKeys string
}

func (c *CLI) newRunCommand() *cobra.Command {
	var ro runOptions
	var copts *opts.ContainerOptions
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.parseContainerFlags("run", cmd, ro.pull, copts, args)
			if err != nil {
				return err
			}
			return c.runContainer(cmd.Context(), &ro, copts, cfg)
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	fs.BoolVarP(&ro.detach, "detach", "d", false, "Run container in background and print container ID")
	fs.BoolVar(&ro.sigProxy, "sig-proxy", true, "Proxy received signals to the process")
	fs.StringVar(&ro.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	addCreateFlags(fs, &ro.createOptions, true)
	copts = opts.AddContainerFlags(fs)
	return cmd
}

// runContainer is `run` once the flags are parsed: create, attach (in the foreground),
// start, wait; the exit code is the container's.
func (c *CLI) runContainer(ctx context.Context, ro *runOptions, copts *opts.ContainerOptions, cfg *opts.ContainerConfig) error {
	config := cfg.Config
	if ro.detach {
		if copts.Attached() {
			return errors.New("conflicting options: cannot specify both --attach and --detach")
		}
		config.AttachStdin, config.AttachStdout, config.AttachStderr, config.StdinOnce = false, false, false, false
	} else if config.AttachStdin && config.Tty && !c.in.IsTerminal() {
		return errors.New("the input device is not a TTY")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	id, err := c.createContainer(ctx, cfg, &ro.createOptions)
	if err != nil {
		return c.reportError("run", err, true)
	}
	api, _ := c.Client(ctx)
	if ro.sigProxy {
		stop := c.proxySignals(api, id)
		defer stop()
	}

	var waitID chan struct{}
	if !config.AttachStdout && !config.AttachStderr {
		// Detached (or stdin only): print the ID without holding up stdin.
		waitID = make(chan struct{})
		go func() {
			defer close(waitID)
			fmt.Fprintln(c.out, id)
		}()
	}
	var errCh chan error
	attach := config.AttachStdin || config.AttachStdout || config.AttachStderr
	if attach {
		resp, err := api.ContainerAttach(ctx, id, client.ContainerAttachOptions{
			Stream: true, Stdin: config.AttachStdin, Stdout: config.AttachStdout, Stderr: config.AttachStderr,
			DetachKeys: ro.detachKeys,
		})
		if err != nil {
			return c.reportError("run", err, true)
		}
		defer resp.Close()
		h := &hijacked{c: c, resp: resp.HijackedResponse, tty: config.Tty, detachKeys: ro.detachKeys}
		if config.AttachStdin {
			h.in = c.in
		}
		if config.AttachStdout {
			h.out = c.out
		}
		if config.AttachStderr {
			h.errw = c.err
			if config.Tty {
				h.errw = c.out
			}
		}
		errCh = make(chan error, 1)
		go func() { errCh <- h.stream(ctx) }()
	}

	// The wait starts before the container does, so that its exit is not missed; it is not
	// cancelled with the attachment.
	statusCtx, cancelStatus := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStatus()
	status := c.waitExitOrRemoved(statusCtx, api, id, cfg.HostConfig.AutoRemove)

	if _, err := api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		if attach {
			cancel()
			<-errCh
		}
		// As docker: the error after the wait for --rm's removal, which may say its own
		// ("error waiting for container"), so that the two come in one order.
		if cfg.HostConfig.AutoRemove {
			<-status
		}
		c.reportError("run", err, true)
		return StatusError{Code: startErrorCode(err)}
	}
	if attach && config.Tty && c.out.IsTerminal() {
		c.monitorTTYSize(ctx, func(h, w uint) error {
			_, err := api.ContainerResize(ctx, id, client.ContainerResizeOptions{Height: h, Width: w})
			return err
		})
	}
	if errCh != nil {
		if err := <-errCh; err != nil {
			if errors.Is(err, errDetached) {
				return nil
			}
			return err
		}
	}
	if !config.AttachStdout && !config.AttachStderr {
		<-waitID
		return nil
	}
	if code := <-status; code != 0 {
		return StatusError{Code: code}
	}
	return nil
}

// startErrorCode is docker's exit code for a container that failed to start: 127 when the
// command was not found, 126 when it could not be run, 125 otherwise.
func startErrorCode(err error) int {
	msg := strings.TrimPrefix(err.Error(), "Error response from daemon: ")
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"),
		strings.Contains(msg, "system cannot find the file specified"):
		return 127
	case strings.Contains(msg, syscall.EACCES.Error()), strings.Contains(msg, syscall.EISDIR.Error()):
		return 126
	}
	return 125
}

// createContainer creates the container, pulling its image first when --pull says so or
// when it is missing, writes --cidfile, and returns the ID.
func (c *CLI) createContainer(ctx context.Context, cfg *opts.ContainerConfig, o *createOptions) (string, error) {
	api, err := c.Client(ctx)
	if err != nil {
		return "", err
	}
	cidFile := cfg.HostConfig.ContainerIDFile
	var cid *os.File
	if cidFile != "" {
		if _, err := os.Stat(cidFile); err == nil {
			return "", fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", cidFile)
		}
		if cid, err = os.Create(cidFile); err != nil {
			return "", fmt.Errorf("failed to create the container ID file: %w", err)
		}
		defer cid.Close()
	}
	written := false
	defer func() {
		if cid != nil && !written {
			cid.Close()
			os.Remove(cidFile)
		}
	}()

	var named reference.Named
	ref, err := reference.ParseAnyReference(cfg.Config.Image)
	if err != nil {
		return "", err
	}
	if n, ok := ref.(reference.Named); ok {
		named = reference.TagNameOnly(n)
	}
	var platform *ocispec.Platform
	if o.platform != "" {
		p, err := platforms.Parse(o.platform)
		if err != nil {
			return "", fmt.Errorf("error parsing specified platform: %w", err)
		}
		platform = &p
	}
	pull := func() error {
		out := io.Writer(c.err)
		if o.quiet {
			out = io.Discard
		}
		return c.pullImage(ctx, cfg.Config.Image, o.platform, out)
	}
	if o.pull == pullAlways {
		if err := pull(); err != nil {
			return "", err
		}
	}
	h, w := c.out.Size()
	cfg.HostConfig.ConsoleSize = [2]uint{h, w}
	create := func() (client.ContainerCreateResult, error) {
		return api.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config: cfg.Config, HostConfig: cfg.HostConfig, NetworkingConfig: cfg.NetworkingConfig,
			Platform: platform, Name: o.name,
		})
	}
	resp, err := create()
	if err != nil {
		if !cerrdefs.IsNotFound(err) || named == nil || (o.pull != pullMissing && o.pull != "") {
			return "", err
		}
		if !o.quiet {
			fmt.Fprintf(c.err, "Unable to find image '%s' locally\n", reference.FamiliarString(named))
		}
		if err := pull(); err != nil {
			return "", err
		}
		if resp, err = create(); err != nil {
			return "", err
		}
	}
	for _, w := range resp.Warnings {
		fmt.Fprintf(c.err, "WARNING: %s\n", w)
	}
	if cid != nil {
		if _, err := cid.WriteString(resp.ID); err != nil {
			return "", fmt.Errorf("failed to write the container ID to the file: %w", err)
		}
		written = true
	}
	return resp.ID, nil
}
