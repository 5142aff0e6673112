// Command berthd is berth's daemon: it serves the Docker Engine API on a root-only unix
// socket and runs containers through berth-shim and berth-runtime. It takes dockerd's flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"berth/internal/api"
	"berth/internal/cri"
	"berth/internal/daemon"
)

func main() {
	var (
		hosts      []string
		configFile string
		dataRoot   string
		execRoot   string
		debug      bool
		group      string
	)
	cmd := &cobra.Command{
		Use:           "berthd [OPTIONS]",
		Short:         "berth's daemon: the Docker Engine API on a unix socket",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       api.Version,
		RunE: func(cmd *cobra.Command, _ []string) error {
			optional := !cmd.Flags().Changed("config-file")
			cfg, err := daemon.LoadConfigFile(configFile, optional)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("host") {
				if len(cfg.Hosts) > 0 {
					return fmt.Errorf("unable to configure the daemon: hosts are set both in %s and with -H", configFile)
				}
				cfg.Hosts = hosts
			}
			if cmd.Flags().Changed("data-root") {
				cfg.DataRoot = dataRoot
			}
			if cmd.Flags().Changed("exec-root") {
				cfg.ExecRoot = execRoot
			}
			if debug {
				cfg.Debug = true
			}
			return run(cfg, group)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&hosts, "host", "H", nil, "daemon socket(s) to listen on (unix:///path)")
	f.StringVar(&configFile, "config-file", daemon.DefaultConfigFile, "daemon configuration file")
	f.StringVar(&dataRoot, "data-root", daemon.DefaultDataRoot, "root directory of persistent state")
	f.StringVar(&execRoot, "exec-root", daemon.DefaultExecRoot, "root directory of execution state")
	f.BoolVarP(&debug, "debug", "D", false, "debug logging")
	f.StringVarP(&group, "group", "G", "", "group that may use the unix socket (default: root only)")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		os.Exit(1)
	}
}

func run(cfg *daemon.Config, group string) error {
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if os.Geteuid() != 0 {
		return errors.New("berthd needs to run as root")
	}
	// Containers' shims must not die with berthd's session or terminal.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	d, err := daemon.New(*cfg, log)
	if err != nil {
		return err
	}
	conf := d.Config()
	if len(conf.Hosts) == 0 {
		conf.Hosts = []string{daemon.DefaultHost(conf.ExecRoot)}
	}
	pidFile := filepath.Join(conf.ExecRoot, "berthd.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		d.Close()
		return err
	}
	defer os.Remove(pidFile)
	srv := &http.Server{Handler: api.New(d, log), ReadHeaderTimeout: 30 * time.Second}
	var listeners []net.Listener
	for _, h := range conf.Hosts {
		l, err := listen(h, group)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			d.Close()
			return err
		}
		listeners = append(listeners, l)
	}
	var criSrv *cri.Server
	if conf.CRISocket != "" {
		l, err := cri.Listen(conf.CRISocket)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			d.Close()
			return err
		}
		criSrv = cri.New(d, log, api.Version)
		if err := criSrv.ListenStreaming(conf.CRIStreamAddress); err != nil {
			l.Close()
			for _, l := range listeners {
				l.Close()
			}
			d.Close()
			return err
		}
		log.Info("CRI listening", "addr", conf.CRISocket)
		go func() {
			if err := criSrv.Serve(l); err != nil {
				log.Error("CRI server", "err", err)
			}
		}()
	}
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		log.Info("API listening", "addr", l.Addr().String())
		go func() { errc <- srv.Serve(l) }()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sigs:
		log.Info("shutting down; containers keep running", "signal", s.String())
	case err = <-errc:
		log.Error("API server", "err", err)
	}
	timeout := 15 * time.Second
	if conf.ShutdownTimeout > 0 {
		timeout = time.Duration(conf.ShutdownTimeout) * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	srv.Shutdown(ctx)
	if criSrv != nil {
		criSrv.Stop(ctx)
		os.Remove(conf.CRISocket)
	}
	for _, h := range conf.Hosts {
		if p, ok := strings.CutPrefix(h, "unix://"); ok {
			os.Remove(p)
		}
	}
	return errors.Join(err, d.Close())
}

// listen opens an API socket: unix only (a TCP API without TLS would give root to the network).
func listen(addr, group string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix://")
	if !ok {
		if strings.HasPrefix(addr, "/") {
			path = addr
		} else {
			return nil, fmt.Errorf("unsupported listen address %q: berthd listens on unix sockets only (unix:///path)", addr)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is in use by another daemon", path)
	}
	os.Remove(path)
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	gid := 0
	mode := os.FileMode(0o600)
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			l.Close()
			return nil, err
		}
		gid, mode = g, 0o660
	}
	if err := os.Chown(path, 0, gid); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	b, err := os.ReadFile("/etc/group")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			return strconv.Atoi(f[2])
		}
	}
	return 0, fmt.Errorf("group %q not found", name)
}
