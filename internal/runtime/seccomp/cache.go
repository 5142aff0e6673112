package seccomp

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cacheVersion must change whenever Compile's output for the same input
// changes (new code generation, syscall table, defaults, ...): the compiler
// is part of the binary, so the key needs nothing else.
const cacheVersion = "berth-seccomp-2 pure-go " + runtime.GOARCH

type cacheEntry struct {
	Key           string
	Flags         uint
	NeedsListener bool
	Warnings      []string
	Filter        []byte // struct sock_filter array, host byte order
}

// cacheKey is a hash of everything Compile's output depends on.
func cacheKey(cfg *specs.LinuxSeccomp) (string, error) {
	j, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", cacheVersion)
	h.Write(j)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CompileCached is [Compile] with a cache of compiled programs in dir, for
// a runtime that compiles the same profile for many containers. Compile
// itself takes well under a millisecond for a profile like Docker's default
// (three ABIs), about as long as reading the cache, so the cache mostly
// spares the allocations.
//
// Entries are keyed by a SHA-256 of the configuration and this package's
// output format (cacheVersion). dir is created (mode
// 0700) if needed; it must be writable only by the runtime's user, as its
// contents are loaded into containers as their seccomp filters. Failing to
// read or write the cache is not an error: the program is compiled instead.
func CompileCached(cfg *specs.LinuxSeccomp, dir string) (*Program, error) {
	if cfg == nil || dir == "" {
		return Compile(cfg)
	}
	key, err := cacheKey(cfg)
	if err != nil {
		return Compile(cfg)
	}
	path := filepath.Join(dir, key+".json")
	if p := readCache(path, key); p != nil {
		return p, nil
	}
	p, err := Compile(cfg)
	if err != nil {
		return nil, err
	}
	writeCache(dir, path, key, p)
	return p, nil
}

func readCache(path, key string) *Program {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil || e.Key != key {
		return nil
	}
	filter, err := decode(e.Filter)
	if err != nil || len(filter) > bpfMaxInsns {
		return nil
	}
	return &Program{Filter: filter, Flags: e.Flags, NeedsListener: e.NeedsListener, Warnings: e.Warnings}
}

func writeCache(dir, path, key string, p *Program) {
	e := cacheEntry{Key: key, Flags: p.Flags, NeedsListener: p.NeedsListener, Warnings: p.Warnings, Filter: encode(p.Filter)}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), path) != nil {
		os.Remove(f.Name())
	}
}

// encode is the inverse of decode.
func encode(prog []unix.SockFilter) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, in := range prog {
		b = binary.NativeEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return b
}
