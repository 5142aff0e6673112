package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"berth/internal/cli/opts"
)

func (c *CLI) newStartCommand() *cobra.Command {
	var attach, interactive bool
	var detachKeys, checkpoint, checkpointDir string
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if !attach && !interactive {
				api, err := c.Client(ctx)
				if err != nil {
					return err
				}
				var failed []string
				for _, n := range args {
					if _, err := api.ContainerStart(ctx, n, client.ContainerStartOptions{CheckpointID: checkpoint, CheckpointDir: checkpointDir}); err != nil {
						fmt.Fprintln(c.err, c.errorText(err))
						failed = append(failed, n)
						continue
					}
					fmt.Fprintln(c.out, n)
				}
				if len(failed) > 0 {
					return fmt.Errorf("Error: failed to start containers: %s", strings.Join(failed, ", "))
				}
				return nil
			}
			if len(args) > 1 {
				return errors.New("you cannot start and attach multiple containers at once")
			}
			return c.startAttached(ctx, args[0], interactive, detachKeys)
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	fs.BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	fs.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	fs.StringVar(&checkpoint, "checkpoint", "", "Restore from this checkpoint")
	fs.StringVar(&checkpointDir, "checkpoint-dir", "", "Use a custom checkpoint storage directory")
	return cmd
}

// startAttached is start -a/-i: attach, start, wait for the exit, exit with its code.
func (c *CLI) startAttached(ctx context.Context, name string, interactive bool, detachKeys string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	api, err := c.Client(ctx)
	if err != nil {
		return err
	}
	insp, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	ctr := insp.Container
	if !ctr.Config.Tty {
		stop := c.proxySignals(api, ctr.ID)
		defer stop()
	}
	stdin := interactive && ctr.Config.OpenStdin
	resp, err := api.ContainerAttach(ctx, ctr.ID, client.ContainerAttachOptions{
		Stream: true, Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: detachKeys,
	})
	if err != nil {
		return err
	}
	defer resp.Close()
	h := &hijacked{c: c, out: c.out, errw: c.err, resp: resp.HijackedResponse, tty: ctr.Config.Tty, detachKeys: detachKeys}
	if stdin {
		h.in = c.in
	}
	errCh := make(chan error, 1)
	go func() { errCh <- h.stream(ctx) }()
	status := c.waitExitOrRemoved(context.WithoutCancel(ctx), api, ctr.ID, ctr.HostConfig.AutoRemove)
	if _, err := api.ContainerStart(ctx, ctr.ID, client.ContainerStartOptions{}); err != nil {
		cancel()
		<-errCh
		if ctr.HostConfig.AutoRemove {
			<-status
		}
		return err
	}
	if ctr.Config.Tty && c.out.IsTerminal() {
		c.monitorTTYSize(ctx, func(h, w uint) error {
			_, err := api.ContainerResize(ctx, ctr.ID, client.ContainerResizeOptions{Height: h, Width: w})
			return err
		})
	}
	if err := <-errCh; err != nil {
		if errors.Is(err, errDetached) {
			return nil
		}
		return err
	}
	if code := <-status; code != 0 {
		return StatusError{Code: code}
	}
	return nil
}

func (c *CLI) newStopCommand() *cobra.Command {
	return c.stopLike("stop", "Stop one or more running containers")
}
func (c *CLI) newRestartCommand() *cobra.Command {
	return c.stopLike("restart", "Restart one or more containers")
}

