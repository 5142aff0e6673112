package cli

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// defaultRegistry is Docker Hub's key in the credentials file.
const defaultRegistry = "https://index.docker.io/v1/"

// configFile is berth's client configuration (docker's config.json format): the
// credentials of login.
type configFile struct {
	Auths map[string]authEntry `json:"auths"`
	// Other keys are kept as they are.
	rest map[string]json.RawMessage
}

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// configPath is the file: --config, then BERTH_CONFIG, then ~/.berth, holding config.json.
func (c *CLI) configPath() string {
	dir := c.config
	if dir == "" {
		dir = os.Getenv("BERTH_CONFIG")
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		dir = filepath.Join(home, ".berth")
	}
	return filepath.Join(dir, "config.json")
}

func (c *CLI) loadConfig() (*configFile, error) {
	cf := &configFile{Auths: map[string]authEntry{}, rest: map[string]json.RawMessage{}}
	b, err := os.ReadFile(c.configPath())
	if errors.Is(err, os.ErrNotExist) {
		return cf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the configuration: %w", err)
	}
	if err := json.Unmarshal(b, &cf.rest); err != nil {
		return nil, fmt.Errorf("parse %s: %w", c.configPath(), err)
	}
	if a, ok := cf.rest["auths"]; ok {
		if err := json.Unmarshal(a, &cf.Auths); err != nil {
			return nil, fmt.Errorf("parse %s: %w", c.configPath(), err)
		}
	}
	return cf, nil
}

func (c *CLI) saveConfig(cf *configFile) error {
	a, err := json.Marshal(cf.Auths)
	if err != nil {
		return err
	}
	cf.rest["auths"] = a
	b, err := json.MarshalIndent(cf.rest, "", "\t")
	if err != nil {
		return err
	}
	p := c.configPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("save the configuration: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save the configuration: %w", err)
	}
	return os.Rename(tmp, p)
}

// registryKey is the credentials key of a registry host.
func registryKey(host string) string {
	if host == "" || host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io" {
		return defaultRegistry
	}
	return host
}

// registryAuth is the X-Registry-Auth value for the registry of ref ("" without stored
// credentials).
func (c *CLI) registryAuth(ref reference.Named) string {
	cf, err := c.loadConfig()
	if err != nil {
		return ""
	}
	key := registryKey(reference.Domain(ref))
	e, ok := cf.Auths[key]
	if !ok {
		return ""
	}
	ac := registry.AuthConfig{ServerAddress: key, IdentityToken: e.IdentityToken}
	if dec, err := base64.StdEncoding.DecodeString(e.Auth); err == nil {
		ac.Username, ac.Password, _ = strings.Cut(string(dec), ":")
	}
	s, err := authconfig.Encode(ac)
	if err != nil {
		return ""
	}
	return s
}

func (c *CLI) newLoginCommand() *cobra.Command {
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Authenticate to a registry",
		Long:  "Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.",
		Args:  requiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := defaultRegistry
			if len(args) == 1 {
				server = args[0]
			}
			if password != "" {
				fmt.Fprintln(c.err, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
				if passwordStdin {
					return errors.New("--password and --password-stdin are mutually exclusive")
				}
			}
			if passwordStdin {
				if user == "" {
					//lint:ignore ST1005 docker's message
					return errors.New("Must provide --username with --password-stdin")
				}
				b, err := io.ReadAll(c.in)
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			rd := bufio.NewReader(c.in)
			if user == "" {
				if !c.in.IsTerminal() {
					return errors.New("Error: Cannot perform an interactive login from a non TTY device")
				}
				fmt.Fprint(c.out, "Username: ")
				line, _ := rd.ReadString('\n')
				user = strings.TrimSpace(line)
			}
			if password == "" {
				if !c.in.IsTerminal() {
					return errors.New("Error: Cannot perform an interactive login from a non TTY device")
				}
				fmt.Fprint(c.out, "Password: ")
				b, err := term.ReadPassword(c.in.fd)
				fmt.Fprintln(c.out)
				if err != nil {
					return err
				}
				password = string(b)
			}
			if password == "" {
				return errors.New("Error: Password Required")
			}
			api, err := c.Client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := api.RegistryLogin(cmd.Context(), client.RegistryLoginOptions{Username: user, Password: password, ServerAddress: server})
			if err != nil {
				return err
			}
			cf, err := c.loadConfig()
			if err != nil {
				return err
			}
			e := authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
			if res.Auth.IdentityToken != "" {
				e = authEntry{IdentityToken: res.Auth.IdentityToken}
			}
			cf.Auths[registryKey(serverHost(server))] = e
			if err := c.saveConfig(cf); err != nil {
				return err
			}
			if res.Auth.Status != "" {
				fmt.Fprintln(c.out, res.Auth.Status)
			} else {
				fmt.Fprintln(c.out, "Login Succeeded")
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&user, "username", "u", "", "Username")
	fs.StringVarP(&password, "password", "p", "", "Password or Personal Access Token (PAT)")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "Take the Password or Personal Access Token (PAT) from stdin")
	return cmd
}

// serverHost is the host of a registry address ("https://r.example.com/v2/" gives
// "r.example.com").
func serverHost(s string) string {
	if s == defaultRegistry {
		return ""
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	h, _, _ := strings.Cut(s, "/")
	return h
}

func (c *CLI) newLogoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Long:  "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.",
		Args:  requiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := defaultRegistry
			if len(args) == 1 {
				server = args[0]
			}
			key := registryKey(serverHost(server))
			cf, err := c.loadConfig()
			if err != nil {
				return err
			}
			if _, ok := cf.Auths[key]; !ok {
				fmt.Fprintf(c.out, "Not logged in to %s\n", server)
				return nil
			}
			fmt.Fprintf(c.out, "Removing login credentials for %s\n", server)
			delete(cf.Auths, key)
			return c.saveConfig(cf)
		},
	}
}
