package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"berth/internal/cli/format"
	"berth/internal/cli/opts"
)

func (c *CLI) newVolumeCommand() *cobra.Command {
	return groupCommand("volume", "Manage volumes",
		c.newVolumeCreateCommand(), c.inspectTypeCommand("volume"), c.newVolumeLsCommand(),
		c.newVolumePruneCommand(), c.newVolumeRmCommand(),
	)
}

func (c *CLI) newVolumeCreateCommand() *cobra.Command {
	var driver, name string
	driverOpts := opts.NewMap(nil)
	labels := opts.NewList(opts.ValidateLabel)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  requiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if name != "" {
					return errors.New("conflicting options: cannot specify a volume-name through both --name and as a positional arg")
				}
				name = args[0]
			}
			api, err := c.Client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := api.VolumeCreate(cmd.Context(), client.VolumeCreateOptions{
				Name: name, Driver: driver, DriverOpts: driverOpts.Values(), Labels: opts.KVStringsToMap(labels.Values()),
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, res.Volume.Name)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	fs.StringVar(&name, "name", "", "Specify volume name")
	_ = fs.MarkHidden("name")
	fs.VarP(driverOpts, "opt", "o", "Set driver specific options")
	fs.Var(labels, "label", "Set metadata for a volume")
	return cmd
}

func (c *CLI) newVolumeLsCommand() *cobra.Command {
	var quiet bool
	var fmtFlag string
	filters := opts.NewFilters()
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := api.VolumeList(cmd.Context(), client.VolumeListOptions{Filters: filters.Value()})
			if err != nil {
				return err
			}
			vols := res.Items
			sort.SliceStable(vols, func(i, j int) bool { return naturalLess(vols[i].Name, vols[j].Name) })
			var rows []any
			for _, v := range vols {
				rows = append(rows, &format.Volume{V: v})
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(c.err, w)
			}
			return format.Write(c.out, format.VolumeFormat(fmtFlag, quiet), format.VolumeHeader, rows)
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	fs.StringVar(&fmtFlag, "format", "", formatHelp(true))
	fs.VarP(filters, "filter", "f", `Provide filter values (e.g. "dangling=true")`)
	return cmd
}

// naturalLess orders strings with their digit runs compared as numbers ("v2" < "v10").
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		ca, cb := rune(a[0]), rune(b[0])
		if unicode.IsDigit(ca) && unicode.IsDigit(cb) {
			na, ra := digits(a)
			nb, rb := digits(b)
			ta, tb := strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			a, b = ra, rb
			continue
		}
		if ca != cb {
			return ca < cb
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) (string, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

func (c *CLI) newVolumeRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Long:    "Remove one or more volumes. You cannot remove a volume that is in use by a container.",
		Args:    requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client(cmd.Context())
			if err != nil {
				return err
			}
			var errs []string
			for _, n := range args {
				if _, err := api.VolumeRemove(cmd.Context(), n, client.VolumeRemoveOptions{Force: force}); err != nil {
					if force && cerrdefs.IsNotFound(err) {
						continue
					}
					errs = append(errs, c.errorText(err))
					continue
				}
				fmt.Fprintln(c.out, n)
			}
			if len(errs) > 0 {
				return errors.New(strings.Join(errs, "\n"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}

func (c *CLI) newVolumePruneCommand() *cobra.Command {
	var all, force bool
	filters := opts.NewFilters()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			warning := "WARNING! This will remove anonymous local volumes not used by at least one container."
			if all {
				warning = "WARNING! This will remove all local volumes not used by at least one container."
			}
			if !force && !c.confirm(warning) {
				return nil
			}
			api, err := c.Client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := api.VolumePrune(cmd.Context(), client.VolumePruneOptions{All: all, Filters: filters.Value()})
			if err != nil {
				return err
			}
			if len(res.Report.VolumesDeleted) > 0 {
				fmt.Fprintln(c.out, "Deleted Volumes:")
				for _, v := range res.Report.VolumesDeleted {
					fmt.Fprintln(c.out, v)
				}
				fmt.Fprintln(c.out)
			}
			fmt.Fprintln(c.out, "Total reclaimed space:", units.HumanSize(float64(res.Report.SpaceReclaimed)))
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	fs.BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	fs.Var(filters, "filter", `Provide filter values (e.g. "label=<label>")`)
	return cmd
}
