package volume

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"berth/internal/errdefs"
)

// invalidFilter is dockerd's text for a filter it refuses.
func invalidFilter(name string, values []string) string {
	if values == nil {
		return fmt.Sprintf("invalid filter '%s'", name)
	}
	return fmt.Sprintf("invalid filter '%s=%s'", name, values)
}

// checkFilters refuses filter names other than accepted.
func checkFilters(filters map[string][]string, accepted ...string) error {
	for name := range filters {
		if !slices.Contains(accepted, name) {
			return errdefs.Invalid("%s", invalidFilter(name, nil))
		}
	}
	return nil
}

// danglingFilter returns the dangling filter's value, nil if not set.
func danglingFilter(filters map[string][]string) (*bool, error) {
	vals, ok := filters["dangling"]
	if !ok {
		return nil, nil
	}
	var b bool
	switch {
	case slices.Contains(vals, "true") || slices.Contains(vals, "1"):
		b = true
	case slices.Contains(vals, "false") || slices.Contains(vals, "0"):
	default:
		return nil, errdefs.Invalid("%s", invalidFilter("dangling", vals))
	}
	return &b, nil
}

// nameFilter returns whether a name passes the name filter: equal to one
// of its values, or matched by one as a regular expression (unanchored,
// as dockerd).
func nameFilter(filters map[string][]string) (func(string) bool, error) {
	vals := filters["name"]
	if len(vals) == 0 {
		return func(string) bool { return true }, nil
	}
	var res []*regexp.Regexp
	for _, v := range vals {
		if re, err := regexp.Compile(v); err == nil {
			res = append(res, re)
		}
	}
	return func(name string) bool {
		if slices.Contains(vals, name) {
			return true
		}
		for _, re := range res {
			if re.MatchString(name) {
				return true
			}
		}
		return false
	}, nil
}

// matchKVList reports whether labels have every key (or key=value) of
// vals; no vals match everything (dockerd's MatchKVList).
func matchKVList(vals []string, labels map[string]string) bool {
	if len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != want {
			return false
		}
	}
	return true
}
