// Package wire owns the text protocol between berth-shim and its client (internal/shim): the
// names of the files in a shim's directory, the request words, and the exit record, which is the
// same on the socket (after "exit ") and in the exit file.
//
// Both sides import it, so it must stay as light as the shim itself: no fmt, net, reflect or
// encoding packages (cmd/berth-shim's memory budget; see docs/daemon-design.md).
package wire

import (
	"errors"
	"strconv"
	"time"
)

// Files in a shim's directory (berthd's <exec-root>/shims/<id>/).
const (
	// SocketName is the shim's listening socket.
	SocketName = "sock"
	// ExitName is the exit record, written atomically once the container has exited and been
	// deleted from the runtime.
	ExitName = "exit"
	// PidName is the runtime's --pid-file: the container's init pid.
	PidName = "init.pid"
	// LogName is the shim's own error log (and its stderr, so Go panics land there too).
	LogName = "shim.log"
	// RuntimeLogName is the runtime's --log: its warnings, kept out of the container's stderr.
	RuntimeLogName = "runtime.log"
	// ConsoleName is the --console-socket of a TTY container, while it starts.
	ConsoleName = "console.sock"
)

// Requests: one line per connection, "<word> [args...]\n".
const (
	ReqStart    = "start"
	ReqAttach   = "attach"
	ReqWait     = "wait"
	ReqKill     = "kill"
	ReqResize   = "resize"
	ReqState    = "state"
	ReqShutdown = "shutdown"
	// ReqReopenLog closes the container's log file and opens its path anew.
	ReqReopenLog = "reopen-log"
)

// Reply words: "ok [...]", "error <message>", "exit <record>"; state replies "created",
// "running <pid>" or "exited <record>".
const (
	ReplyOK      = "ok"
	ReplyError   = "error"
	ReplyExit    = "exit"
	StateCreated = "created"
	StateRunning = "running"
	StateExited  = "exited"
)

// Exit is how a container's init ended.
type Exit struct {
	// Code is the exit status, or 128+signal when it was killed by a signal.
	Code int
	// At is when the shim reaped it.
	At time.Time
	// OOMKilled is set when the container's memory cgroup recorded an OOM kill.
	OOMKilled bool
}

// AppendExit appends the exit record "<code> <exited-at unix ns> <oom 0/1>" (no newline).
func AppendExit(b []byte, e Exit) []byte {
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.At.UnixNano(), 10)
	if e.OOMKilled {
		return append(b, " 1"...)
	}
	return append(b, " 0"...)
}

// ErrBadExit reports a malformed exit record.
var ErrBadExit = errors.New("malformed exit record")

// ParseExit parses an exit record (surrounding spaces and a trailing newline are allowed).
func ParseExit(s string) (Exit, error) {
	f := Fields(s)
	if len(f) != 3 {
		return Exit{}, ErrBadExit
	}
	code, err := strconv.Atoi(f[0])
	if err != nil {
		return Exit{}, ErrBadExit
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Exit{}, ErrBadExit
	}
	var oom bool
	switch f[2] {
	case "0":
	case "1":
		oom = true
	default:
		return Exit{}, ErrBadExit
	}
	return Exit{Code: code, At: time.Unix(0, ns), OOMKilled: oom}, nil
}

// Fields splits s around runs of spaces, tabs, CRs and LFs (strings.Fields for ASCII).
func Fields(s string) []string {
	var out []string
	start := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// OneLine makes msg fit on one protocol line: it trims surrounding white space and joins its
// lines with "; ".
func OneLine(msg string) string {
	b := make([]byte, 0, len(msg))
	for _, l := range splitLines(msg) {
		l = trimSpace(l)
		if l == "" {
			continue
		}
		if len(b) > 0 {
			b = append(b, "; "...)
		}
		b = append(b, l...)
	}
	return string(b)
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\r' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
