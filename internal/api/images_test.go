package api

import (
	"strings"
	"testing"
)

// TestMatchingRefs: a reference filter lists only the references that match, familiar or
// full patterns alike, as dockerd does.
func TestMatchingRefs(t *testing.T) {
	refs := []string{"busybox:latest", "berth-cli/tagged:v1", "example.com/app:2"}
	for _, c := range []struct {
		patterns []string
		want     string
	}{
		{[]string{"berth-cli/tagged"}, "berth-cli/tagged:v1"},
		{[]string{"busybox"}, "busybox:latest"},
		{[]string{"*/tagged:v*"}, "berth-cli/tagged:v1"},
		{[]string{"docker.io/library/busybox:*"}, "busybox:latest"},
		{[]string{"example.com/app", "busybox:latest"}, "busybox:latest example.com/app:2"},
		{[]string{"nothing"}, ""},
	} {
		if got := strings.Join(matchingRefs(refs, c.patterns), " "); got != c.want {
			t.Errorf("matchingRefs(%q): %q, want %q", c.patterns, got, c.want)
		}
	}
}
