package runtime

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// sendConsole passes the pty master to the caller's --console-socket, as runc does.
func sendConsole(socketPath string, master *os.File) error {
	conn, err := net.Dial("unix", socketPath)
	if err != nil {
		return fmt.Errorf("console socket %s: %w", socketPath, err)
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("console socket %s is not a unix socket", socketPath)
	}
	oob := unix.UnixRights(int(master.Fd()))
	if _, _, err := uc.WriteMsgUnix([]byte(master.Name()), oob, nil); err != nil {
		return fmt.Errorf("send console to %s: %w", socketPath, err)
	}
	return nil
}