func (c *CLI) stopLike(verb, short string) *cobra.Command {
	var signal string
	var timeout int
	cmd := &cobra.Command{
		Use:   verb + " [OPTIONS] CONTAINER [CONTAINER...]",
		Short: short,
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var t *int
			if cmd.Flags().Changed("timeout") || cmd.Flags().Changed("time") {
				t = &timeout
			}
			return c.forEach(cmd.Context(), args, func(ctx context.Context, api *client.Client, n string) error {
				if verb == "stop" {
					_, err := api.ContainerStop(ctx, n, client.ContainerStopOptions{Signal: signal, Timeout: t})
					return err
				}
				_, err := api.ContainerRestart(ctx, n, client.ContainerRestartOptions{Signal: signal, Timeout: t})
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	fs.IntVarP(&timeout, "timeout", "t", 0, "Seconds to wait before killing the container")
	fs.IntVar(&timeout, "time", 0, "Seconds to wait before killing the container (deprecated: use --timeout)")
	_ = fs.MarkHidden("time")
	return cmd
}

func (c *CLI) newKillCommand() *cobra.Command {
	var signal string
	cmd := c.verbCommand("kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
		func(ctx context.Context, api *client.Client, n string) error {
			_, err := api.ContainerKill(ctx, n, client.ContainerKillOptions{Signal: signal})
			return err
		})
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func (c *CLI) newRmCommand() *cobra.Command {
	return c.rmCommand("rm [OPTIONS] CONTAINER [CONTAINER...]")
}

func (c *CLI) rmCommand(use string) *cobra.Command {
	var force, volumes, link bool
	cmd := &cobra.Command{
		Use:   use,
		Short: "Remove one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names := make([]string, len(args))
			for i, n := range args {
				names[i] = strings.Trim(n, "/")
			}
			return c.forEach(cmd.Context(), names, func(ctx context.Context, api *client.Client, n string) error {
				if n == "" {
					//lint:ignore ST1005 docker's message
					return errors.New("Container name cannot be empty")
				}
				_, err := api.ContainerRemove(ctx, n, client.ContainerRemoveOptions{RemoveVolumes: volumes, RemoveLinks: link, Force: force})
				return skipMissing(err, force)
			})
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	fs.BoolVarP(&volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	fs.BoolVarP(&link, "link", "l", false, "Remove the specified link")
	return cmd
}

func (c *CLI) newWaitCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.eachObject(cmd.Context(), args, func(ctx context.Context, api *client.Client, n string) error {
				res := api.ContainerWait(ctx, n, client.ContainerWaitOptions{})
				select {
				case r := <-res.Result:
					fmt.Fprintf(c.out, "%d\n", r.StatusCode)
					return nil
				case err := <-res.Error:
					return err
				}
			})
		},
	}
}

func (c *CLI) newPauseCommand() *cobra.Command {
	return c.verbCommand("pause CONTAINER [CONTAINER...]", "Pause all processes within one or more containers",
		func(ctx context.Context, api *client.Client, n string) error {
			_, err := api.ContainerPause(ctx, n, client.ContainerPauseOptions{})
			return err
		})
}

func (c *CLI) newUnpauseCommand() *cobra.Command {
	return c.verbCommand("unpause CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers",
		func(ctx context.Context, api *client.Client, n string) error {
			_, err := api.ContainerUnpause(ctx, n, client.ContainerUnpauseOptions{})
			return err
		})
}

func (c *CLI) newRenameCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			oldName, newName := strings.TrimSpace(args[0]), strings.TrimSpace(args[1])
			if oldName == "" || newName == "" {
				return errors.New("Error: Neither old nor new names may be empty")
			}
			api, err := c.Client(cmd.Context())
			if err != nil {
				return err
			}
			if _, err := api.ContainerRename(cmd.Context(), oldName, client.ContainerRenameOptions{NewName: newName}); err != nil {
				return fmt.Errorf("%s\nError: failed to rename container named %s", c.errorText(err), oldName)
			}
			return nil
		},
	}
}

