// Package cli is the berth command line: a client of the Docker Engine API
// (github.com/moby/moby/client) with docker's verbs, flags, shorthands, output and exit
// codes. It picks the daemon from -H/--host, BERTH_HOST, DOCKER_HOST or
// unix:///run/berth/berth.sock, negotiates the API version, and renders what the daemon
// answers.
//
// It owns the commands and their behaviour as a user sees it: attaching to containers
// (hijacked streams, raw terminals, detach keys, signal proxying), the client side of cp and
// build, tables and templates. It must not know how the daemon works: everything goes
// through the API. Flag parsing into API types lives in internal/cli/opts, rendering in
// internal/cli/format and internal/cli/jsonstream, cp's path rules in internal/cli/cpath, the
// build context in internal/cli/buildctx.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Version is berth's version, as `berth version` shows it.
var Version = "0.1.0"

// DefaultHost is the daemon's socket when neither -H, BERTH_HOST nor DOCKER_HOST says.
const DefaultHost = "unix:///run/berth/berth.sock"

// StatusError ends a command with an exit code, after printing Status (when set) on
// standard error.
type StatusError struct {
	Status string
	Code   int
}

func (e StatusError) Error() string {
	return fmt.Sprintf("Status: %s, Code: %d", e.Status, e.Code)
}

// CLI is one invocation of berth: its streams, the daemon it talks to and the client.
type CLI struct {
	in  *InStream
	out *OutStream
	err io.Writer

	host   string
	api    *client.Client
	ping   client.PingResult
	debug  bool
	config string // --config
	// namespace is --namespace: the daemon's namespace of containers to see (k8s: the
	// CRI's), sent as the X-Berth-Namespace header.
	namespace string
}

// Main runs berth with args (without the program name) and returns the exit code.
func Main(args []string, stdin io.ReadCloser, stdout, stderr io.Writer) int {
	c := &CLI{in: NewInStream(stdin), out: NewOutStream(stdout), err: stderr}
	defer func() {
		if c.api != nil {
			c.api.Close()
		}
	}()
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(context.Background())
	return c.exitCode(err)
}

// exitCode prints err as docker does and returns the exit code for it.
func (c *CLI) exitCode(err error) int {
	if err == nil {
		return 0
	}
	var se StatusError
	if errors.As(err, &se) {
		if se.Status != "" {
			fmt.Fprintln(c.err, se.Status)
		}
		if se.Code == 0 {
			return 1
		}
		return se.Code
	}
	if errors.Is(err, context.Canceled) {
		return 0
	}
	fmt.Fprintln(c.err, c.errorText(err))
	return 1
}

// errorText is an error as berth prints it: a failed connection names berth's daemon.
func (c *CLI) errorText(err error) string {
	if client.IsErrConnectionFailed(err) {
		return fmt.Sprintf("Cannot connect to the berth daemon at %s. Is berthd running?", c.host)
	}
	return err.Error()
}

// Host is the daemon address: -H, then BERTH_HOST, then DOCKER_HOST, then DefaultHost.
func Host(flag string) string {
	for _, h := range []string{flag, os.Getenv("BERTH_HOST"), os.Getenv("DOCKER_HOST")} {
		if h != "" {
			if strings.HasPrefix(h, "/") {
				return "unix://" + h
			}
			return h
		}
	}
	return DefaultHost
}

// NamespaceHeader names the daemon namespace a request works in (berth's extension of the
// Docker API; the default namespace without it).
const NamespaceHeader = "X-Berth-Namespace"

// Client is the API client, made (and the API version negotiated) on first use.
func (c *CLI) Client(ctx context.Context) (*client.Client, error) {
	if c.api != nil {
		return c.api, nil
	}
	if _, err := client.ParseHostURL(c.host); err != nil {
		return nil, fmt.Errorf("invalid daemon host %q: %w", c.host, err)
	}
	opts := []client.Opt{client.WithHost(c.host), client.WithUserAgent("berth/" + Version)}
	if c.namespace != "" {
		opts = append(opts, client.WithHTTPHeaders(map[string]string{NamespaceHeader: c.namespace}))
	}
	fixed := os.Getenv("DOCKER_API_VERSION")
	if fixed != "" {
		opts = append(opts, client.WithAPIVersion(fixed))
	}
	api, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("make the API client: %w", err)
	}
	if fixed == "" {
		ping, err := api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		if err != nil {
			// The client library negotiates down to client.MinAPIVersion only; an older
			// daemon (dockerd 20.10 speaks 1.41) is spoken to in its own version.
			if ping.APIVersion == "" || !versions.LessThan(ping.APIVersion, client.MinAPIVersion) {
				api.Close()
				return nil, err
			}
			api.Close()
			if api, err = client.New(append(opts, client.WithAPIVersion(ping.APIVersion))...); err != nil {
				return nil, fmt.Errorf("make the API client: %w", err)
			}
		}
		c.ping = ping
	}
	c.api = api
	return api, nil
}

// ServerOS is the daemon's OS ("linux" when it did not say).
func (c *CLI) ServerOS() string {
	if c.ping.OSType != "" {
		return c.ping.OSType
	}
	return "linux"
}

