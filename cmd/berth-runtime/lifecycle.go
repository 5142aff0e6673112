package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"berth/internal/runtime"
)

func createFlags(cmd *cobra.Command, o *runtime.CreateOpts) {
	f := cmd.Flags()
	f.StringVarP(&o.Bundle, "bundle", "b", ".", "path to the bundle directory")
	f.StringVar(&o.PidFile, "pid-file", "", "file to write the container's pid to")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master")
	f.IntVar(&o.PreserveFDs, "preserve-fds", 0, "pass N additional fds (from 3) to the container")
	f.BoolVar(&o.NoPivot, "no-pivot", false, "do not use pivot_root (for a rootfs on ramfs)")
	f.Bool("no-new-keyring", false, "do not create a new session keyring (berth never does)")
}

func createCmd() *cobra.Command {
	var o runtime.CreateOpts
	cmd := &cobra.Command{
		Use:   "create [flags] <container-id>",
		Short: "create a container that waits for start",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			return rt().Create(ctx(), o)
		},
	}
	createFlags(cmd, &o)
	return cmd
}

func runCmd() *cobra.Command {
	var o runtime.CreateOpts
	var detach bool
	cmd := &cobra.Command{
		Use:   "run [flags] <container-id>",
		Short: "create and start a container, and wait for it unless detached",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			code, err := rt().Run(ctx(), o, detach)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	createFlags(cmd, &o)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "detach from the container's process")
	cmd.Flags().Bool("keep", false, "keep the container after it exits (ignored)")
	return cmd
}

func startCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start <container-id>",
		Short: "start a created container",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return rt().Start(ctx(), args[0])
		},
	}
}

func stateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "state <container-id>",
		Short: "print the state of a container as JSON",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := rt()
			c, err := r.Load(args[0])
			if err != nil {
				return err
			}
			return printJSON(r.StateOf(c))
		},
	}
}

func killCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "kill [flags] <container-id> [signal]",
		Short: "send a signal to the container's init process (default SIGTERM)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("kill: requires a container id and optionally a signal")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				s, err := runtime.ParseSignal(args[1])
				if err != nil {
					return err
				}
				sig = s
			}
			return rt().Kill(args[0], sig, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "send the signal to every process in the container")
	return cmd
}

func deleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete [flags] <container-id>",
		Short: "delete a container",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return rt().Delete(ctx(), args[0], force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container first if it is running")
	return cmd
}

func pauseCmd() *cobra.Command {
	return &cobra.Command{
		Use: "pause <container-id>", Short: "freeze every process of a container", Args: oneID,
		RunE: func(cmd *cobra.Command, args []string) error { return rt().Pause(args[0]) },
	}
}

func resumeCmd() *cobra.Command {
	return &cobra.Command{
		Use: "resume <container-id>", Short: "thaw a paused container", Args: oneID,
		RunE: func(cmd *cobra.Command, args []string) error { return rt().Resume(args[0]) },
	}
}

func listCmd() *cobra.Command {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "list containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := rt()
			cs, err := r.List()
			if err != nil {
				return err
			}
			states := make([]runtime.State, 0, len(cs))
			for _, c := range cs {
				states = append(states, r.StateOf(c))
			}
			if quiet {
				for _, s := range states {
					fmt.Println(s.ID)
				}
				return nil
			}
			switch format {
			case "json":
				if states == nil {
					states = []runtime.State{}
				}
				return printJSON(states)
			case "table":
				w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
				fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
				for _, s := range states {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
				}
				return w.Flush()
			}
			return fmt.Errorf("invalid format %q (want table or json)", format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only ids")
	return cmd
}

func psCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [flags] <container-id> [-- ps options]",
		Short: "list the processes of a container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pids, err := rt().Pids(args[0])
			if err != nil {
				return err
			}
			if format == "json" {
				if pids == nil {
					pids = []int{}
				}
				return printJSON(pids)
			}
			if format != "table" {
				return fmt.Errorf("invalid format %q (want table or json)", format)
			}
			psArgs := []string{"-ef"}
			if len(args) > 1 {
				psArgs = args[1:]
			}
			return runtime.PsTable(os.Stdout, pids, psArgs)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	return cmd
}

func parseUser(s string) (uint32, uint32, error) {
	u, gs, hasG := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid --user %q: want uid[:gid]", s)
	}
	gid := uint64(0)
	if hasG {
		if gid, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("invalid --user %q: want uid[:gid]", s)
		}
	}
	return uint32(uid), uint32(gid), nil
}