func (c *CLI) newUpdateCommand() *cobra.Command {
	var (
		blkioWeight                                    uint16
		cpuPeriod, cpuQuota, cpuRTPeriod, cpuRTRuntime int64
		cpuShares, pidsLimit                           int64
		cpus                                           opts.NanoCPUs
		cpusetCpus, cpusetMems, restart                string
		memory, memoryReservation                      opts.MemBytes
		memorySwap                                     opts.MemSwapBytes
	)
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Update configuration of one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().NFlag() == 0 {
				return errors.New("you must provide one or more flags when using this command")
			}
			res := &container.Resources{
				BlkioWeight: blkioWeight, CpusetCpus: cpusetCpus, CpusetMems: cpusetMems,
				CPUShares: cpuShares, Memory: memory.Value(), MemoryReservation: memoryReservation.Value(),
				MemorySwap: memorySwap.Value(), CPUPeriod: cpuPeriod, CPUQuota: cpuQuota,
				CPURealtimePeriod: cpuRTPeriod, CPURealtimeRuntime: cpuRTRuntime, NanoCPUs: cpus.Value(),
			}
			if cmd.Flags().Changed("pids-limit") {
				res.PidsLimit = &pidsLimit
			}
			var policy *container.RestartPolicy
			if restart != "" {
				p, err := opts.ParseRestartPolicy(restart)
				if err != nil {
					return err
				}
				policy = &p
			}
			var warnings []string
			err := c.forEach(cmd.Context(), args, func(ctx context.Context, api *client.Client, n string) error {
				r, err := api.ContainerUpdate(ctx, n, client.ContainerUpdateOptions{Resources: res, RestartPolicy: policy})
				warnings = append(warnings, r.Warnings...)
				return err
			})
			for _, w := range warnings {
				fmt.Fprintln(c.err, w)
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.Uint16Var(&blkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	fs.Int64Var(&cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	fs.Int64Var(&cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	fs.Int64Var(&cpuRTPeriod, "cpu-rt-period", 0, "Limit the CPU real-time period in microseconds")
	fs.Int64Var(&cpuRTRuntime, "cpu-rt-runtime", 0, "Limit the CPU real-time runtime in microseconds")
	fs.Int64VarP(&cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.Var(&cpus, "cpus", "Number of CPUs")
	fs.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fs.StringVar(&cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fs.VarP(&memory, "memory", "m", "Memory limit")
	fs.Var(&memoryReservation, "memory-reservation", "Memory soft limit")
	fs.Var(&memorySwap, "memory-swap", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	fs.Int64Var(&pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	fs.StringVar(&restart, "restart", "", "Restart policy to apply when a container exits")
	var kernelMemory opts.MemBytes
	fs.Var(&kernelMemory, "kernel-memory", "Kernel memory limit (deprecated)")
	_ = fs.MarkHidden("kernel-memory")
	return cmd
}

func (c *CLI) newPortCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  requiresRangeArgs(1, 2),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			insp, err := api.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			var ports network.PortMap
			if insp.Container.NetworkSettings != nil {
				ports = insp.Container.NetworkSettings.Ports
			}
			var out []string
			if len(args) == 2 {
				port, proto, _ := strings.Cut(args[1], "/")
				if proto == "" {
					proto = "tcp"
				}
				p, err := network.ParsePort(port + "/" + proto)
				if err != nil {
					return fmt.Errorf("Error: invalid port (%s): %w", args[1], err)
				}
				bindings, ok := ports[p]
				if !ok || len(bindings) == 0 {
					return fmt.Errorf("Error: No public port '%s' published for %s", args[1], args[0])
				}
				for _, b := range bindings {
					out = append(out, hostPort(b))
				}
			} else {
				var keys []network.Port
				for p := range ports {
					keys = append(keys, p)
				}
				sort.Slice(keys, func(i, j int) bool {
					if keys[i].Num() != keys[j].Num() {
						return keys[i].Num() < keys[j].Num()
					}
					return keys[i].Proto() < keys[j].Proto()
				})
				for _, p := range keys {
					for _, b := range ports[p] {
						out = append(out, fmt.Sprintf("%s -> %s", p, hostPort(b)))
					}
				}
			}
			for _, l := range out {
				fmt.Fprintln(c.out, l)
			}
			return nil
		}),
	}
}

func hostPort(b network.PortBinding) string {
	ip := "0.0.0.0"
	if b.HostIP.IsValid() {
		ip = b.HostIP.String()
	}
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + b.HostPort
	}
	return ip + ":" + b.HostPort
}

func (c *CLI) newDiffCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Args:  exactArgs(1),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			res, err := api.ContainerDiff(ctx, args[0], client.ContainerDiffOptions{})
			if err != nil {
				return err
			}
			for _, ch := range res.Changes {
				fmt.Fprintf(c.out, "%s %s\n", changeKind(ch.Kind), ch.Path)
			}
			return nil
		}),
	}
}

func changeKind(k container.ChangeType) string {
	switch k {
	case container.ChangeModify:
		return "C"
	case container.ChangeAdd:
		return "A"
	case container.ChangeDelete:
		return "D"
	}
	return "?"
}

