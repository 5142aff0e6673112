package child

import (
	"errors"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func spawnAndWait(t *testing.T, b *Builder) (unix.WaitStatus, []Record) {
	t.Helper()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	b.exec.SyncFD = uintptr(sp[1])
	pid, err := Spawn(b.Finish(), 0, nil)
	unix.Close(sp[1])
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for {
		var r Record
		n, err := unix.Read(sp[0], (*[16]byte)(unsafe.Pointer(&r))[:])
		if err != nil || n == 0 {
			break
		}
		recs = append(recs, r)
	}
	unix.Close(sp[0])
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	return ws, recs
}

func TestProgramWritesAndExits(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	b := NewBuilder(100, -1)
	msg := b.Str("hello")
	b.Special("reset signals", KindResetSignals)
	b.Sys("write", syscall.SYS_WRITE, uintptr(p[1]), msg, 5)
	// an ignored error that skips the next op
	i := b.Sys("close bad fd", syscall.SYS_CLOSE, 9999)
	b.Ignore(i, 1, syscall.EBADF)
	b.Special("exit 9 (skipped)", KindExit, 9)
	b.Special("exit 3", KindExit, 3)
	ws, recs := spawnAndWait(t, b)
	unix.Close(p[1])
	if ws.ExitStatus() != 3 || len(recs) != 0 {
		t.Fatalf("status %v records %v", ws, recs)
	}
	buf := make([]byte, 10)
	n, _ := unix.Read(p[0], buf)
	if string(buf[:n]) != "hello" {
		t.Fatalf("read %q", buf[:n])
	}
}

func TestProgramReportsFailingOp(t *testing.T) {
	b := NewBuilder(100, -1)
	b.Sys("first", syscall.SYS_GETPID)
	b.Sys("open /nonexistent", syscall.SYS_OPENAT, AtFDCWD, b.Str("/nonexistent/x"), 0, 0)
	b.Special("exit 0", KindExit, 0)
	ws, recs := spawnAndWait(t, b)
	if ws.ExitStatus() != 1 || len(recs) != 1 {
		t.Fatalf("status %v records %v", ws, recs)
	}
	err := b.Describe(recs[0])
	if !errors.Is(err, syscall.ENOENT) || err.Error() != "open /nonexistent: no such file or directory" {
		t.Fatalf("error %v", err)
	}
}

func TestProgramFDSlots(t *testing.T) {
	b := NewBuilder(200, -1)
	_, s := b.SysFD("open /dev/null", syscall.SYS_OPENAT, AtFDCWD, b.Str("/dev/null"), syscall.O_RDONLY, 0)
	b.Special("check /dev/null", KindCheckCharDev, uintptr(s), uintptr(unix.Mkdev(1, 3)))
	i := b.Special("if dir", KindIfMode, uintptr(s), syscall.S_IFCHR, 0)
	b.Special("exit 4", KindExit, 4)
	b.SetSkip(i, b.Len())
	b.Special("exit 5", KindExit, 5)
	ws, recs := spawnAndWait(t, b)
	if ws.ExitStatus() != 5 || len(recs) != 0 {
		t.Fatalf("status %v records %v", ws, recs)
	}
}
