package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"berth/internal/cli/format"
	"berth/internal/cli/opts"
)

func (c *CLI) newNetworkCommand() *cobra.Command {
	return groupCommand("network", "Manage networks",
		c.newNetworkConnectCommand(), c.newNetworkCreateCommand(), c.newNetworkDisconnectCommand(),
		c.inspectTypeCommand("network"), c.newNetworkLsCommand(), c.newNetworkPruneCommand(),
		c.newNetworkRmCommand(),
	)
}

func (c *CLI) newNetworkCreateCommand() *cobra.Command {
	var driver, ipamDriver, configFrom, scope string
	var attachable, configOnly, ingress, internal, ipv4, ipv6 bool
	var subnets, ipRanges, gateways []string
	driverOpts, ipamOpts, auxAddresses := opts.NewMap(nil), opts.NewMap(nil), opts.NewMap(nil)
	labels := opts.NewList(opts.ValidateLabel)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ipam, err := ipamConfig(subnets, ipRanges, gateways, auxAddresses.Values())
			if err != nil {
				return err
			}
			o := client.NetworkCreateOptions{
				Driver: driver, Options: driverOpts.Values(), Internal: internal, Attachable: attachable,
				Ingress: ingress, Scope: scope, ConfigOnly: configOnly,
				IPAM:   &network.IPAM{Driver: ipamDriver, Config: ipam, Options: ipamOpts.Values()},
				Labels: opts.KVStringsToMap(labels.Values()),
			}
			if configFrom != "" {
				o.ConfigFrom = configFrom
			}
			if cmd.Flags().Changed("ipv4") {
				o.EnableIPv4 = &ipv4
			}
			if cmd.Flags().Changed("ipv6") {
				o.EnableIPv6 = &ipv6
			}
			api, err := c.Client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := api.NetworkCreate(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			for _, w := range res.Warning {
				fmt.Fprintln(c.err, "WARNING:", w)
			}
			fmt.Fprintln(c.out, res.ID)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&driver, "driver", "d", "bridge", "Driver to manage the Network")
	fs.VarP(driverOpts, "opt", "o", "Set driver specific options")
	fs.Var(labels, "label", "Set metadata on a network")
	fs.BoolVar(&internal, "internal", false, "Restrict external access to the network")
	fs.BoolVar(&ipv4, "ipv4", true, "Enable or disable IPv4 address assignment")
	fs.BoolVar(&ipv6, "ipv6", false, "Enable or disable IPv6 address assignment")
	fs.BoolVar(&attachable, "attachable", false, "Enable manual container attachment")
	fs.BoolVar(&ingress, "ingress", false, "Create swarm routing-mesh network")
	fs.StringVar(&scope, "scope", "", "Control the network's scope")
	fs.StringVar(&ipamDriver, "ipam-driver", "default", "IP Address Management Driver")
	fs.StringSliceVar(&subnets, "subnet", nil, "Subnet in CIDR format that represents a network segment")
	fs.StringSliceVar(&ipRanges, "ip-range", nil, "Allocate container ip from a sub-range")
	fs.StringSliceVar(&gateways, "gateway", nil, "IPv4 or IPv6 Gateway for the master subnet")
	fs.Var(auxAddresses, "aux-address", "Auxiliary IPv4 or IPv6 addresses used by Network driver")
	fs.Var(ipamOpts, "ipam-opt", "Set IPAM driver specific options")
	fs.BoolVar(&configOnly, "config-only", false, "Create a configuration only network")
	fs.StringVar(&configFrom, "config-from", "", "The network from which to copy the configuration")
	return cmd
}

// ipamConfig groups --subnet, --ip-range, --gateway and --aux-address by subnet, as docker
// does: each range, gateway and auxiliary address must fall in exactly one subnet.
func ipamConfig(subnets, ranges, gateways []string, aux map[string]string) ([]network.IPAMConfig, error) {
	if len(subnets) < len(ranges) || len(subnets) < len(gateways) {
		return nil, errors.New("every ip-range or gateway must have a corresponding subnet")
	}
	var out []network.IPAMConfig
	for _, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("invalid subnet %s : %w", s, err)
		}
		for _, o := range out {
			if o.Subnet.Overlaps(p) {
				return nil, fmt.Errorf("multiple overlapping subnet configuration is not supported")
			}
		}
		out = append(out, network.IPAMConfig{Subnet: p, AuxAddress: map[string]netip.Addr{}})
	}
	find := func(ip netip.Addr, what, val string) (int, error) {
		idx := -1
		for i, o := range out {
			if o.Subnet.Contains(ip) {
				if idx >= 0 {
					return 0, fmt.Errorf("multiple subnets match %s %s", what, val)
				}
				idx = i
			}
		}
		if idx < 0 {
			return 0, fmt.Errorf("no matching subnet for %s %s", what, val)
		}
		return idx, nil
	}
	for _, r := range ranges {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("invalid ip-range %s : %w", r, err)
		}
		i, err := find(p.Addr(), "range", r)
		if err != nil {
			return nil, err
		}
		if out[i].IPRange.IsValid() {
			return nil, fmt.Errorf("cannot configure multiple ranges (%s, %s) on the same subnet (%s)", r, out[i].IPRange, out[i].Subnet)
		}
		out[i].IPRange = p
	}
	for _, g := range gateways {
		a, err := netip.ParseAddr(g)
		if err != nil {
			return nil, fmt.Errorf("invalid gateway %s", g)
		}
		i, err := find(a, "gateway", g)
		if err != nil {
			return nil, err
		}
		if out[i].Gateway.IsValid() {
			return nil, fmt.Errorf("cannot configure multiple gateways (%s, %s) for the same subnet (%s)", g, out[i].Gateway, out[i].Subnet)
		}
		out[i].Gateway = a
	}
	for k, v := range aux {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("invalid auxiliary address %s", v)
		}
		i, err := find(a, "aux-address", v)
		if err != nil {
			return nil, err
		}
		out[i].AuxAddress[k] = a
	}
	return out, nil
}

