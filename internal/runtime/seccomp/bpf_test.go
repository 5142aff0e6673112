package seccomp

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// seccompData mirrors struct seccomp_data.
type seccompData struct {
	nr   int32
	arch uint32
	ip   uint64
	args [6]uint64
}

func (d *seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.NativeEndian.PutUint32(b[0:], uint32(d.nr))
	binary.NativeEndian.PutUint32(b[4:], d.arch)
	binary.NativeEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.NativeEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// runBPF interprets a seccomp classic BPF program on d, the way the kernel
// would, and returns the filter's return value.
func runBPF(prog []unix.SockFilter, d seccompData) (uint32, error) {
	data := d.bytes()
	var a, x uint32
	var mem [16]uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		k := in.K
		switch in.Code & 0x07 {
		case unix.BPF_LD:
			switch in.Code {
			case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
				if k%4 != 0 || k+4 > uint32(len(data)) {
					return 0, fmt.Errorf("pc %d: bad load offset %d", pc, k)
				}
				a = binary.NativeEndian.Uint32(data[k:])
			case unix.BPF_LD | unix.BPF_MEM:
				a = mem[k]
			case unix.BPF_LD | unix.BPF_IMM:
				a = k
			default:
				return 0, fmt.Errorf("pc %d: unsupported load %#x", pc, in.Code)
			}
		case unix.BPF_LDX:
			switch in.Code {
			case unix.BPF_LDX | unix.BPF_MEM:
				x = mem[k]
			case unix.BPF_LDX | unix.BPF_IMM:
				x = k
			default:
				return 0, fmt.Errorf("pc %d: unsupported ldx %#x", pc, in.Code)
			}
		case unix.BPF_ST:
			mem[k] = a
		case unix.BPF_STX:
			mem[k] = x
		case unix.BPF_ALU:
			v := k
			if in.Code&unix.BPF_X != 0 {
				v = x
			}
			switch in.Code & 0xf0 {
			case unix.BPF_ADD:
				a += v
			case unix.BPF_SUB:
				a -= v
			case unix.BPF_AND:
				a &= v
			case unix.BPF_OR:
				a |= v
			case unix.BPF_XOR:
				a ^= v
			case unix.BPF_LSH:
				a <<= v
			case unix.BPF_RSH:
				a >>= v
			case unix.BPF_NEG:
				a = -a
			default:
				return 0, fmt.Errorf("pc %d: unsupported alu %#x", pc, in.Code)
			}
		case unix.BPF_JMP:
			if in.Code&0xf0 == unix.BPF_JA {
				pc += int(k)
				continue
			}
			v := k
			if in.Code&unix.BPF_X != 0 {
				v = x
			}
			var cond bool
			switch in.Code & 0xf0 {
			case unix.BPF_JEQ:
				cond = a == v
			case unix.BPF_JGT:
				cond = a > v
			case unix.BPF_JGE:
				cond = a >= v
			case unix.BPF_JSET:
				cond = a&v != 0
			default:
				return 0, fmt.Errorf("pc %d: unsupported jump %#x", pc, in.Code)
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET:
			if in.Code&0x18 == unix.BPF_A {
				return a, nil
			}
			return k, nil
		case unix.BPF_MISC:
			if in.Code&0xf8 == unix.BPF_TAX {
				x = a
			} else {
				a = x
			}
		}
	}
	return 0, fmt.Errorf("fell off the end of the program")
}
