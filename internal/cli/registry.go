package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"berth/internal/registry/server"
)

// berth registry: a private registry (internal/registry/server), served by
// this process; it needs no daemon.
func (c *CLI) newRegistryCommand() *cobra.Command {
	return groupCommand("registry", "Run a registry", c.newRegistryServeCommand(), c.newRegistryGCCommand())
}

func (c *CLI) newRegistryServeCommand() *cobra.Command {
	var addr, root, cert, key, htpasswd string
	var token server.TokenConfig
	var gcEvery time.Duration
	cmd := &cobra.Command{
		Use:   "serve [OPTIONS]",
		Short: "Serve an OCI distribution (v1.1) registry",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (cert == "") != (key == "") {
				return errors.New("--tls-cert and --tls-key go together")
			}
			tokenAuth, err := tokenFlags(token, htpasswd != "")
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(c.err, nil))
			opts := server.Options{Root: root, Logger: log}
			if tokenAuth {
				t, err := server.LoadTokenAuth(token)
				if err != nil {
					return err
				}
				opts.Auth = t
				if cert == "" {
					log.Warn("token authentication without TLS sends bearer tokens in the clear")
				}
			}
			if htpasswd != "" {
				h, err := server.LoadHtpasswd(htpasswd, nil)
				if err != nil {
					return err
				}
				opts.Auth = h
				if cert == "" {
					log.Warn("basic authentication without TLS sends passwords in the clear")
				}
			}
			reg, err := server.Open(opts)
			if err != nil {
				return err
			}
			defer reg.Close()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: reg, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if gcEvery > 0 {
				go func() {
					t := time.NewTicker(gcEvery)
					defer t.Stop()
					for {
						select {
						case <-ctx.Done():
							return
						case <-t.C:
							if _, err := reg.GC(ctx); err != nil && ctx.Err() == nil {
								log.Error("registry gc", "error", err)
							}
						}
					}
				}()
			}
			done := make(chan error, 1)
			go func() {
				if cert != "" {
					done <- srv.ServeTLS(ln, cert, key)
				} else {
					done <- srv.Serve(ln)
				}
			}()
			log.Info("registry listening", "addr", ln.Addr().String(), "root", root, "tls", cert != "")
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
			}
			log.Info("registry stopping")
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&addr, "addr", "127.0.0.1:5000", "Address to listen on")
	fs.StringVar(&root, "root", "/var/lib/berth/registry", "Storage directory")
	fs.StringVar(&cert, "tls-cert", "", "TLS certificate file (serve HTTPS)")
	fs.StringVar(&key, "tls-key", "", "TLS key file")
	fs.StringVar(&htpasswd, "htpasswd", "", "Require basic authentication against this htpasswd file (bcrypt)")
	fs.StringVar(&token.Realm, "token-realm", "", "Require bearer tokens from the token service at this URL (with --token-service, --token-issuer, --token-rootcert)")
	fs.StringVar(&token.Service, "token-service", "", "This registry's name: the audience tokens must be for")
	fs.StringVar(&token.Issuer, "token-issuer", "", "The issuer tokens must come from")
	fs.StringVar(&token.RootCertBundle, "token-rootcert", "", "PEM bundle of the certificates whose keys sign tokens")
	fs.DurationVar(&gcEvery, "gc-interval", time.Hour, "Remove unreferenced blobs and stale uploads this often (0: never)")
	return cmd
}

// tokenFlags checks the --token-* flags: none (false), or all four
// (true), and not with --htpasswd.
func tokenFlags(t server.TokenConfig, htpasswd bool) (bool, error) {
	var set, missing []string
	for _, f := range []struct{ name, value string }{
		{"--token-realm", t.Realm}, {"--token-service", t.Service}, {"--token-issuer", t.Issuer}, {"--token-rootcert", t.RootCertBundle},
	} {
		if f.value != "" {
			set = append(set, f.name)
		} else {
			missing = append(missing, f.name)
		}
	}
	switch {
	case len(set) == 0:
		return false, nil
	case htpasswd:
		return false, errors.New("--htpasswd and --token-* are exclusive: choose basic or token authentication")
	case len(missing) > 0:
		return false, fmt.Errorf("token authentication needs --token-realm, --token-service, --token-issuer and --token-rootcert together: %s missing", strings.Join(missing, ", "))
	}
	return true, nil
}

func (c *CLI) newRegistryGCCommand() *cobra.Command {
	var root string
	cmd := &cobra.Command{
		Use:   "gc [OPTIONS]",
		Short: "Remove unreferenced blobs and stale uploads of a registry that is not running",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := server.Open(server.Options{Root: root, Logger: slog.New(slog.NewTextHandler(c.err, nil))})
			if err != nil {
				return err
			}
			defer reg.Close()
			st, err := reg.GC(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.out, "removed %d blobs (%d bytes), %d uploads\n", st.Blobs, st.Bytes, st.Uploads)
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "/var/lib/berth/registry", "Storage directory")
	return cmd
}
