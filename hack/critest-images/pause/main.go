// Command pause is the stand-in of registry.k8s.io/pause:3.9 for `make critest`
// (hack/critest-images): it does what the real pause does (kubernetes
// build/pause/linux/pause.c): sleeps until SIGINT or SIGTERM, then exits 0,
// reaping the zombies it inherits as PID 1 meanwhile. Static, cgo-free.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const version = "3.9 (berth critest stand-in)"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Printf("pause.go %s\n", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
