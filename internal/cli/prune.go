package cli

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"berth/internal/cli/opts"
)

// The prune commands of containers, images, networks and volumes, and system prune, which
// runs them all.

// pruneCommand is a prune command: unless -f, it asks the user to confirm the warning (made
// once the flags are parsed), then runs prune with --filter's values.
func (c *CLI) pruneCommand(short, filterHelp string, warning func() string, prune func(ctx context.Context, f client.Filters) error) *cobra.Command {
	var force bool
	filters := opts.NewFilters()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: short,
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force && !c.confirm(warning()) {
				return nil
			}
			return prune(cmd.Context(), filters.Value())
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(filters, "filter", filterHelp)
	return cmd
}

// printPruned prints what a prune of one kind of object (pruneContainers, ...) returned: its
// report and the space it freed, or its error.
func (c *CLI) printPruned(space uint64, report string, err error) error {
	if err != nil {
		return err
	}
	fmt.Fprint(c.out, report)
	c.printReclaimed(space)
	return nil
}

func (c *CLI) printReclaimed(space uint64) {
	fmt.Fprintln(c.out, "Total reclaimed space:", units.HumanSize(float64(space)))
}

// deletedReport is what a prune says it deleted: a title line, a line per item and an empty
// line; nothing when nothing was deleted.
func deletedReport(title string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return title + "\n" + strings.Join(items, "\n") + "\n\n"
}

// confirm asks the user to confirm, docker's way; without a terminal it is refused.
func (c *CLI) confirm(warning string) bool {
	fmt.Fprintf(c.out, "%s\nAre you sure you want to continue? [y/N] ", warning)
	line, _ := bufio.NewReader(c.in).ReadString('\n')
	ans := strings.TrimSpace(line)
	if ans == "y" || ans == "Y" {
		return true
	}
	if !c.in.IsTerminal() {
		fmt.Fprintln(c.out)
	}
	return false
}

func (c *CLI) newContainerPruneCommand() *cobra.Command {
	return c.pruneCommand("Remove all stopped containers", `Provide filter values (e.g. "until=<timestamp>")`,
		func() string { return "WARNING! This will remove all stopped containers." },
		func(ctx context.Context, f client.Filters) error { return c.printPruned(c.pruneContainers(ctx, f)) })
}

func (c *CLI) newImagePruneCommand() *cobra.Command {
	var all bool
	cmd := c.pruneCommand("Remove unused images", `Provide filter values (e.g. "until=<timestamp>")`,
		func() string {
			if all {
				return "WARNING! This will remove all images without at least one container associated to them."
			}
			return "WARNING! This will remove all dangling images."
		},
		func(ctx context.Context, f client.Filters) error { return c.printPruned(c.pruneImages(ctx, all, f)) })
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	return cmd
}

func (c *CLI) newNetworkPruneCommand() *cobra.Command {
	return c.pruneCommand("Remove all unused networks", `Provide filter values (e.g. "until=<timestamp>")`,
		func() string {
			return "WARNING! This will remove all custom networks not used by at least one container."
		},
		func(ctx context.Context, f client.Filters) error {
			_, report, err := c.pruneNetworks(ctx, f)
			if err != nil {
				return err
			}
			// Networks free no space: the report alone, without its empty line.
			fmt.Fprint(c.out, strings.TrimSuffix(report, "\n"))
			return nil
		})
}

func (c *CLI) newVolumePruneCommand() *cobra.Command {
	var all bool
	cmd := c.pruneCommand("Remove unused local volumes", `Provide filter values (e.g. "label=<label>")`,
		func() string {
			if all {
				return "WARNING! This will remove all local volumes not used by at least one container."
			}
			return "WARNING! This will remove anonymous local volumes not used by at least one container."
		},
		func(ctx context.Context, f client.Filters) error { return c.printPruned(c.pruneVolumes(ctx, all, f)) })
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	return cmd
}

