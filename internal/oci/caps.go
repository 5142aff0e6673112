package oci

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"berth/internal/runtime/caps"
)

const allCapabilities = "ALL"

// availableCaps is the set of capabilities a container can be given: those the kernel supports
// that are in the daemon's own bounding set (dockerd's "available in the current environment":
// a daemon in a restricted container cannot hand out what it lacks).
var availableCaps = sync.OnceValue(func() uint64 {
	all := caps.All()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return all
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			if bnd, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
				return all & bnd
			}
		}
	}
	return all
})

// allCaps returns every available capability that has a name, in number order (dockerd's
// caps.GetAllCapabilities): what a privileged container gets.
func allCaps() []string {
	var out []string
	for _, n := range caps.Numbers(availableCaps()) {
		if n <= caps.MaxKnown {
			out = append(out, caps.Name(n))
		}
	}
	return out
}

// normalizeCaps upper-cases capability names and adds the CAP_ prefix, keeping "ALL", as
// dockerd's NormalizeLegacyCapabilities does; unknown names and names the kernel does not
// support are errors with dockerd's messages.
func normalizeCaps(list []string) ([]string, error) {
	var out []string
	for _, c := range list {
		c = strings.ToUpper(c)
		if c == allCapabilities {
			out = append(out, c)
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		n, ok := caps.Number(c)
		if !ok {
			return nil, fmt.Errorf("unknown capability: %q", c)
		}
		if availableCaps()&(1<<uint(n)) == 0 {
			return nil, fmt.Errorf("capability not supported by your kernel or not available in the current environment: %q", c)
		}
		out = append(out, c)
	}
	return out, nil
}

// validateCaps checks CapAdd and CapDrop with dockerd's messages.
func validateCaps(add, drop []string) error {
	if _, err := normalizeCaps(add); err != nil {
		return fmt.Errorf("invalid CapAdd: %w", err)
	}
	if _, err := normalizeCaps(drop); err != nil {
		return fmt.Errorf("invalid CapDrop: %w", err)
	}
	return nil
}

// Capabilities returns the capability list of a container (dockerd's TweakCapabilities):
// every capability when privileged; otherwise Docker's 14 defaults minus drops plus adds, where
// "ALL" in adds means every capability but the dropped ones and "ALL" in drops means only the
// added ones.
func Capabilities(add, drop []string, privileged bool) ([]string, error) {
	if privileged {
		return allCaps(), nil
	}
	basics := caps.DockerDefault()
	if len(add) == 0 && len(drop) == 0 {
		return basics, nil
	}
	capDrop, err := normalizeCaps(drop)
	if err != nil {
		return nil, fmt.Errorf("invalid CapDrop: %w", err)
	}
	capAdd, err := normalizeCaps(add)
	if err != nil {
		return nil, fmt.Errorf("invalid CapAdd: %w", err)
	}
	var out []string
	switch {
	case slices.Contains(capAdd, allCapabilities):
		for _, c := range allCaps() {
			if !slices.Contains(capDrop, c) {
				out = append(out, c)
			}
		}
	case slices.Contains(capDrop, allCapabilities):
		out = capAdd
	default:
		for _, c := range basics {
			if !slices.Contains(capDrop, c) {
				out = append(out, c)
			}
		}
		out = append(out, capAdd...)
	}
	// An added capability that was already there is listed once.
	seen := map[string]bool{}
	return slices.DeleteFunc(out, func(c string) bool {
		dup := seen[c]
		seen[c] = true
		return dup
	}), nil
}
