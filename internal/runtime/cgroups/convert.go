package cgroups

import (
	"errors"
	"fmt"
)

// SharesToWeight converts cgroup v1 cpu.shares ([2, 262144]) to cgroup v2
// cpu.weight ([1, 10000]) with runc's linear formula
// 1 + ((shares-2)*9999)/262142. Zero means "unset" and stays zero; values
// outside the v1 range are clamped first so the result is always valid.
func SharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// BlkioWeightToIOWeight converts a v1 blkio weight ([10, 1000]) to a v2
// io.weight ([1, 10000]) linearly, as runc does: 1 + (w-10)*9999/990.
func BlkioWeightToIOWeight(weight uint16) uint64 {
	if weight == 0 {
		return 0
	}
	w := min(max(uint64(weight), 10), 1000)
	return 1 + (w-10)*9999/990
}

// SwapToV2 converts the OCI memory.swap value (memory+swap, v1 semantics) to
// the value for cgroup v2 memory.swap.max (swap only), given the memory
// limit. It follows runc's rules:
//
//   - limit -1 and swap unset (0): both unlimited, returns -1;
//   - swap -1 (unlimited) or 0 (unset): returned as is;
//   - limit -1: swap returned as is;
//   - limit unset (0) with a swap value: error, nothing to subtract from;
//   - swap < limit: error;
//   - otherwise swap - limit (0 disables swap).
//
// A result of -1 means "max"; 0 together with swap > 0 means "write 0".
func SwapToV2(swap, limit int64) (int64, error) {
	switch {
	case limit == -1 && swap == 0:
		return -1, nil
	case swap == -1, swap == 0:
		return swap, nil
	case limit == -1:
		return swap, nil
	case limit == 0:
		return 0, errors.New("unable to set swap limit without memory limit")
	case limit < 0:
		return 0, fmt.Errorf("invalid memory limit %d", limit)
	case swap < limit:
		return 0, fmt.Errorf("memory+swap limit (%d) must be >= memory limit (%d)", swap, limit)
	}
	return swap - limit, nil
}

// PidsLimitValue is what goes into pids.max for the OCI pids.limit value:
// negative means "max"; 0 is written as "1" like runc does (systemd cannot
// express 0 and the effect is the same: the container cannot fork).
func PidsLimitValue(limit int64) string {
	switch {
	case limit < 0:
		return "max"
	case limit == 0:
		return "1"
	}
	return fmt.Sprint(limit)
}
