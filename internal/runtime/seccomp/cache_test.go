package seccomp

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"berth/internal/runtime/caps"
	"github.com/opencontainers/runtime-spec/specs-go"
)

func TestCompileCached(t *testing.T) {
	prof, err := DefaultProfile(caps.DockerDefault())
	if err != nil {
		t.Fatal(err)
	}
	want := compile(t, prof)
	dir := filepath.Join(t.TempDir(), "cache")

	first, err := CompileCached(prof, dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".json") {
		t.Fatalf("cache dir holds %v", entries)
	}
	path := filepath.Join(dir, entries[0].Name())
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("cache dir mode %v", fi.Mode())
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v", fi.Mode())
	}
	second, err := CompileCached(prof, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*Program{first, second} {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("cached program differs from Compile's: %d vs %d insns, %q vs %q",
				len(got.Filter), len(want.Filter), got.Warnings, want.Warnings)
		}
	}

	// A damaged entry is ignored and replaced.
	if err := os.WriteFile(path, []byte(`{"Key":"x"`), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := CompileCached(prof, dir)
	if err != nil || !reflect.DeepEqual(third, want) {
		t.Fatalf("after damage: %v", err)
	}
	if p := readCache(path, strings.TrimSuffix(filepath.Base(path), ".json")); p == nil {
		t.Error("damaged entry was not rewritten")
	}

	// Another configuration gets another entry; errors are not cached.
	other := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActNotify}}}
	p, err := CompileCached(other, dir)
	if err != nil || !p.NeedsListener {
		t.Fatalf("other: %v", err)
	}
	if _, err := CompileCached(&specs.LinuxSeccomp{DefaultAction: "bogus"}, dir); err == nil {
		t.Error("bad config accepted")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("cache dir holds %d entries", len(entries))
	}
	// An unusable cache directory only costs the compile.
	if _, err := CompileCached(other, "/proc/no/such/dir"); err != nil {
		t.Error(err)
	}
}

func BenchmarkCompileCachedDockerDefault(b *testing.B) {
	prof, err := DefaultProfile(caps.DockerDefault())
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if _, err := CompileCached(prof, dir); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := CompileCached(prof, dir); err != nil {
			b.Fatal(err)
		}
	}
}
