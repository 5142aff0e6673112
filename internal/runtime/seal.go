package runtime

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const sealedEnv = "_BERTH_RUNTIME_SEALED"

const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// isSealed reports whether this process runs from a sealed memfd copy of the runtime.
func isSealed() bool {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return false
	}
	defer f.Close()
	s, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	return err == nil && s&seals == seals
}

// EnsureSealed re-executes the runtime from a sealed, in-memory copy of its binary unless it
// already runs from one, so that a container process can never reach the runtime's binary on the
// host through /proc/self/exe (CVE-2019-5736). It returns only on failure or when already sealed.
func EnsureSealed() error {
	if os.Getenv(sealedEnv) != "" {
		os.Unsetenv(sealedEnv)
		if isSealed() {
			return nil
		}
	}
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("seal runtime binary: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth-runtime", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("seal runtime binary: memfd: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "memfd:berth-runtime")
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		return fmt.Errorf("seal runtime binary: copy: %w", err)
	}
	if _, err := unix.FcntlInt(dst.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("seal runtime binary: %w", err)
	}
	env := append(os.Environ(), sealedEnv+"=1")
	argv, err := syscall.SlicePtrFromStrings(os.Args)
	if err != nil {
		return err
	}
	envv, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	empty := []byte{0}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, dst.Fd(), uintptr(unsafe.Pointer(&empty[0])),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("seal runtime binary: exec: %w", errno)
}
