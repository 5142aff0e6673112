package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/api/types/volume"
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
	var list listFlags
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    noArgsCmd,
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			res, err := api.VolumeList(ctx, client.VolumeListOptions{Filters: list.filters.Value()})
			if err != nil {
				return err
			}
			rows := rowsByName(res.Items, func(v volume.Volume) string { return v.Name },
				func(v volume.Volume) any { return &format.Volume{V: v} })
			for _, w := range res.Warnings {
				fmt.Fprintln(c.err, w)
			}
			return format.Write(c.out, format.VolumeFormat(list.format, list.quiet), format.VolumeHeader, rows)
		}),
	}
	list.add(cmd.Flags(), "Only display volume names", `Provide filter values (e.g. "dangling=true")`)
	return cmd
}

func (c *CLI) newVolumeRmCommand() *cobra.Command {
	var force bool
	cmd := c.verbCommand("rm [OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes",
		func(ctx context.Context, api *client.Client, n string) error {
			_, err := api.VolumeRemove(ctx, n, client.VolumeRemoveOptions{Force: force})
			return skipMissing(err, force)
		})
	cmd.Aliases = []string{"remove"}
	cmd.Long = "Remove one or more volumes. You cannot remove a volume that is in use by a container."
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}