func (c *CLI) rootCommand() *cobra.Command {
	var hostFlag string
	var showVersion bool
	root := &cobra.Command{
		Use:              "berth [OPTIONS] COMMAND [ARG...]",
		Short:            "A self-sufficient runtime for containers",
		SilenceUsage:     true,
		SilenceErrors:    true,
		TraverseChildren: true,
		Args:             noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if showVersion {
				fmt.Fprintf(c.out, "berth version %s\n", Version)
				return nil
			}
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			c.host = Host(hostFlag)
			return nil
		},
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	// Global options come before the command (as docker's): flags of the root only, which
	// TraverseChildren parses before handing the rest to the command.
	pf := root.Flags()
	root.PersistentFlags().BoolP("help", "h", false, "Print usage")
	_ = root.PersistentFlags().MarkHidden("help")
	pf.StringVarP(&hostFlag, "host", "H", "", "Daemon socket to connect to (default: $BERTH_HOST, $DOCKER_HOST or "+DefaultHost+")")
	pf.BoolVarP(&c.debug, "debug", "D", false, "Enable debug mode")
	pf.StringVar(&c.config, "config", "", "Location of client config files (default \"~/.berth\")")
	pf.StringP("log-level", "l", "info", `Set the logging level ("debug", "info", "warn", "error", "fatal")`)
	pf.BoolVarP(&showVersion, "version", "v", false, "Print version information and quit")
	pf.StringVar(&c.namespace, "namespace", "", "Namespace of the daemon's containers to use (k8s: the CRI's pods and containers)")
	root.SetFlagErrorFunc(flagErrorFunc)

	root.AddCommand(
		// Containers.
		c.newRunCommand(), c.newCreateCommand(), c.newStartCommand(), c.newStopCommand(),
		c.newRestartCommand(), c.newKillCommand(), c.newRmCommand(), c.newPsCommand(),
		c.newLogsCommand(), c.newExecCommand(), c.newAttachCommand(), c.newStatsCommand(),
		c.newTopCommand(), c.newCpCommand(), c.newWaitCommand(), c.newPauseCommand(),
		c.newUnpauseCommand(), c.newRenameCommand(), c.newUpdateCommand(), c.newPortCommand(),
		c.newDiffCommand(), c.newExportCommand(), c.newCommitCommand(),
		// Images.
		c.newImagesCommand(), c.newPullCommand(), c.newPushCommand(), c.newBuildCommand(),
		c.newSaveCommand(), c.newLoadCommand(), c.newImportCommand(), c.newTagCommand(),
		c.newRmiCommand(), c.newHistoryCommand(),
		// The rest.
		c.newInspectCommand(), c.newEventsCommand(), c.newVersionCommand(), c.newInfoCommand(),
		c.newLoginCommand(), c.newLogoutCommand(),
		// Management commands.
		c.newContainerCommand(), c.newImageCommand(), c.newVolumeCommand(),
		c.newNetworkCommand(), c.newSystemCommand(),
		c.newRegistryCommand(),
	)
	for _, sub := range root.Commands() {
		setFlagErrors(sub)
	}
	setHelp(root)
	return root
}

// setFlagErrors gives every command docker's flag error (exit 125).
func setFlagErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(flagErrorFunc)
	for _, sub := range cmd.Commands() {
		setFlagErrors(sub)
	}
}

// flagErrorFunc turns a flag parsing error into docker's message and exit code 125.
func flagErrorFunc(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	return StatusError{
		Status: fmt.Sprintf("%s\n\nUsage:  %s\n\nRun '%s --help' for more information", err, cmd.UseLine(), cmd.CommandPath()),
		Code:   125,
	}
}

// noArgs refuses arguments (an unknown command, for a command with subcommands).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return fmt.Errorf("berth: unknown command: %s %s\n\nRun '%s --help' for more information", cmd.CommandPath(), args[0], cmd.CommandPath())
}

// argsError is docker's message for a wrong number of arguments ("See" after a minimum,
// "Run" otherwise, as docker 28 words them).
func argsError(cmd *cobra.Command, what string) error {
	verb := "Run"
	if strings.HasPrefix(what, "requires at least") && !strings.Contains(what, "at most") {
		verb = "See"
	}
	return fmt.Errorf("berth: '%s' %s\n\nUsage:  %s\n\n%s '%s --help' for more information", cmd.CommandPath(), what, cmd.UseLine(), verb, cmd.CommandPath())
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// requiresMinArgs is cobra's MinimumNArgs with docker's message.
func requiresMinArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return argsError(cmd, "requires at least "+plural(n, "argument"))
	}
}

// requiresMaxArgs is cobra's MaximumNArgs with docker's message.
func requiresMaxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) <= n {
			return nil
		}
		return argsError(cmd, "requires at most "+plural(n, "argument"))
	}
}

// requiresRangeArgs is cobra's RangeArgs with docker's message.
func requiresRangeArgs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= min && len(args) <= max {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at least %d and at most %s", min, plural(max, "argument")))
	}
}

// exactArgs is cobra's ExactArgs with docker's message.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return argsError(cmd, "requires "+plural(n, "argument"))
	}
}

// noArgsCmd refuses arguments for a command without subcommands.
func noArgsCmd(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return argsError(cmd, "accepts no arguments")
}

// groupCommand is a management command: its subcommands, help without one.
func groupCommand(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use + " COMMAND",
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(cmd.OutOrStdout())
			return cmd.Help()
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}

// addHelpFlag defines --help without a shorthand (-h is --hostname for run and create).
func addHelpFlag(fs *pflag.FlagSet) {
	fs.Bool("help", false, "Print usage")
}
