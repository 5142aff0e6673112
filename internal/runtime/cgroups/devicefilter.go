package cgroups

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// deviceFilterLicense is the license string of the device filter program.
const deviceFilterLicense = "Apache"

// deviceFilter compiles a device rule list into a BPF_PROG_TYPE_CGROUP_DEVICE
// program. The rules are first emulated (see emulateDevices) so the program
// enforces exactly what cgroup v1 would; it then checks each exception and
// falls back to the default policy. Rule list order is respected through the
// emulation; the starting policy is "deny everything".
func deviceFilter(rules []specs.LinuxDeviceCgroup) (asm.Instructions, error) {
	s, err := emulateDevices(rules)
	if err != nil {
		return nil, err
	}
	return s.program(), nil
}

// program emits the eBPF code for the state:
//
//	R2 = device type, R3 = requested access, R4 = major, R5 = minor
//	for each exception: if it matches, return its verdict
//	return default
//
// An allow exception matches when it grants every requested access bit; a
// deny exception matches when it shares any bit with the request (cgroup v1
// semantics for both).
func (s *deviceState) program() asm.Instructions {
	// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
	// access_type = (access << 16) | type
	insts := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.And.Imm32(asm.R2, 0xFFFF),
		asm.LoadMem(asm.R3, asm.R1, 0, asm.Word),
		asm.RSh.Imm32(asm.R3, 16),
		asm.LoadMem(asm.R4, asm.R1, 4, asm.Word),
		asm.LoadMem(asm.R5, asm.R1, 8, asm.Word),
	}
	verdict := func(allow bool) int32 {
		if allow {
			return 1
		}
		return 0
	}
	for i, e := range s.sortedExceptions() {
		next := "block-" + strconv.Itoa(i+1)
		bpfType := int32(unix.BPF_DEVCG_DEV_CHAR)
		if e.typ == 'b' {
			bpfType = int32(unix.BPF_DEVCG_DEV_BLOCK)
		}
		block := asm.Instructions{asm.JNE.Imm32(asm.R2, bpfType, next)}
		if e.major != wildcard {
			block = append(block, asm.JNE.Imm32(asm.R4, int32(uint32(e.major)), next))
		}
		if e.minor != wildcard {
			block = append(block, asm.JNE.Imm32(asm.R5, int32(uint32(e.minor)), next))
		}
		if e.access != accAll {
			if e.allow {
				// Requested bits outside the granted set -> not this rule.
				block = append(block,
					asm.Mov.Reg32(asm.R1, asm.R3),
					asm.And.Imm32(asm.R1, int32(accAll&^e.access)),
					asm.JNE.Imm32(asm.R1, 0, next))
			} else {
				// No requested bit is denied -> not this rule.
				block = append(block,
					asm.Mov.Reg32(asm.R1, asm.R3),
					asm.And.Imm32(asm.R1, int32(e.access)),
					asm.JEq.Imm32(asm.R1, 0, next))
			}
		}
		block = append(block, asm.Mov.Imm32(asm.R0, verdict(e.allow)), asm.Return())
		block[0] = block[0].WithSymbol("block-" + strconv.Itoa(i))
		insts = append(insts, block...)
	}
	last := asm.Mov.Imm32(asm.R0, verdict(s.defaultAllow)).WithSymbol("block-" + strconv.Itoa(len(s.exceptions)))
	insts = append(insts, last, asm.Return())
	return insts
}

// attachDeviceFilter loads the program for rules and attaches it to the
// cgroup directory with BPF_PROG_ATTACH + BPF_F_ALLOW_MULTI (not a bpf_link),
// so it stays attached after this process exits and goes away with the
// cgroup. Programs attached before (an earlier Create/Set) are replaced:
// the new one is attached first, then the old ones are detached, so there
// is never a moment without a filter.
func attachDeviceFilter(dir string, rules []specs.LinuxDeviceCgroup) error {
	insts, err := deviceFilter(rules)
	if err != nil {
		return err
	}
	dirf, err := os.OpenFile(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", dir, bareErr(err))
	}
	defer dirf.Close()
	fd := int(dirf.Fd())

	old, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return fmt.Errorf("query device programs of %s: %w", dir, err)
	}
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Type:         ebpf.CGroupDevice,
		Instructions: insts,
		License:      deviceFilterLicense,
	}, ebpf.ProgramOptions{})
	if err != nil {
		return fmt.Errorf("load device filter for %s: %w", dir, err)
	}
	defer prog.Close()

	attach := link.RawAttachProgramOptions{
		Target:  fd,
		Program: prog,
		Attach:  ebpf.AttachCGroupDevice,
		Flags:   unix.BPF_F_ALLOW_MULTI,
	}
	if len(old.Programs) == 1 {
		// Swap atomically when the kernel can (BPF_F_REPLACE, 5.6+).
		if oldProg, err := ebpf.NewProgramFromID(old.Programs[0].ID); err == nil {
			attach.Anchor = link.ReplaceProgram(oldProg)
			err = link.RawAttachProgram(attach)
			oldProg.Close()
			if err == nil {
				return nil
			}
			attach.Anchor = nil
		}
	}
	if err := link.RawAttachProgram(attach); err != nil {
		return fmt.Errorf("attach device filter to %s (BPF_PROG_ATTACH, BPF_F_ALLOW_MULTI): %w", dir, err)
	}
	var errs []error
	for _, p := range old.Programs {
		op, err := ebpf.NewProgramFromID(p.ID)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			errs = append(errs, fmt.Errorf("open old device filter %d: %w", p.ID, err))
			continue
		}
		err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: fd, Program: op, Attach: ebpf.AttachCGroupDevice})
		op.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("detach old device filter %d from %s: %w", p.ID, dir, err))
		}
	}
	return errors.Join(errs...)
}
