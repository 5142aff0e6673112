package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"berth/internal/runtime"
)

func updateCmd() *cobra.Command {
	var resFile string
	var memory, memSwap, memRes, kernelMem, pidsLimit, cpuQuota, cpuRtRuntime int64
	var cpuShares, cpuPeriod, cpuRtPeriod uint64
	var cpusetCpus, cpusetMems string
	var blkioWeight uint16
	cmd := &cobra.Command{
		Use:   "update [flags] <container-id>",
		Short: "update a container's resource limits",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			res := &specs.LinuxResources{}
			if resFile != "" {
				data, err := readFileOrStdin(resFile)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(data, res); err != nil {
					return fmt.Errorf("resources: %w", err)
				}
			}
			fl := cmd.Flags()
			mem := func() *specs.LinuxMemory {
				if res.Memory == nil {
					res.Memory = &specs.LinuxMemory{}
				}
				return res.Memory
			}
			cpu := func() *specs.LinuxCPU {
				if res.CPU == nil {
					res.CPU = &specs.LinuxCPU{}
				}
				return res.CPU
			}
			if fl.Changed("memory") {
				mem().Limit = &memory
			}
			if fl.Changed("memory-swap") {
				mem().Swap = &memSwap
			}
			if fl.Changed("memory-reservation") {
				mem().Reservation = &memRes
			}
			if fl.Changed("kernel-memory") {
				_ = kernelMem
			}
			if fl.Changed("pids-limit") {
				res.Pids = &specs.LinuxPids{Limit: &pidsLimit}
			}
			if fl.Changed("cpu-shares") {
				cpu().Shares = &cpuShares
			}
			if fl.Changed("cpu-quota") {
				cpu().Quota = &cpuQuota
			}
			if fl.Changed("cpu-period") {
				cpu().Period = &cpuPeriod
			}
			if fl.Changed("cpu-rt-period") {
				cpu().RealtimePeriod = &cpuRtPeriod
			}
			if fl.Changed("cpu-rt-runtime") {
				cpu().RealtimeRuntime = &cpuRtRuntime
			}
			if fl.Changed("cpuset-cpus") {
				cpu().Cpus = cpusetCpus
			}
			if fl.Changed("cpuset-mems") {
				cpu().Mems = cpusetMems
			}
			if fl.Changed("blkio-weight") {
				res.BlockIO = &specs.LinuxBlockIO{Weight: &blkioWeight}
			}
			return rt().Update(args[0], res)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&resFile, "resources", "r", "", "path to a resources JSON file (- for stdin)")
	f.Int64Var(&memory, "memory", 0, "memory limit in bytes")
	f.Int64Var(&memSwap, "memory-swap", 0, "memory+swap limit in bytes")
	f.Int64Var(&memRes, "memory-reservation", 0, "memory reservation in bytes")
	f.Int64Var(&kernelMem, "kernel-memory", 0, "ignored (kernel memory limits are gone)")
	f.Int64Var(&pidsLimit, "pids-limit", 0, "maximum number of pids")
	f.Uint64Var(&cpuShares, "cpu-shares", 0, "CPU shares")
	f.Int64Var(&cpuQuota, "cpu-quota", 0, "CFS quota in microseconds")
	f.Uint64Var(&cpuPeriod, "cpu-period", 0, "CFS period in microseconds")
	f.Uint64Var(&cpuRtPeriod, "cpu-rt-period", 0, "realtime period")
	f.Int64Var(&cpuRtRuntime, "cpu-rt-runtime", 0, "realtime runtime")
	f.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPUs allowed")
	f.StringVar(&cpusetMems, "cpuset-mems", "", "memory nodes allowed")
	f.Uint16Var(&blkioWeight, "blkio-weight", 0, "block IO weight")
	return cmd
}

// event is what runc events prints.
type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

func eventsCmd() *cobra.Command {
	var stats bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "events [flags] <container-id>",
		Short: "print container events and resource statistics",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := rt()
			id := args[0]
			enc := json.NewEncoder(os.Stdout)
			if stats {
				st, err := r.Stats(id)
				if err != nil {
					return err
				}
				return enc.Encode(event{Type: "stats", ID: id, Data: st})
			}
			if interval <= 0 {
				return fmt.Errorf("interval must be positive")
			}
			oom := r.OOMEvents(id)
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				c, err := r.Load(id)
				if err != nil {
					return err
				}
				if r.Status(c) == runtime.StatusStopped {
					return nil
				}
				select {
				case <-oom:
					enc.Encode(event{Type: "oom", ID: id})
				case <-tick.C:
					st, err := r.Stats(id)
					if err != nil {
						return nil
					}
					enc.Encode(event{Type: "stats", ID: id, Data: st})
				}
			}
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print the statistics once and exit")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "statistics interval")
	return cmd
}

func featuresCmd() *cobra.Command {
	return &cobra.Command{
		Use: "features", Short: "print the features this runtime implements (JSON)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return printJSON(runtime.Features()) },
	}
}

func specCmd() *cobra.Command {
	var bundle string
	var rootless bool
	cmd := &cobra.Command{
		Use: "spec", Short: "write a default config.json into the bundle", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := bundle + "/config.json"
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("file %s exists: remove it first", path)
			}
			s := runtime.DefaultSpec(rootless)
			data, err := json.MarshalIndent(s, "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(path, data, 0o666)
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "a spec for rootless containers")
	return cmd
}

func specVersion() string { return specs.Version }
