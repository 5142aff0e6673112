package format

import (
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/network"
)

// DefaultNetworkTable is the default format of `network ls`.
const DefaultNetworkTable = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

// NetworkFormat is the format `network ls` uses for its --format value and -q.
func NetworkFormat(source string, quiet bool) Format {
	return listFormat(source, quiet, DefaultNetworkTable, QuietFormat)
}

// NetworkHeader names the columns of network rows.
var NetworkHeader = Header{
	"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4",
	"IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
}

// Network is one row of `network ls`.
type Network struct {
	N     network.Summary
	Trunc bool
}

// MarshalJSON makes {{json .}} print the row's fields.
func (c *Network) MarshalJSON() ([]byte, error) { return MarshalMethods(c) }

// ID is the network's ID, short unless --no-trunc.
func (c *Network) ID() string {
	if c.Trunc {
		return TruncateID(c.N.ID)
	}
	return c.N.ID
}

// Name is the network's name.
func (c *Network) Name() string { return c.N.Name }

// Driver is the network's driver.
func (c *Network) Driver() string { return c.N.Driver }

// Scope is the network's scope.
func (c *Network) Scope() string { return c.N.Scope }

// IPv4 says whether IPv4 is enabled.
func (c *Network) IPv4() string { return fmt.Sprintf("%v", c.N.EnableIPv4) }

// IPv6 says whether IPv6 is enabled.
func (c *Network) IPv6() string { return fmt.Sprintf("%v", c.N.EnableIPv6) }

// Internal says whether the network is internal.
func (c *Network) Internal() string { return fmt.Sprintf("%v", c.N.Internal) }

// Labels are the network's labels, "k=v" joined with commas.
func (c *Network) Labels() string { return joinLabels(c.N.Labels) }

// Label is the value of one label.
func (c *Network) Label(name string) string { return c.N.Labels[name] }

// CreatedAt is the creation time.
func (c *Network) CreatedAt() string { return strings.TrimSpace(c.N.Created.String()) }
