// Package atomicfile owns replacing a file in one step: the data goes to a temporary file in
// the same directory, which is renamed over the target, so a reader sees the old file or the
// new one, never a part. With Durable, the file and then its directory are fsynced too, so the
// new file also survives a crash of the machine.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Durability says whether WriteFile fsyncs.
type Durability bool

const (
	// Renamed: atomic for readers and for crashes of the writer, not of the machine.
	Renamed Durability = false
	// Durable: fsync of the file before the rename, and of its directory after it.
	Durable Durability = true
)

// WriteFile replaces path with data, with the given mode.
func WriteFile(path string, data []byte, mode os.FileMode, d Durability) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && d == Durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d == Durable {
		dh, err := os.Open(dir)
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		defer dh.Close()
		if err := dh.Sync(); err != nil {
			return fmt.Errorf("write %s: sync directory: %w", path, err)
		}
	}
	return nil
}
