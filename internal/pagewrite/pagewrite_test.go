package pagewrite

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAndWriteAt(t *testing.T) {
	data := make([]byte, 3*Max+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	dir := t.TempDir()

	p := filepath.Join(dir, "write")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(int(f.Fd()), data[:7]); err != nil {
		t.Fatal(err)
	}
	if err := Write(int(f.Fd()), data[7:]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Fatalf("Write: file has %d bytes, not the %d written", len(got), len(data))
	}

	p = filepath.Join(dir, "writeat")
	f, err = os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// The second half first: offsets are kept across the pieces.
	half := len(data) / 2
	if n, err := WriteAt(f, data[half:], int64(half)); err != nil || n != len(data)-half {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	if n, err := WriteAt(f, data[:half], 0); err != nil || n != half {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	f.Close()
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Fatalf("WriteAt: file has %d bytes, not the %d written", len(got), len(data))
	}
}

func TestWriteErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ro")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Write(int(f.Fd()), make([]byte, Max+1)); err == nil {
		t.Error("Write to a read-only file succeeded")
	}
	if n, err := WriteAt(f, make([]byte, Max+1), 0); err == nil || n != 0 {
		t.Errorf("WriteAt to a read-only file = %d, %v", n, err)
	}
}
