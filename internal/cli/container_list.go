package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"berth/internal/cli/format"
	"berth/internal/cli/opts"
)

func (c *CLI) newPsCommand() *cobra.Command { return c.psCommand("ps [OPTIONS]") }

func (c *CLI) psCommand(use string) *cobra.Command {
	var size, all, noTrunc, latest bool
	var last int
	var list listFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: "List containers",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			quiet, fmtFlag := list.quiet, list.format
			if fmtFlag != "" && quiet {
				fmt.Fprintln(c.err, "WARNING: Ignoring custom format, because both --format and --quiet are set.")
			}
			o := client.ContainerListOptions{All: all, Limit: last, Size: size, Filters: list.filters.Value()}
			if latest && last == -1 {
				o.Limit = 1
			}
			if fmtFlag != "" {
				if _, err := format.Parse(fmtFlag); err != nil {
					return fmt.Errorf("failed to parse template: %w", err)
				}
				// Sizes cost the daemon a walk of every container's layer: only when shown.
				if !quiet && !size && !cmd.Flags().Changed("size") && strings.Contains(fmtFlag, ".Size") {
					o.Size = true
				}
			}
			api, err := c.Client(ctx)
			if err != nil {
				return err
			}
			res, err := api.ContainerList(ctx, o)
			if err != nil {
				return err
			}
			var rows []any
			for _, ctr := range res.Items {
				rows = append(rows, &format.Container{C: ctr, Trunc: !noTrunc})
			}
			return format.Write(c.out, format.ContainerFormat(fmtFlag, quiet, o.Size), format.ContainerHeader, rows)
		},
	}
	fs := cmd.Flags()
	list.add(fs, "Only display container IDs", "Filter output based on conditions provided")
	fs.BoolVarP(&size, "size", "s", false, "Display total file sizes")
	fs.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	fs.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fs.BoolVarP(&latest, "latest", "l", false, "Show the latest created container (includes all states)")
	fs.IntVarP(&last, "last", "n", -1, "Show n last created containers (includes all states)")
	fs.StringVar(&c.namespace, "namespace", "", "Show the containers of a daemon namespace (k8s: the CRI's)")
	return cmd
}

func (c *CLI) newExecCommand() *cobra.Command {
	var detach, interactive, tty, privileged bool
	var detachKeys, user, workdir string
	env := opts.NewList(opts.ValidateEnv)
	envFile := opts.NewList(nil)
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  requiresMinArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			envs, err := opts.ReadEnv(envFile.Values(), env.Values())
			if err != nil {
				return err
			}
			o := client.ExecCreateOptions{
				User: user, Privileged: privileged, TTY: tty, Cmd: args[1:], WorkingDir: workdir,
				Env: envs, DetachKeys: detachKeys,
			}
			if !detach {
				o.AttachStdout, o.AttachStderr, o.AttachStdin = true, true, interactive
			}
			api, err := c.Client(ctx)
			if err != nil {
				return err
			}
			// A missing container is reported before a missing terminal, and no exec is left
			// behind for either.
			if _, err := api.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{}); err != nil {
				return err
			}
			if !detach && o.AttachStdin && tty && !c.in.IsTerminal() {
				return errors.New("the input device is not a TTY")
			}
			if tty {
				if h, w := c.out.Size(); h != 0 || w != 0 {
					o.ConsoleSize = client.ConsoleSize{Height: h, Width: w}
				}
			}
			created, err := api.ExecCreate(ctx, args[0], o)
			if err != nil {
				return err
			}
			if created.ID == "" {
				return errors.New("exec ID empty")
			}
			if detach {
				_, err := api.ExecStart(ctx, created.ID, client.ExecStartOptions{Detach: true, TTY: tty, ConsoleSize: o.ConsoleSize})
				return err
			}
			resp, err := api.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: tty, ConsoleSize: o.ConsoleSize})
			if err != nil {
				return err
			}
			defer resp.Close()
			h := &hijacked{c: c, out: c.out, errw: c.err, resp: resp.HijackedResponse, tty: tty, detachKeys: detachKeys}
			if tty {
				h.errw = c.out
			}
			if interactive {
				h.in = c.in
			}
			errCh := make(chan error, 1)
			go func() { errCh <- h.stream(ctx) }()
			if tty && c.in.IsTerminal() {
				c.monitorTTYSize(ctx, func(h, w uint) error {
					_, err := api.ExecResize(ctx, created.ID, client.ExecResizeOptions{Height: h, Width: w})
					return err
				})
			}
			if err := <-errCh; err != nil {
				return err
			}
			insp, err := api.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
			if err != nil {
				if client.IsErrConnectionFailed(err) {
					return StatusError{Code: -1}
				}
				return err
			}
			if insp.ExitCode != 0 {
				return StatusError{Code: insp.ExitCode}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	fs.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	fs.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fs.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fs.BoolVarP(&detach, "detach", "d", false, "Detached mode: run command in the background")
	fs.StringVarP(&user, "user", "u", "", `Username or UID (format: "<name|uid>[:<group|gid>]")`)
	fs.BoolVar(&privileged, "privileged", false, "Give extended privileges to the command")
	fs.VarP(env, "env", "e", "Set environment variables")
	fs.Var(envFile, "env-file", "Read in a file of environment variables")
	fs.StringVarP(&workdir, "workdir", "w", "", "Working directory inside the container")
	return cmd
}

