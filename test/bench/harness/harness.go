// Package harness is the frame the bench commands (test/bench, test/bench/images and the
// engine benches test/bench/engine, test/bench/network, test/bench/build) run in: each runs
// itself again in a new private mount namespace, so that no mount it makes outlives it, and
// stops its iterations on SIGINT or SIGTERM to clean up before it exits. It also holds their
// end-of-run checks for leftovers, and for the engine benches the engines' life (start,
// the CLI, failures, cleanup) and the run around their measurements (RunEngines), down to
// the report's head and the failures after it. It must not measure, nor say what a report
// says; the commands own what they run in the frame.
package harness

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// Main parses the flags; in the process that Command starts (env is "1") it exits with the
// code child returns, otherwise with parent's.
func Main(env string, parent, child func() int) {
	flag.Parse()
	if os.Getenv(env) == "1" {
		os.Exit(child())
	}
	os.Exit(parent())
}

// Command is this program again, with its arguments and env=1, in a new private mount
// namespace (Go's forkExec makes / MS_REC|MS_PRIVATE when Unshareflags has CLONE_NEWNS),
// with this process's standard input, output and error. The caller may add to it (more
// namespaces, environment) before Run.
func Command(env string) (*exec.Cmd, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("must run as root")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	return cmd, nil
}

// Run starts cmd, forwards SIGINT and SIGTERM to it, waits for it and returns its exit
// code, or 2 when it could not run (the reason is printed after "name: "). started, when not
// nil, is called right after the start, whether it succeeded or not.
func Run(name string, cmd *exec.Cmd, started func()) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	err := cmd.Start()
	if started != nil {
		started()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: re-exec in a mount namespace: %v\n", name, err)
		return 2
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	return 0
}

// Reexec is Run of Command: the whole parent of a bench that needs nothing else there.
func Reexec(name, env string) int {
	cmd, err := Command(env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	return Run(name, cmd, nil)
}

// OnInterrupt calls stop once, after printing "name: interrupted, cleaning up", on the
// first SIGINT or SIGTERM.
func OnInterrupt(name string, stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintf(os.Stderr, "%s: interrupted, cleaning up\n", name)
		stop()
	}()
}
