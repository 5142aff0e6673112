// Package opts owns the flags of berth's commands that docker's CLI gives a type of its
// own (list, map, bytes, decimal, ulimit, mount, network, filter, gpu-request, ...), their
// validation, and the translation of the container flags of run and create into the
// Config, HostConfig and NetworkingConfig that the Engine API takes, as docker sends them.
//
// It is pure: it reads files the flags name (--env-file, --label-file, a seccomp profile)
// but never talks to a daemon.
package opts

import (
	"encoding/csv"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// whiteSpaces are the characters a key may not contain.
const whiteSpaces = " \t"

// Validator checks (and may normalize) one value of a flag.
type Validator func(string) (string, error)

// List is a repeatable flag collecting values in order ("list" in docker's help).
type List struct {
	values   []string
	validate Validator
}

// NewList makes a List with an optional validator.
func NewList(v Validator) *List { return &List{validate: v} }

// Set adds a value.
func (l *List) Set(v string) error {
	if l.validate != nil {
		nv, err := l.validate(v)
		if err != nil {
			return err
		}
		v = nv
	}
	l.values = append(l.values, v)
	return nil
}

// String shows the values ("" when there are none, so that help shows no default).
func (l *List) String() string {
	if len(l.values) == 0 {
		return ""
	}
	return fmt.Sprintf("%v", l.values)
}

// Type is "list".
func (l *List) Type() string { return "list" }

// Values are the values set, nil when none.
func (l *List) Values() []string { return l.values }

// ValuesOrEmpty are the values set, never nil.
func (l *List) ValuesOrEmpty() []string {
	if l.values == nil {
		return []string{}
	}
	return l.values
}

// Len is the number of values.
func (l *List) Len() int { return len(l.values) }

// Has reports whether v was set.
func (l *List) Has(v string) bool {
	for _, x := range l.values {
		if x == v {
			return true
		}
	}
	return false
}

// Map is a repeatable "key=value" flag ("map" in docker's help).
type Map struct {
	values   map[string]string
	validate Validator
}

// NewMap makes a Map with an optional validator.
func NewMap(v Validator) *Map { return &Map{values: map[string]string{}, validate: v} }

// Set adds a key=value.
func (m *Map) Set(v string) error {
	if m.validate != nil {
		nv, err := m.validate(v)
		if err != nil {
			return err
		}
		v = nv
	}
	k, val, _ := strings.Cut(v, "=")
	m.values[k] = val
	return nil
}

// String shows the map as docker does ("map[]").
func (m *Map) String() string { return fmt.Sprintf("%v", m.values) }

// Type is "map".
func (m *Map) Type() string { return "map" }

// Values is the map.
func (m *Map) Values() map[string]string { return m.values }

// MemBytes is a size in bytes given as "512m", "1g" ("bytes" in docker's help).
type MemBytes int64

// Set parses a size.
func (b *MemBytes) Set(v string) error {
	n, err := units.RAMInBytes(v)
	*b = MemBytes(n)
	return err
}

// String is the size ("0" when unset, so that help shows no default).
func (b *MemBytes) String() string {
	if *b != 0 {
		return units.BytesSize(float64(*b))
	}
	return "0"
}

// Type is "bytes".
func (b *MemBytes) Type() string { return "bytes" }

// Value is the size in bytes.
func (b *MemBytes) Value() int64 { return int64(*b) }

// MemSwapBytes is MemBytes that also takes -1 (unlimited swap).
type MemSwapBytes int64

// Set parses a size or -1.
func (b *MemSwapBytes) Set(v string) error {
	if v == "-1" {
		*b = -1
		return nil
	}
	n, err := units.RAMInBytes(v)
	*b = MemSwapBytes(n)
	return err
}

// String is the size.
func (b *MemSwapBytes) String() string { m := MemBytes(*b); return m.String() }

// Type is "bytes".
func (b *MemSwapBytes) Type() string { return "bytes" }

// Value is the size in bytes.
func (b *MemSwapBytes) Value() int64 { return int64(*b) }

// NanoCPUs is a number of CPUs given as a decimal ("1.5"), kept in billionths.
type NanoCPUs int64

// Set parses a decimal number of CPUs.
func (c *NanoCPUs) Set(v string) error {
	n, err := ParseCPUs(v)
	*c = NanoCPUs(n)
	return err
}

// String is the number of CPUs ("" when unset).
func (c *NanoCPUs) String() string {
	if *c == 0 {
		return ""
	}
	return big.NewRat(int64(*c), 1e9).FloatString(3)
}

// Type is "decimal".
func (c *NanoCPUs) Type() string { return "decimal" }

// Value is the number of CPUs in billionths.
func (c *NanoCPUs) Value() int64 { return int64(*c) }

// ParseCPUs parses a decimal number of CPUs into billionths of a CPU.
func ParseCPUs(v string) (int64, error) {
	cpu, ok := new(big.Rat).SetString(v)
	if !ok {
		return 0, fmt.Errorf("failed to parse %v as a rational number", v)
	}
	nano := cpu.Mul(cpu, big.NewRat(1e9, 1))
	if !nano.IsInt() {
		return 0, errors.New("value is too precise")
	}
	return nano.Num().Int64(), nil
}

// Ulimits is the repeatable --ulimit flag ("nofile=1024:2048").
type Ulimits struct{ values map[string]*container.Ulimit }

// NewUlimits makes an empty Ulimits.
func NewUlimits() *Ulimits { return &Ulimits{values: map[string]*container.Ulimit{}} }

// Set parses one ulimit; a later one of the same name replaces the earlier.
func (u *Ulimits) Set(v string) error {
	l, err := units.ParseUlimit(v)
	if err != nil {
		return err
	}
	u.values[l.Name] = l
	return nil
}

// String lists the ulimits.
func (u *Ulimits) String() string {
	var out []string
	for _, l := range u.List() {
		out = append(out, l.String())
	}
	return fmt.Sprintf("%v", out)
}

// Type is "ulimit".
func (u *Ulimits) Type() string { return "ulimit" }

// List is the ulimits by name (empty, not nil, when none: docker sends []).
func (u *Ulimits) List() []*container.Ulimit {
	var names []string
	for n := range u.values {
		names = append(names, n)
	}
	sort.Strings(names)
	out := []*container.Ulimit{}
	for _, n := range names {
		out = append(out, u.values[n])
	}
	return out
}

// deviceList is the values of a repeatable flag with one setting per device.
type deviceList[T fmt.Stringer] struct{ values []T }

// String lists the settings.
func (d *deviceList[T]) String() string {
	var out []string
	for _, v := range d.values {
		out = append(out, v.String())
	}
	return fmt.Sprintf("%v", out)
}

// Type is "list".
func (d *deviceList[T]) Type() string { return "list" }

// List is the settings (empty, not nil, when none: docker sends []).
func (d *deviceList[T]) List() []T {
	if d.values == nil {
		return []T{}
	}
	return d.values
}

// WeightDevices is --blkio-weight-device ("/dev/sda:200").
type WeightDevices struct {
	deviceList[*blkiodev.WeightDevice]
}

// Set parses one device weight.
func (w *WeightDevices) Set(v string) error {
	path, weight, ok := strings.Cut(v, ":")
	if !ok || !strings.HasPrefix(path, "/dev/") {
		return fmt.Errorf("bad format: %s", v)
	}
	n, err := strconv.ParseUint(weight, 10, 16)
	if err != nil {
		return fmt.Errorf("invalid weight for device: %s", v)
	}
	if n > 0 && (n < 10 || n > 1000) {
		return fmt.Errorf("invalid weight for device: %s", v)
	}
	w.values = append(w.values, &blkiodev.WeightDevice{Path: path, Weight: uint16(n)})
	return nil
}

// ThrottleDevices is --device-{read,write}-{bps,iops} ("/dev/sda:1mb").
type ThrottleDevices struct {
	deviceList[*blkiodev.ThrottleDevice]
	iops bool
}

// NewThrottleDevices makes a list of byte rates, or of operation rates when iops.
func NewThrottleDevices(iops bool) *ThrottleDevices { return &ThrottleDevices{iops: iops} }

// Set parses one device rate.
func (t *ThrottleDevices) Set(v string) error {
	path, rate, ok := strings.Cut(v, ":")
	if !ok || !strings.HasPrefix(path, "/dev/") {
		return fmt.Errorf("bad format: %s", v)
	}
	var n uint64
	if t.iops {
		r, err := strconv.ParseUint(rate, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid rate for device: %s. The correct format is <device-path>:<number>. Number must be a positive integer", v)
		}
		n = r
	} else {
		r, err := units.RAMInBytes(rate)
		if err != nil || r < 0 {
			return fmt.Errorf("invalid rate for device: %s. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb", v)
		}
		n = uint64(r)
	}
	t.values = append(t.values, &blkiodev.ThrottleDevice{Path: path, Rate: n})
	return nil
}

// Mounts is the repeatable --mount flag: CSV fields as docker takes them
// ("type=bind,source=/a,target=/b,readonly").
type Mounts struct{ values []mount.Mount }

// Set parses one mount.
func (m *Mounts) Set(value string) error {
	fields, err := csv.NewReader(strings.NewReader(value)).Read()
	if err != nil {
		return err
	}
	mt := mount.Mount{Type: mount.TypeVolume}
	volumeOptions := func() *mount.VolumeOptions {
		if mt.VolumeOptions == nil {
			mt.VolumeOptions = &mount.VolumeOptions{Labels: map[string]string{}}
		}
		if mt.VolumeOptions.DriverConfig == nil {
			mt.VolumeOptions.DriverConfig = &mount.Driver{}
		}
		return mt.VolumeOptions
	}
	bindOptions := func() *mount.BindOptions {
		if mt.BindOptions == nil {
			mt.BindOptions = &mount.BindOptions{}
		}
		return mt.BindOptions
	}
	tmpfsOptions := func() *mount.TmpfsOptions {
		if mt.TmpfsOptions == nil {
			mt.TmpfsOptions = &mount.TmpfsOptions{}
		}
		return mt.TmpfsOptions
	}
	setKV := func(target map[string]string, v string) {
		if k, val, _ := strings.Cut(v, "="); k != "" {
			target[k] = val
		}
	}
	parseBool := func(key, val string) (bool, error) {
		b, err := strconv.ParseBool(val)
		if err != nil {
			return false, fmt.Errorf("invalid value for %s: %s", key, val)
		}
		return b, nil
	}
	for _, field := range fields {
		key, val, ok := strings.Cut(field, "=")
		if !ok {
			switch key {
			case "readonly", "ro":
				mt.ReadOnly = true
			case "volume-nocopy":
				volumeOptions().NoCopy = true
			case "bind-nonrecursive":
				bindOptions().NonRecursive = true
			case "bind-create-src":
				bindOptions().CreateMountpoint = true
			default:
				return fmt.Errorf("invalid field '%s' must be a key=value pair", field)
			}
			continue
		}
		switch key {
		case "type":
			mt.Type = mount.Type(strings.ToLower(val))
		case "source", "src":
			mt.Source = val
			if strings.HasPrefix(val, "./") || val == "." {
				if abs, err := filepath.Abs(val); err == nil {
					mt.Source = abs
				}
			}
		case "target", "dst", "destination":
			mt.Target = val
		case "readonly", "ro":
			if mt.ReadOnly, err = parseBool(key, val); err != nil {
				return err
			}
		case "consistency":
			mt.Consistency = mount.Consistency(strings.ToLower(val))
		case "bind-propagation":
			bindOptions().Propagation = mount.Propagation(strings.ToLower(val))
		case "bind-nonrecursive":
			if bindOptions().NonRecursive, err = parseBool(key, val); err != nil {
				return err
			}
		case "bind-create-src":
			if bindOptions().CreateMountpoint, err = parseBool(key, val); err != nil {
				return err
			}
		case "bind-recursive":
			switch val {
			case "enabled":
			case "disabled":
				bindOptions().NonRecursive = true
			case "writable":
				bindOptions().ReadOnlyNonRecursive = true
			case "readonly":
				bindOptions().ReadOnlyForceRecursive = true
			default:
				return fmt.Errorf(`invalid value for %s: %s (must be "enabled", "disabled", "writable", or "readonly")`, key, val)
			}
		case "volume-nocopy":
			if volumeOptions().NoCopy, err = parseBool(key, val); err != nil {
				return fmt.Errorf("invalid value for volume-nocopy: %s", val)
			}
		case "volume-subpath":
			volumeOptions().Subpath = val
		case "volume-label":
			setKV(volumeOptions().Labels, val)
		case "volume-driver":
			volumeOptions().DriverConfig.Name = val
		case "volume-opt":
			if volumeOptions().DriverConfig.Options == nil {
				volumeOptions().DriverConfig.Options = map[string]string{}
			}
			setKV(volumeOptions().DriverConfig.Options, val)
		case "tmpfs-size":
			n, err := units.RAMInBytes(val)
			if err != nil {
				return fmt.Errorf("invalid value for %s: %s", key, val)
			}
			tmpfsOptions().SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(val, 8, 32)
			if err != nil {
				return fmt.Errorf("invalid value for %s: %s", key, val)
			}
			tmpfsOptions().Mode = os.FileMode(n)
		default:
			return fmt.Errorf("unexpected key '%s' in '%s'", key, field)
		}
	}
	if mt.Type == "" {
		return errors.New("type is required")
	}
	if mt.Target == "" {
		return errors.New("target is required")
	}
	if mt.VolumeOptions != nil && mt.Type != mount.TypeVolume {
		return fmt.Errorf("cannot mix 'volume-*' options with mount type '%s'", mt.Type)
	}
	if mt.BindOptions != nil && mt.Type != mount.TypeBind {
		return fmt.Errorf("cannot mix 'bind-*' options with mount type '%s'", mt.Type)
	}
	if mt.TmpfsOptions != nil && mt.Type != mount.TypeTmpfs {
		return fmt.Errorf("cannot mix 'tmpfs-*' options with mount type '%s'", mt.Type)
	}
	m.values = append(m.values, mt)
	return nil
}

// String lists the mounts.
func (m *Mounts) String() string {
	var out []string
	for _, mt := range m.values {
		out = append(out, fmt.Sprintf("%s %s %s", mt.Type, mt.Source, mt.Target))
	}
	return strings.Join(out, ", ")
}

// Type is "mount".
func (m *Mounts) Type() string { return "mount" }

// Values are the mounts.
func (m *Mounts) Values() []mount.Mount { return m.values }

// Filters is the repeatable --filter flag ("name=value").
type Filters struct{ values client.Filters }

// NewFilters makes an empty Filters.
func NewFilters() *Filters { return &Filters{values: client.Filters{}} }

// Set adds one filter.
func (f *Filters) Set(v string) error {
	if v == "" {
		return nil
	}
	name, val, ok := strings.Cut(v, "=")
	if !ok {
		return errors.New("bad format of filter (expected name=value)")
	}
	f.values.Add(strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(val))
	return nil
}

// String is the filters as JSON.
func (f *Filters) String() string {
	if len(f.values) == 0 {
		return ""
	}
	return fmt.Sprintf("%v", map[string]map[string]bool(f.values))
}

// Type is "filter".
func (f *Filters) Type() string { return "filter" }

// Value is the filters.
func (f *Filters) Value() client.Filters { return f.values }

// GPUs is --gpus ("all", "2", "device=0,1", "count=1,capabilities=utility").
type GPUs struct{ values []container.DeviceRequest }

// Set parses one GPU request.
func (g *GPUs) Set(value string) error {
	fields, err := csv.NewReader(strings.NewReader(value)).Read()
	if err != nil {
		return err
	}
	req := container.DeviceRequest{}
	seen := map[string]bool{}
	parseCount := func(s string) (int, error) {
		if s == "all" {
			return -1, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("invalid count (%s): value must be either \"all\" or an integer", s)
		}
		return n, nil
	}
	for _, field := range fields {
		key, val, ok := strings.Cut(field, "=")
		if seen[key] {
			return fmt.Errorf("gpu request key '%s' can be specified only once", key)
		}
		seen[key] = true
		if !ok {
			seen["count"] = true
			if req.Count, err = parseCount(key); err != nil {
				return err
			}
			continue
		}
		switch key {
		case "driver":
			req.Driver = val
		case "count":
			if req.Count, err = parseCount(val); err != nil {
				return err
			}
		case "device":
			req.DeviceIDs = strings.Split(val, ",")
		case "capabilities":
			req.Capabilities = [][]string{append(strings.Split(val, ","), "gpu")}
		case "options":
			of, err := csv.NewReader(strings.NewReader(val)).Read()
			if err != nil {
				return err
			}
			req.Options = KVStringsToMap(of)
		default:
			return fmt.Errorf("unexpected key '%s' in '%s'", key, field)
		}
	}
	if !seen["count"] && req.DeviceIDs == nil {
		req.Count = 1
	}
	if req.Options == nil {
		req.Options = map[string]string{}
	}
	if req.Capabilities == nil {
		req.Capabilities = [][]string{{"gpu"}}
	}
	g.values = append(g.values, req)
	return nil
}

// String is empty (no default shown).
func (g *GPUs) String() string { return "" }

// Type is "gpu-request".
func (g *GPUs) Type() string { return "gpu-request" }

// Values are the device requests.
func (g *GPUs) Values() []container.DeviceRequest { return g.values }

// KVStringsToMap turns "k=v" strings into a map ("k" alone maps to "").
func KVStringsToMap(values []string) map[string]string {
	m := make(map[string]string, len(values))
	for _, v := range values {
		k, val, _ := strings.Cut(v, "=")
		m[k] = val
	}
	return m
}
