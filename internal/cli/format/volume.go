package format

import (
	"strconv"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/volume"
)

// DefaultVolumeTable is the default format of `volume ls`.
const DefaultVolumeTable = "table {{.Driver}}\t{{.Name}}"

// VolumeFormat is the format `volume ls` uses for its --format value and -q.
func VolumeFormat(source string, quiet bool) Format {
	return listFormat(source, quiet, DefaultVolumeTable, "{{.Name}}")
}

// VolumeHeader names the columns of volume rows.
var VolumeHeader = Header{
	"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
	"Labels": "LABELS", "Links": "LINKS", "Size": "SIZE",
}

// Volume is one row of `volume ls`.
type Volume struct{ V volume.Volume }

// MarshalJSON makes {{json .}} print the row's fields.
func (c *Volume) MarshalJSON() ([]byte, error) { return MarshalMethods(c) }

// Name is the volume's name.
func (c *Volume) Name() string { return c.V.Name }

// Driver is the volume's driver.
func (c *Volume) Driver() string { return c.V.Driver }

// Scope is "local" or "global".
func (c *Volume) Scope() string { return c.V.Scope }

// Mountpoint is where the volume's data is on the host.
func (c *Volume) Mountpoint() string { return c.V.Mountpoint }

// Labels are the volume's labels, "k=v" joined with commas.
func (c *Volume) Labels() string { return joinLabels(c.V.Labels) }

// Label is the value of one label.
func (c *Volume) Label(name string) string { return c.V.Labels[name] }

// Links is the number of containers using the volume ("N/A" when not computed).
func (c *Volume) Links() string {
	if c.V.UsageData == nil {
		return "N/A"
	}
	return strconv.FormatInt(c.V.UsageData.RefCount, 10)
}

// Size is the size of the volume's data ("N/A" when not computed).
func (c *Volume) Size() string {
	if c.V.UsageData == nil {
		return "N/A"
	}
	return units.HumanSize(float64(c.V.UsageData.Size))
}

// Availability is the cluster volume availability ("N/A" for local volumes).
func (c *Volume) Availability() string { return "N/A" }

// Group is the cluster volume group ("N/A" for local volumes).
func (c *Volume) Group() string { return "N/A" }

// Status is the cluster volume status ("N/A" for local volumes).
func (c *Volume) Status() string { return "N/A" }
