package seccomp

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A tiny evaluator of libseccomp's "pseudo filter code" (seccomp_export_pfc),
// which prints libseccomp's rule database as nested ifs. The differential
// test uses it to tell apart where this package differs from libseccomp's
// rules and where libseccomp's BPF differs from its own rules.

type pfcStmt struct {
	cond       *pfcCond // nil: action
	then, els  []*pfcStmt
	action     uint32
	isDefault  bool // "# default action" follows
	archFilter bool
}

type pfcCond struct {
	what  string // "arch", "syscall", or "aN", "aN.hi32", "aN.lo32"
	op    string
	mask  uint32
	value uint32
}

type pfcLine struct {
	indent int
	text   string
}

// parsePFC parses the pseudo filter code.
func parsePFC(src string) ([]*pfcStmt, error) {
	var lines []pfcLine
	nextDefault := false
	var defaults []int
	for _, l := range strings.Split(src, "\n") {
		t := strings.TrimLeft(l, " ")
		if t == "" {
			continue
		}
		if strings.HasPrefix(t, "#") {
			if t == "# default action" {
				nextDefault = true
			}
			continue
		}
		if nextDefault {
			defaults = append(defaults, len(lines))
			nextDefault = false
		}
		lines = append(lines, pfcLine{len(l) - len(t), t})
	}
	isDefault := map[int]bool{}
	for _, i := range defaults {
		isDefault[i] = true
	}
	pos := 0
	var block func(indent int) ([]*pfcStmt, error)
	block = func(indent int) ([]*pfcStmt, error) {
		var out []*pfcStmt
		for pos < len(lines) && lines[pos].indent == indent {
			l := lines[pos]
			switch {
			case strings.HasPrefix(l.text, "action "):
				a, err := pfcAction(strings.TrimSuffix(strings.TrimPrefix(l.text, "action "), ";"))
				if err != nil {
					return nil, err
				}
				out = append(out, &pfcStmt{action: a, isDefault: isDefault[pos]})
				pos++
			case strings.HasPrefix(l.text, "if (") && strings.HasSuffix(l.text, ")"):
				c, err := pfcParseCond(l.text[4 : len(l.text)-1])
				if err != nil {
					return nil, err
				}
				pos++
				s := &pfcStmt{cond: c, archFilter: c.what == "arch"}
				if s.then, err = block(indent + 2); err != nil {
					return nil, err
				}
				if pos < len(lines) && lines[pos].indent == indent && strings.HasPrefix(lines[pos].text, "else") {
					pos++
					if s.els, err = block(indent + 2); err != nil {
						return nil, err
					}
				}
				out = append(out, s)
			default:
				return nil, fmt.Errorf("pfc: cannot parse %q", l.text)
			}
		}
		return out, nil
	}
	stmts, err := block(0)
	if err == nil && pos != len(lines) {
		err = fmt.Errorf("pfc: unexpected indentation at %q", lines[pos].text)
	}
	return stmts, err
}

func pfcAction(s string) (uint32, error) {
	switch {
	case s == "KILL":
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case s == "KILL_PROCESS":
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case s == "TRAP":
		return unix.SECCOMP_RET_TRAP, nil
	case s == "LOG":
		return unix.SECCOMP_RET_LOG, nil
	case s == "ALLOW":
		return unix.SECCOMP_RET_ALLOW, nil
	case strings.HasPrefix(s, "ERRNO(") || strings.HasPrefix(s, "TRACE("):
		n, err := strconv.ParseUint(s[6:len(s)-1], 10, 16)
		if s[0] == 'E' {
			return unix.SECCOMP_RET_ERRNO | uint32(n), err
		}
		return unix.SECCOMP_RET_TRACE | uint32(n), err
	case strings.HasPrefix(s, "0x"):
		n, err := strconv.ParseUint(s[2:], 16, 32)
		return uint32(n), err
	}
	return 0, fmt.Errorf("pfc: unknown action %q", s)
}

// pfcParseCond parses "$arch == N", "$syscall > N", "$a0.hi32 & 0xM == V".
func pfcParseCond(s string) (*pfcCond, error) {
	f := strings.Fields(s)
	c := &pfcCond{mask: 0xffffffff}
	if len(f) == 5 && f[1] == "&" {
		m, err := strconv.ParseUint(f[2], 0, 32)
		if err != nil {
			return nil, err
		}
		c.mask = uint32(m)
		f = []string{f[0], f[3], f[4]}
	}
	if len(f) != 3 || !strings.HasPrefix(f[0], "$") {
		return nil, fmt.Errorf("pfc: cannot parse condition %q", s)
	}
	c.what, c.op = f[0][1:], f[1]
	v, err := strconv.ParseUint(f[2], 0, 32)
	if err != nil {
		return nil, err
	}
	c.value = uint32(v)
	return c, nil
}

func (c *pfcCond) eval(d seccompData) bool {
	var a uint32
	switch c.what {
	case "arch":
		a = d.arch
	case "syscall":
		a = uint32(d.nr)
	default:
		i := int(c.what[1] - '0')
		v := d.args[i]
		a = uint32(v)
		if strings.HasSuffix(c.what, ".hi32") {
			a = uint32(v >> 32)
		}
	}
	a &= c.mask
	switch c.op {
	case "==":
		return a == c.value
	case ">":
		return a > c.value
	case ">=":
		return a >= c.value
	}
	panic("pfc: operator " + c.op)
}

// run evaluates statements; ok is false when no action was reached.
func pfcRun(stmts []*pfcStmt, d seccompData, skipDefault bool) (uint32, bool) {
	for _, s := range stmts {
		if s.cond == nil {
			if s.isDefault && skipDefault {
				continue
			}
			return s.action, true
		}
		branch := s.els
		if s.cond.eval(d) {
			branch = s.then
		}
		if a, ok := pfcRun(branch, d, skipDefault); ok {
			return a, true
		}
	}
	return 0, false
}

// evalPFC evaluates the program the way libseccomp's rules mean it: the
// filters of x86_64 and x32 (same AUDIT_ARCH) are one, and without x32, x32
// syscall numbers other than -1 are a bad architecture.
func evalPFC(top []*pfcStmt, d seccompData) uint32 {
	var sections []*pfcStmt
	var badarch uint32
	for _, s := range top {
		if s.cond != nil && s.cond.what == "arch" {
			if s.cond.value == d.arch {
				sections = append(sections, s)
			}
		} else if s.cond == nil {
			badarch = s.action
		}
	}
	if len(sections) == 0 {
		return badarch
	}
	if d.arch == unix.AUDIT_ARCH_X86_64 && len(sections) == 1 && uint32(d.nr) >= x32Bit && d.nr != -1 {
		return badarch
	}
	for _, s := range sections {
		if a, ok := pfcRun(s.then, d, true); ok {
			return a
		}
	}
	a, _ := pfcRun(sections[0].then, d, false)
	return a
}