func (c *CLI) newTopCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  requiresMinArgs(1),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			res, err := api.ContainerTop(ctx, args[0], client.ContainerTopOptions{Arguments: args[1:]})
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.out, 20, 1, 3, ' ', 0)
			fmt.Fprintln(w, strings.Join(res.Titles, "\t"))
			for _, p := range res.Processes {
				fmt.Fprintln(w, strings.Join(p, "\t"))
			}
			return w.Flush()
		}),
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func (c *CLI) newExportCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.checkArchiveOutput(output, "failed to export container"); err != nil {
				return err
			}
			api, err := c.Client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := api.ContainerExport(cmd.Context(), args[0], client.ContainerExportOptions{})
			if err != nil {
				return err
			}
			defer res.Close()
			return c.writeArchive(output, res)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func (c *CLI) newCommitCommand() *cobra.Command {
	var author, message string
	var pause bool
	changes := opts.NewList(nil)
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  requiresRangeArgs(1, 2),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			var ref string
			if len(args) == 2 {
				ref = args[1]
			}
			res, err := api.ContainerCommit(ctx, args[0], client.ContainerCommitOptions{
				Reference: ref, Comment: message, Author: author, Changes: changes.Values(), NoPause: !pause,
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, res.ID)
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	fs.BoolVarP(&pause, "pause", "p", true, "Pause container during commit")
	fs.StringVarP(&message, "message", "m", "", "Commit message")
	fs.StringVarP(&author, "author", "a", "", `Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	fs.VarP(changes, "change", "c", "Apply Dockerfile instruction to the created image")
	return cmd
}

func (c *CLI) newLogsCommand() *cobra.Command {
	var o client.ContainerLogsOptions
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			insp, err := api.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			o.ShowStdout, o.ShowStderr = true, true
			res, err := api.ContainerLogs(ctx, insp.Container.ID, o)
			if err != nil {
				return err
			}
			defer res.Close()
			if insp.Container.Config != nil && insp.Container.Config.Tty {
				_, err = io.Copy(c.out, res)
			} else {
				_, err = stdcopy.StdCopy(c.out, c.err, res)
			}
			return err
		}),
	}
	fs := cmd.Flags()
	fs.BoolVarP(&o.Follow, "follow", "f", false, "Follow log output")
	fs.StringVar(&o.Since, "since", "", `Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	fs.StringVar(&o.Until, "until", "", `Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	fs.BoolVarP(&o.Timestamps, "timestamps", "t", false, "Show timestamps")
	fs.BoolVar(&o.Details, "details", false, "Show extra details provided to logs")
	fs.StringVarP(&o.Tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	return cmd
}

func (c *CLI) newAttachCommand() *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  exactArgs(1),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			ctr, err := attachableContainer(ctx, api, args[0])
			if err != nil {
				return err
			}
			if !noStdin && ctr.Config.Tty && !c.in.IsTerminal() {
				return errors.New("the input device is not a TTY")
			}
			stdin := !noStdin && ctr.Config.OpenStdin
			if sigProxy && !ctr.Config.Tty {
				stop := c.proxySignals(api, ctr.ID)
				defer stop()
			}
			wait := api.ContainerWait(ctx, args[0], client.ContainerWaitOptions{})
			resp, err := api.ContainerAttach(ctx, args[0], client.ContainerAttachOptions{
				Stream: true, Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: detachKeys,
			})
			if err != nil {
				return err
			}
			defer resp.Close()
			// The container may have stopped between the check and the attachment.
			if _, err := attachableContainer(ctx, api, args[0]); err != nil {
				return err
			}
			if ctr.Config.Tty && c.out.IsTerminal() {
				resize := func(h, w uint) error {
					_, err := api.ContainerResize(ctx, ctr.ID, client.ContainerResizeOptions{Height: h, Width: w})
					return err
				}
				// A size change makes the shell redraw its prompt on a second attach.
				if h, w := c.out.Size(); h != 0 || w != 0 {
					_ = resize(h+1, w+1)
				}
				c.monitorTTYSize(ctx, resize)
			}
			h := &hijacked{c: c, out: c.out, errw: c.err, resp: resp.HijackedResponse, tty: ctr.Config.Tty, detachKeys: detachKeys}
			if stdin {
				h.in = c.in
			}
			if err := h.stream(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			select {
			case r := <-wait.Result:
				if r.Error != nil {
					return errors.New(r.Error.Message)
				}
				if r.StatusCode != 0 {
					return StatusError{Code: int(r.StatusCode)}
				}
			case err := <-wait.Error:
				return err
			}
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	fs.BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	fs.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

// attachableContainer inspects a container and refuses one that is not running.
func attachableContainer(ctx context.Context, api *client.Client, name string) (container.InspectResponse, error) {
	insp, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return container.InspectResponse{}, err
	}
	st := insp.Container.State
	switch {
	case st == nil || !st.Running:
		//lint:ignore ST1005 docker's message
		return container.InspectResponse{}, errors.New("You cannot attach to a stopped container, start it first")
	case st.Paused:
		//lint:ignore ST1005 docker's message
		return container.InspectResponse{}, errors.New("You cannot attach to a paused container, unpause it first")
	case st.Restarting:
		//lint:ignore ST1005 docker's message
		return container.InspectResponse{}, errors.New("You cannot attach to a restarting container, wait until it is running")
	}
	return insp.Container, nil
}
