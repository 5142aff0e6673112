// Package pagewrite owns how berth writes bulk data into files through
// the page cache: in system calls of at most Max bytes each.
//
// On kernels whose file systems cache files in large folios (ext4 since
// Linux 6.16), the size of a write sets the size of the folios it
// allocates. On the virtual machine berth is measured on (virtio-balloon
// with free page reporting), writes of 1 MiB ran 2.5 to 5 times slower
// than smaller ones, at random; writes of 256 KiB now and then; writes of
// 64 KiB and less never in our runs, nor did tar's 10 KiB
// (docs/benchmarks.md, "Session 20"). Pieces of Max bytes cost fifteen
// more system calls per MiB than one, and nothing measurable elsewhere.
package pagewrite

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Max is the most one write system call is given.
const Max = 64 << 10

// Write writes all of b to fd, in pieces of at most Max bytes, retrying
// short and interrupted writes.
func Write(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b[:min(len(b), Max)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
		if n == 0 {
			return os.NewSyscallError("write", unix.EIO)
		}
		b = b[n:]
	}
	return nil
}

// WriteAt writes b to f at off, in pieces of at most Max bytes. It returns
// how much it wrote, and an error when that is not all of b.
func WriteAt(f *os.File, b []byte, off int64) (int, error) {
	done := 0
	for done < len(b) {
		n, err := f.WriteAt(b[done:min(len(b), done+Max)], off+int64(done))
		done += n
		if err != nil {
			return done, err
		}
		if n == 0 {
			return done, io.ErrShortWrite
		}
	}
	return done, nil
}
