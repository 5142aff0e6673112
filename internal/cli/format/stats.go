package format

import (
	"strconv"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
)

// DefaultStatsTable is the default format of `stats`.
const DefaultStatsTable = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

// StatsHeader names the columns of stats rows.
var StatsHeader = Header{
	"Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
	"PIDs": "PIDS",
}

// StatsEntry is one sample of a container's resource usage, as `stats` shows it.
type StatsEntry struct {
	Container                          string // as the user named it
	Name, ID                           string
	CPUPercentage                      float64
	Memory, MemoryLimit, MemoryPercent float64
	NetworkRx, NetworkTx               float64
	BlockRead, BlockWrite              float64
	PidsCurrent                        uint64
	Invalid                            bool // no sample (the container is not running)
}

// StatsFromResponse computes a StatsEntry from a stats sample (cgroup v1 or v2), the CPU
// share from its delta with the previous sample.
func StatsFromResponse(v *container.StatsResponse) StatsEntry {
	e := StatsEntry{Name: v.Name, ID: v.ID}
	cpuDelta := float64(v.CPUStats.CPUUsage.TotalUsage) - float64(v.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(v.CPUStats.SystemUsage) - float64(v.PreCPUStats.SystemUsage)
	online := float64(v.CPUStats.OnlineCPUs)
	if online == 0 {
		online = float64(len(v.CPUStats.CPUUsage.PercpuUsage))
	}
	if sysDelta > 0 && cpuDelta > 0 {
		e.CPUPercentage = cpuDelta / sysDelta * online * 100
	}
	mem := float64(v.MemoryStats.Usage)
	// Page cache that can be reclaimed does not count (total_inactive_file in cgroup v1,
	// inactive_file in v2).
	if c, ok := v.MemoryStats.Stats["total_inactive_file"]; ok && c < v.MemoryStats.Usage {
		mem -= float64(c)
	} else if c, ok := v.MemoryStats.Stats["inactive_file"]; ok && c < v.MemoryStats.Usage {
		mem -= float64(c)
	}
	e.Memory = mem
	e.MemoryLimit = float64(v.MemoryStats.Limit)
	if e.MemoryLimit != 0 {
		e.MemoryPercent = mem / e.MemoryLimit * 100
	}
	for _, n := range v.Networks {
		e.NetworkRx += float64(n.RxBytes)
		e.NetworkTx += float64(n.TxBytes)
	}
	for _, b := range v.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			e.BlockRead += float64(b.Value)
		case "write":
			e.BlockWrite += float64(b.Value)
		}
	}
	e.PidsCurrent = v.PidsStats.Current
	return e
}

// Stats is one row of `stats`.
type Stats struct {
	S     StatsEntry
	Trunc bool
}

// MarshalJSON makes {{json .}} print the row's fields.
func (c *Stats) MarshalJSON() ([]byte, error) { return MarshalMethods(c) }

// Container is the container as the user named it.
func (c *Stats) Container() string { return c.S.Container }

// Name is the container's name.
func (c *Stats) Name() string {
	if len(c.S.Name) > 1 {
		return strings.TrimPrefix(c.S.Name, "/")
	}
	return "--"
}

// ID is the container's ID, short unless --no-trunc.
func (c *Stats) ID() string {
	if c.Trunc {
		return TruncateID(c.S.ID)
	}
	return c.S.ID
}

// CPUPerc is the CPU share, "12.34%".
func (c *Stats) CPUPerc() string {
	if c.S.Invalid {
		return "--"
	}
	return percent(c.S.CPUPercentage)
}

// MemUsage is "usage / limit" in binary units.
func (c *Stats) MemUsage() string {
	if c.S.Invalid {
		return "-- / --"
	}
	return units.BytesSize(c.S.Memory) + " / " + units.BytesSize(c.S.MemoryLimit)
}

// MemPerc is the memory share of the limit.
func (c *Stats) MemPerc() string {
	if c.S.Invalid {
		return "--"
	}
	return percent(c.S.MemoryPercent)
}

// NetIO is "received / sent".
func (c *Stats) NetIO() string {
	if c.S.Invalid {
		return "--"
	}
	return units.HumanSizeWithPrecision(c.S.NetworkRx, 3) + " / " + units.HumanSizeWithPrecision(c.S.NetworkTx, 3)
}

// BlockIO is "read / written".
func (c *Stats) BlockIO() string {
	if c.S.Invalid {
		return "--"
	}
	return units.HumanSizeWithPrecision(c.S.BlockRead, 3) + " / " + units.HumanSizeWithPrecision(c.S.BlockWrite, 3)
}

// PIDs is the number of processes.
func (c *Stats) PIDs() string {
	if c.S.Invalid {
		return "--"
	}
	return strconv.FormatUint(c.S.PidsCurrent, 10)
}

func percent(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "%" }