func (c *CLI) newSystemPruneCommand() *cobra.Command {
	var all, volumes bool
	cmd := c.pruneCommand("Remove unused data", `Provide filter values (e.g. "label=<key>=<value>")`,
		func() string {
			warning := "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n"
			if volumes {
				warning += "  - all anonymous volumes not used by at least one container\n"
			}
			if all {
				warning += "  - all images without at least one container associated to them\n  - all build cache\n"
			} else {
				warning += "  - all dangling images\n  - unused build cache\n"
			}
			return warning
		},
		func(ctx context.Context, f client.Filters) error {
			var total uint64
			add := func(space uint64, report string, err error) error {
				if err == nil {
					total += space
					fmt.Fprint(c.out, report)
				}
				return err
			}
			if err := add(c.pruneContainers(ctx, f)); err != nil {
				return err
			}
			if err := add(c.pruneNetworks(ctx, f)); err != nil {
				return err
			}
			// Anonymous volumes only, whatever -a says.
			if volumes {
				if err := add(c.pruneVolumes(ctx, false, f)); err != nil {
					return err
				}
			}
			if err := add(c.pruneImages(ctx, all, f)); err != nil {
				return err
			}
			// A daemon without a builder has no build cache to prune: not an error.
			_ = add(c.pruneBuildCache(ctx, all, f))
			c.printReclaimed(total)
			return nil
		})
	fs := cmd.Flags()
	fs.BoolVarP(&all, "all", "a", false, "Remove all unused images not just dangling ones")
	fs.BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	return cmd
}

func (c *CLI) pruneContainers(ctx context.Context, f client.Filters) (uint64, string, error) {
	api, err := c.Client(ctx)
	if err != nil {
		return 0, "", err
	}
	res, err := api.ContainerPrune(ctx, client.ContainerPruneOptions{Filters: f})
	if err != nil {
		return 0, "", err
	}
	return res.Report.SpaceReclaimed, deletedReport("Deleted Containers:", res.Report.ContainersDeleted), nil
}

// pruneImages removes the dangling images, or with all every image no container uses.
func (c *CLI) pruneImages(ctx context.Context, all bool, f client.Filters) (uint64, string, error) {
	api, err := c.Client(ctx)
	if err != nil {
		return 0, "", err
	}
	f = f.Clone()
	f.Add("dangling", fmt.Sprint(!all))
	res, err := api.ImagePrune(ctx, client.ImagePruneOptions{Filters: f})
	if err != nil {
		return 0, "", err
	}
	var items []string
	for _, d := range res.Report.ImagesDeleted {
		if d.Untagged != "" {
			items = append(items, "untagged: "+d.Untagged)
		} else {
			items = append(items, "deleted: "+d.Deleted)
		}
	}
	return res.Report.SpaceReclaimed, deletedReport("Deleted Images:", items), nil
}

func (c *CLI) pruneNetworks(ctx context.Context, f client.Filters) (uint64, string, error) {
	api, err := c.Client(ctx)
	if err != nil {
		return 0, "", err
	}
	res, err := api.NetworkPrune(ctx, client.NetworkPruneOptions{Filters: f})
	if err != nil {
		return 0, "", err
	}
	return 0, deletedReport("Deleted Networks:", res.Report.NetworksDeleted), nil
}

// pruneVolumes removes the anonymous volumes no container uses, or with all every one.
func (c *CLI) pruneVolumes(ctx context.Context, all bool, f client.Filters) (uint64, string, error) {
	api, err := c.Client(ctx)
	if err != nil {
		return 0, "", err
	}
	res, err := api.VolumePrune(ctx, client.VolumePruneOptions{All: all, Filters: f})
	if err != nil {
		return 0, "", err
	}
	return res.Report.SpaceReclaimed, deletedReport("Deleted Volumes:", res.Report.VolumesDeleted), nil
}

func (c *CLI) pruneBuildCache(ctx context.Context, all bool, f client.Filters) (uint64, string, error) {
	api, err := c.Client(ctx)
	if err != nil {
		return 0, "", err
	}
	res, err := api.BuildCachePrune(ctx, client.BuildCachePruneOptions{All: all, Filters: f})
	if err != nil {
		return 0, "", err
	}
	return res.Report.SpaceReclaimed, deletedReport("Deleted build cache objects:", res.Report.CachesDeleted), nil
}
