package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, d := range []Durability{Renamed, Durable} {
		if err := WriteFile(p, []byte("one"), 0o640, d); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(p, []byte("two"), 0o600, d); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "two" {
			t.Fatalf("%q %v", b, err)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", fi.Mode())
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o600, Renamed); err == nil {
		t.Fatal("a write into a missing directory succeeded")
	}
}