func (c *CLI) newStatsCommand() *cobra.Command {
	var all, noStream, noTrunc bool
	var fmtFlag string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			names := args
			if len(names) == 0 {
				res, err := api.ContainerList(ctx, client.ContainerListOptions{All: all})
				if err != nil {
					return err
				}
				for _, ctr := range res.Items {
					names = append(names, ctr.ID)
				}
			}
			source := fmtFlag
			if source == "" || source == format.TableKey {
				source = format.DefaultStatsTable
			}
			f := format.Format(source)
			stats := make([]format.StatsEntry, len(names))
			var mu sync.Mutex
			var wg sync.WaitGroup
			var errs []string
			for i, n := range names {
				stats[i] = format.StatsEntry{Container: n, ID: n, Invalid: true}
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := c.collectStats(ctx, api, n, !noStream, func(e format.StatsEntry) {
						mu.Lock()
						defer mu.Unlock()
						e.Container = n
						stats[i] = e
					})
					if err != nil && len(args) > 0 {
						mu.Lock()
						errs = append(errs, c.errorText(err))
						mu.Unlock()
					}
				}()
			}
			render := func() error {
				mu.Lock()
				defer mu.Unlock()
				var rows []any
				for _, s := range stats {
					rows = append(rows, &format.Stats{S: s, Trunc: !noTrunc})
				}
				if !noStream && c.out.IsTerminal() {
					fmt.Fprint(c.out, "\033[2J\033[H")
				}
				return format.Write(c.out, f, format.StatsHeader, rows)
			}
			if noStream {
				wg.Wait()
				if len(errs) > 0 {
					return errors.New(strings.Join(errs, "\n"))
				}
				return render()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					if len(errs) > 0 {
						return errors.New(strings.Join(errs, "\n"))
					}
					return render()
				case <-tick.C:
					if err := render(); err != nil {
						return err
					}
				}
			}
		}),
	}
	fs := cmd.Flags()
	fs.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	fs.BoolVar(&noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	fs.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	fs.StringVar(&fmtFlag, "format", "", formatHelp(true))
	return cmd
}

// collectStats reads the stats of one container, calling update for each sample.
func (c *CLI) collectStats(ctx context.Context, api *client.Client, name string, stream bool, update func(format.StatsEntry)) error {
	res, err := api.ContainerStats(ctx, name, client.ContainerStatsOptions{Stream: stream, IncludePreviousSample: true})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var v container.StatsResponse
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read the stats of %s: %w", name, err)
		}
		update(format.StatsFromResponse(&v))
		if !stream {
			return nil
		}
	}
}
