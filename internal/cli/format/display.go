package format

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/docker/go-units"
)

// TruncateID is the short form of an ID: without its "sha256:" prefix, 12 characters.
func TruncateID(id string) string {
	if i := strings.IndexRune(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// Ellipsis cuts s to max display columns (East Asian wide characters take two), the last
// of them "…".
func Ellipsis(s string, max int) string {
	if max <= 0 {
		return ""
	}
	rs := []rune(s)
	if max == 1 {
		return string(rs[0])
	}
	if len(s) == utf8.RuneCountInString(s) {
		if len(s) <= max {
			return s
		}
		return s[:max-1] + "…"
	}
	width := 0
	for _, r := range rs {
		width += runeWidth(r)
	}
	if width <= max {
		return s
	}
	width = 0
	for i, r := range rs {
		if width+runeWidth(r) > max-1 {
			return string(rs[:i]) + "…"
		}
		width += runeWidth(r)
	}
	return s
}

// runeWidth is 2 for East Asian wide and fullwidth characters, 1 otherwise.
func runeWidth(r rune) int {
	switch {
	case r >= 0x1100 && r <= 0x115F, r >= 0x2E80 && r <= 0xA4CF, r >= 0xAC00 && r <= 0xD7A3,
		r >= 0xF900 && r <= 0xFAFF, r >= 0xFE30 && r <= 0xFE4F, r >= 0xFF00 && r <= 0xFF60,
		r >= 0xFFE0 && r <= 0xFFE6, r >= 0x20000 && r <= 0x3FFFD:
		return 2
	}
	return 1
}

// Ago is "<human duration> ago" from t to now, as docker's CREATED columns show.
func Ago(t time.Time) string {
	return units.HumanDuration(time.Now().UTC().Sub(t)) + " ago"
}

// Size is a size in bytes as docker's listings show it (decimal units, 3 digits).
func Size(n int64) string {
	return units.HumanSizeWithPrecision(float64(n), 3)
}