func (c *CLI) newNetworkLsCommand() *cobra.Command {
	var noTrunc bool
	var list listFlags
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    noArgsCmd,
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			res, err := api.NetworkList(ctx, client.NetworkListOptions{Filters: list.filters.Value()})
			if err != nil {
				return err
			}
			rows := rowsByName(res.Items, func(n network.Summary) string { return n.Name },
				func(n network.Summary) any { return &format.Network{N: n, Trunc: !noTrunc} })
			return format.Write(c.out, format.NetworkFormat(list.format, list.quiet), format.NetworkHeader, rows)
		}),
	}
	list.add(cmd.Flags(), "Only display network IDs", `Provide filter values (e.g. "driver=bridge")`)
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	return cmd
}

func (c *CLI) newNetworkRmCommand() *cobra.Command {
	var force bool
	cmd := c.verbCommand("rm NETWORK [NETWORK...]", "Remove one or more networks",
		func(ctx context.Context, api *client.Client, n string) error {
			_, err := api.NetworkRemove(ctx, n, client.NetworkRemoveOptions{})
			return skipMissing(err, force)
		})
	cmd.Aliases = []string{"remove"}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	return cmd
}

func (c *CLI) newNetworkConnectCommand() *cobra.Command {
	var ipv4, ipv6 string
	var aliases, linkLocal, driverOpts []string
	var gwPriority int
	links := opts.NewList(opts.ValidateLink)
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ep := &network.EndpointSettings{Aliases: aliases, Links: links.Values(), GwPriority: gwPriority}
			if ipv4 != "" || ipv6 != "" || len(linkLocal) > 0 {
				ep.IPAMConfig = &network.EndpointIPAMConfig{}
				var err error
				if ipv4 != "" {
					if ep.IPAMConfig.IPv4Address, err = netip.ParseAddr(ipv4); err != nil {
						return fmt.Errorf("invalid IPv4 address: %s", ipv4)
					}
				}
				if ipv6 != "" {
					if ep.IPAMConfig.IPv6Address, err = netip.ParseAddr(ipv6); err != nil {
						return fmt.Errorf("invalid IPv6 address: %s", ipv6)
					}
				}
				for _, l := range linkLocal {
					a, err := netip.ParseAddr(l)
					if err != nil {
						return fmt.Errorf("invalid link-local address: %s", l)
					}
					ep.IPAMConfig.LinkLocalIPs = append(ep.IPAMConfig.LinkLocalIPs, a)
				}
			}
			if len(driverOpts) > 0 {
				ep.DriverOpts = opts.KVStringsToMap(driverOpts)
			}
			api, err := c.Client(cmd.Context())
			if err != nil {
				return err
			}
			_, err = api.NetworkConnect(cmd.Context(), args[0], client.NetworkConnectOptions{Container: args[1], EndpointConfig: ep})
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&ipv4, "ip", "", `IPv4 address (e.g., "172.30.100.104")`)
	fs.StringVar(&ipv6, "ip6", "", `IPv6 address (e.g., "2001:db8::33")`)
	fs.Var(links, "link", "Add link to another container")
	fs.StringSliceVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
	fs.StringSliceVar(&linkLocal, "link-local-ip", nil, "Add a link-local address for the container")
	fs.StringSliceVar(&driverOpts, "driver-opt", nil, "driver options for the network")
	fs.IntVar(&gwPriority, "gw-priority", 0, "Highest gw-priority provides the default gateway. Accepts positive and negative values.")
	return cmd
}

func (c *CLI) newNetworkDisconnectCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  exactArgs(2),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			_, err := api.NetworkDisconnect(ctx, args[0], client.NetworkDisconnectOptions{Container: args[1], Force: force})
			return err
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return cmd
}
