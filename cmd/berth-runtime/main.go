// Command berth-runtime is berth's OCI runtime, a drop-in for runc: the same commands, flags,
// state JSON and exit codes, so that podman, containerd, dockerd and Kubernetes can use it. It is
// a thin shell over internal/runtime.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"berth/internal/runtime"
)

var version = "0.1.0"

type globals struct {
	root          string
	logPath       string
	logFormat     string
	debug         bool
	systemdCgroup bool
	rootless      string
	criu          string
	logFile       *os.File
	logger        *slog.Logger
}

var g globals

// exitError carries a process exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	if os.Getenv("BERTH_RUNTIME_TRACE") != "" {
		fmt.Fprintf(os.Stderr, "trace main at %s (%s)\n", time.Now().Format("05.000000"), os.Getenv("_BERTH_RUNTIME_SEALED"))
	}
	if needsSeal(os.Args[1:]) {
		if err := runtime.EnsureSealed(); err != nil {
			fmt.Fprintln(os.Stderr, "berth-runtime:", err)
			os.Exit(1)
		}
	}
	root := newRoot()
	runtime.Mark("cobra ready")
	err := root.Execute()
	if err == nil {
		return
	}
	var ee exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	logError(err)
	os.Exit(1)
}

// needsSeal reports whether the command forks a process into a container.
func needsSeal(args []string) bool {
	withValue := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			if withValue[a] {
				i++
			}
			continue
		}
		return a == "create" || a == "run" || a == "exec"
	}
	return false
}

func logError(err error) {
	msg := err.Error()
	if g.logFile != nil && g.logger != nil {
		g.logger.Error(msg)
	}
	fmt.Fprintf(os.Stderr, "berth-runtime: %s\n", msg)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "berth-runtime",
		Short:         "berth's OCI runtime (runc-compatible)",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			runtime.Mark("command parsed")
			defer runtime.Mark("logging ready")
			return setupLogging()
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&g.root, "root", "/run/berth-runtime", "root directory for container state")
	f.StringVar(&g.logPath, "log", "", "log file (default stderr)")
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&g.debug, "debug", false, "debug logging")
	f.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "use the systemd cgroup driver (not supported)")
	f.StringVar(&g.rootless, "rootless", "auto", "rootless mode (only root is supported)")
	f.StringVar(&g.criu, "criu", "criu", "path to criu (unused)")
	root.AddCommand(createCmd(), startCmd(), runCmd(), stateCmd(), killCmd(), deleteCmd(), execCmd(),
		psCmd(), listCmd(), pauseCmd(), resumeCmd(), updateCmd(), eventsCmd(), featuresCmd(), specCmd())
	root.SetVersionTemplate("berth-runtime version {{.Version}}\nspec: " + specVersion() + "\n")
	return root
}

func setupLogging() error {
	var w io.Writer = os.Stderr
	if g.logPath != "" {
		f, err := os.OpenFile(g.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("open log %s: %w", g.logPath, err)
		}
		g.logFile = f
		w = f
	}
	level := slog.LevelWarn
	if g.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		// runc (logrus) writes lower-case levels; callers such as containerd match them.
		if a.Key == slog.LevelKey {
			a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
		}
		if a.Key == slog.TimeKey {
			a.Value = slog.StringValue(a.Value.Time().Format(time.RFC3339Nano))
		}
		return a
	}}
	switch g.logFormat {
	case "json":
		g.logger = slog.New(slog.NewJSONHandler(w, opts))
	case "text":
		g.logger = slog.New(slog.NewTextHandler(w, opts))
	default:
		return fmt.Errorf("unknown log format %q (want text or json)", g.logFormat)
	}
	if g.logFile == nil {
		// errors go to stderr once, from main
		g.logger = slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	if g.systemdCgroup {
		return errors.New("--systemd-cgroup is not supported: berth-runtime manages cgroups through cgroupfs (use the cgroupfs driver)")
	}
	return nil
}

func rt() *runtime.Runtime {
	return &runtime.Runtime{Root: g.root, Log: g.logger}
}

func ctx() context.Context { return context.Background() }

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func oneID(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s: requires exactly one container id", cmd.Name())
	}
	return nil
}
