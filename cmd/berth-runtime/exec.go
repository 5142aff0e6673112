package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"berth/internal/runtime"
	"berth/internal/runtime/caps"
)

func execCmd() *cobra.Command {
	var (
		processFile, cwd, userStr, pidFile, consoleSocket string
		env, capsAdd                                      []string
		addGids                                           []uint
		tty, detach, noNewPrivs                           bool
		preserveFDs                                       int
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] <container-id> [command args...]",
		Short: "run a new process in a running container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := rt()
			c, err := r.Load(args[0])
			if err != nil {
				return err
			}
			var p *specs.Process
			if processFile != "" {
				data, err := readFileOrStdin(processFile)
				if err != nil {
					return err
				}
				p = &specs.Process{}
				if err := json.Unmarshal(data, p); err != nil {
					return fmt.Errorf("process file %s: %w", processFile, err)
				}
			} else {
				if len(args) < 2 {
					return fmt.Errorf("exec: no command given (args or --process)")
				}
				spec, err := c.Spec()
				if err != nil {
					return err
				}
				base := specs.Process{}
				if spec.Process != nil {
					base = *spec.Process
				}
				p = &base
				p.Args = args[1:]
				p.Terminal = tty
				p.ConsoleSize = nil
				p.Env = append(append([]string{}, base.Env...), env...)
				if cwd != "" {
					p.Cwd = cwd
				}
				if userStr != "" {
					uid, gid, err := parseUser(userStr)
					if err != nil {
						return err
					}
					p.User.UID, p.User.GID = uid, gid
				}
				for _, g := range addGids {
					p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(g))
				}
				if noNewPrivs {
					p.NoNewPrivileges = true
				}
				if len(capsAdd) > 0 {
					// --cap adds to the bounding, effective and permitted sets only:
					// never to inheritable or ambient (CVE-2022-29162).
					cp := &specs.LinuxCapabilities{}
					if base.Capabilities != nil {
						*cp = *base.Capabilities
					}
					for _, name := range capsAdd {
						name = strings.ToUpper(name)
						if !strings.HasPrefix(name, "CAP_") {
							name = "CAP_" + name
						}
						if _, ok := caps.Number(name); !ok {
							return fmt.Errorf("unknown capability %q", name)
						}
						cp.Bounding = appendUnique(cp.Bounding, name)
						cp.Effective = appendUnique(cp.Effective, name)
						cp.Permitted = appendUnique(cp.Permitted, name)
					}
					p.Capabilities = cp
				}
			}
			code, err := r.Exec(ctx(), c, runtime.ExecOpts{Process: p, PidFile: pidFile, ConsoleSocket: consoleSocket, Detach: detach, PreserveFDs: preserveFDs})
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringVarP(&processFile, "process", "p", "", "path to a process.json (- for stdin)")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a pseudo-TTY")
	f.BoolVarP(&detach, "detach", "d", false, "detach from the process")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable")
	f.StringVar(&cwd, "cwd", "", "working directory")
	f.StringVarP(&userStr, "user", "u", "", "uid[:gid]")
	f.UintSliceVarP(&addGids, "additional-gids", "g", nil, "additional gids")
	f.StringArrayVarP(&capsAdd, "cap", "c", nil, "add a capability")
	f.StringVar(&pidFile, "pid-file", "", "file to write the process's pid to")
	f.StringVar(&consoleSocket, "console-socket", "", "unix socket that receives the pty master")
	f.BoolVar(&noNewPrivs, "no-new-privs", false, "set no_new_privs")
	f.IntVar(&preserveFDs, "preserve-fds", 0, "pass N additional fds (from 3)")
	f.String("apparmor", "", "AppArmor profile (not supported on this host; ignored)")
	f.String("process-label", "", "SELinux label (ignored)")
	f.Bool("ignore-paused", false, "ignored")
	f.String("cgroup", "", "sub-cgroup (ignored)")
	return cmd
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func readFileOrStdin(p string) ([]byte, error) {
	if p == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(p)
}
