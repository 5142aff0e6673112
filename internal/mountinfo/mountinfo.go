// Package mountinfo owns reading /proc/self/mountinfo: its entries, the mount a path is on,
// and the unescaping of its fields. The runtime, the spec generator and the volume store
// share it.
package mountinfo

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Entry is one line of mountinfo.
type Entry struct {
	// Root is the mounted directory of its filesystem; Point where it is mounted.
	Root, Point string
	// Optional holds the optional fields (shared:N, master:N, ...), space-separated.
	Optional string
	// FSType is the filesystem type; Super the superblock options.
	FSType, Super string
}

// Read parses /proc/self/mountinfo.
func Read() ([]Entry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 6 || len(b) < 3 {
			continue
		}
		out = append(out, Entry{
			Root: Unescape(a[3]), Point: Unescape(a[4]),
			Optional: strings.Join(a[6:], " "), FSType: b[0], Super: b[2],
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	return out, nil
}

// Containing is the entry of the mount that path (absolute, symlinks resolved) is on: the
// deepest mount point at or above it, the last mounted of those at the same point.
func Containing(entries []Entry, path string) (Entry, bool) {
	best := -1
	for i, m := range entries {
		if m.Point == path || m.Point == "/" || strings.HasPrefix(path, m.Point+"/") {
			if best < 0 || len(m.Point) >= len(entries[best].Point) {
				best = i
			}
		}
	}
	if best < 0 {
		return Entry{}, false
	}
	return entries[best], true
}

// Unescape undoes mountinfo's octal escapes (\040 for a space, \011, \012, \134).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
