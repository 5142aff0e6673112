package server

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

const madvDontneed = 4

// dropBinaryPages unmaps the pages of the shim's own executable image (code and read-only
// data, never written) from its address space: they are page cache, shared with every other
// shim, and mapped by the start-up path (and the kernel's fault-around, 64 KiB at a time) far
// beyond what an idle shim touches. The pages it needs again fault back in from the page cache.
// This lowers the shim's RSS/PSS to its working set, and leaves the page cache pages unmapped,
// which the kernel reclaims more readily under pressure.
func dropBinaryPages() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	for _, line := range bytes.Split(maps, []byte{'\n'}) {
		// 00400000-004b7000 r-xp 00000000 fe:00 788305   /path/to/berth-shim
		f := bytes.Fields(line)
		if len(f) < 6 || string(f[5]) != exe || f[1][0] != 'r' || f[1][1] == 'w' {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte{'-'})
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), madvDontneed)
	}
}
