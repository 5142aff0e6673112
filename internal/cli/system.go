package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"berth/internal/cli/format"
	"berth/internal/cli/opts"
)

func (c *CLI) newSystemCommand() *cobra.Command {
	return groupCommand("system", "Manage berth",
		c.newDfCommand(), c.eventsCommand(), c.infoCommand("info [OPTIONS]"), c.newSystemPruneCommand(),
	)
}

func (c *CLI) newContainerCommand() *cobra.Command {
	ls := c.psCommand("ls [OPTIONS]")
	ls.Aliases = []string{"ps", "list"}
	rm := c.rmCommand("rm [OPTIONS] CONTAINER [CONTAINER...]")
	rm.Aliases = []string{"remove"}
	return groupCommand("container", "Manage containers",
		c.newAttachCommand(), c.newCommitCommand(), c.newCpCommand(), c.newCreateCommand(),
		c.newDiffCommand(), c.newExecCommand(), c.newExportCommand(), c.inspectTypeCommand("container"),
		c.newKillCommand(), c.newLogsCommand(), ls, c.newPauseCommand(), c.newPortCommand(),
		c.newContainerPruneCommand(), c.newRenameCommand(), c.newRestartCommand(), rm,
		c.newRunCommand(), c.newStartCommand(), c.newStatsCommand(), c.newStopCommand(),
		c.newTopCommand(), c.newUnpauseCommand(), c.newUpdateCommand(), c.newWaitCommand(),
	)
}

func (c *CLI) newDfCommand() *cobra.Command {
	var verbose bool
	var fmtFlag string
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show berth disk usage",
		Args:  noArgsCmd,
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			du, err := api.DiskUsage(ctx, client.DiskUsageOptions{
				Containers: true, Images: true, Volumes: true, BuildCache: true, Verbose: verbose,
			})
			if err != nil {
				return err
			}
			if verbose && (fmtFlag == "" || fmtFlag == format.TableKey) {
				return format.WriteDiskUsageVerbose(c.out, du)
			}
			source := fmtFlag
			if source == "" || source == format.TableKey {
				source = format.DefaultDiskUsageTable
			}
			return format.Write(c.out, format.Format(source), format.DiskUsageHeader, format.DiskUsageRows(du))
		}),
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Show detailed information on space usage")
	cmd.Flags().StringVar(&fmtFlag, "format", "", formatHelp(true))
	return cmd
}

func (c *CLI) newEventsCommand() *cobra.Command { return c.eventsCommand() }

func (c *CLI) eventsCommand() *cobra.Command {
	var since, until, fmtFlag string
	filters := opts.NewFilters()
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var tmplFn func(io.Writer, events.Message) error
			switch fmtFlag {
			case "":
				tmplFn = printEvent
			default:
				t, err := parseTemplate(fmtFlag, "Error parsing format: ")
				if err != nil {
					return err
				}
				tmplFn = func(w io.Writer, m events.Message) error {
					if err := t.Execute(w, m); err != nil {
						return err
					}
					_, err := fmt.Fprintln(w)
					return err
				}
			}
			api, err := c.Client(ctx)
			if err != nil {
				return err
			}
			res := api.Events(ctx, client.EventsListOptions{Since: since, Until: until, Filters: filters.Value()})
			for {
				select {
				case m := <-res.Messages:
					if err := tmplFn(c.out, m); err != nil {
						return err
					}
				case err := <-res.Err:
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
			}
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&since, "since", "", "Show all events created since timestamp")
	fs.StringVar(&until, "until", "", "Stream events until this timestamp")
	fs.VarP(filters, "filter", "f", "Filter output based on conditions provided")
	fs.StringVar(&fmtFlag, "format", "", formatHelp(false))
	return cmd
}

// parseTemplate parses the --format of a command without tables ("json": the whole value as
// JSON). A template that does not parse ends the command with exit code 64, its error after
// failed.
func parseTemplate(src, failed string) (*template.Template, error) {
	if src == format.JSONKey {
		src = "{{json .}}"
	}
	t, err := format.Parse(src)
	if err != nil {
		return nil, StatusError{Status: failed + err.Error(), Code: 64}
	}
	return t, nil
}

// printEvent prints an event as docker does: time, type, action, actor, attributes.
func printEvent(w io.Writer, m events.Message) error {
	const rfc3339NanoFixed = "2006-01-02T15:04:05.000000000Z07:00"
	if m.TimeNano != 0 {
		fmt.Fprintf(w, "%s ", time.Unix(0, m.TimeNano).Format(rfc3339NanoFixed))
	} else if m.Time != 0 {
		fmt.Fprintf(w, "%s ", time.Unix(m.Time, 0).Format(rfc3339NanoFixed))
	}
	fmt.Fprintf(w, "%s %s %s", m.Type, m.Action, m.Actor.ID)
	if len(m.Actor.Attributes) > 0 {
		var keys []string
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var attrs []string
		for _, k := range keys {
			attrs = append(attrs, k+"="+m.Actor.Attributes[k])
		}
		fmt.Fprintf(w, " (%s)", strings.Join(attrs, ", "))
	}
	_, err := fmt.Fprint(w, "\n")
	return err
}

// clientVersion is the client half of `version`.
type clientVersion struct {
	Platform          struct{ Name string }
	Version           string
	APIVersion        string `json:"ApiVersion"`
	DefaultAPIVersion string `json:"DefaultAPIVersion,omitempty"`
	GitCommit         string
	GoVersion         string
	Os                string
	Arch              string
	BuildTime         string `json:",omitempty"`
	Context           string
}

// versionInfo is what `version --format` templates see.
type versionInfo struct {
	Client clientVersion
	Server *client.ServerVersionResult
}

// ServerOK reports whether the server answered.
func (v versionInfo) ServerOK() bool { return v.Server != nil }

const versionTemplate = `{{with .Client -}}
Client:{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}
 Version:	{{.Version}}
 API version:	{{.APIVersion}}{{if ne .APIVersion .DefaultAPIVersion}} (downgraded from {{.DefaultAPIVersion}}){{end}}
 Go version:	{{.GoVersion}}
 OS/Arch:	{{.Os}}/{{.Arch}}
 Context:	{{.Context}}
{{- end}}

{{- if .ServerOK}}{{with .Server}}

Server:{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}
 {{- range $component := .Components}}
 {{$component.Name}}:
  {{- if eq $component.Name "Engine" }}
  Version:	{{.Version}}
  API version:	{{index .Details "ApiVersion"}} (minimum version {{index .Details "MinAPIVersion"}})
  Go version:	{{index .Details "GoVersion"}}
  Git commit:	{{index .Details "GitCommit"}}
  Built:	{{index .Details "BuildTime"}}
  OS/Arch:	{{index .Details "Os"}}/{{index .Details "Arch"}}
  Experimental:	{{index .Details "Experimental"}}
  {{- else }}
  Version:	{{$component.Version}}
  {{- range $key, $value := $component.Details}}
  {{$key}}:	{{$value}}
  {{- end}}
  {{- end}}
 {{- end}}
 {{- end}}{{- end}}`

func (c *CLI) newVersionCommand() *cobra.Command {
	var fmtFlag string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the berth version information",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			src := fmtFlag
			if src == "" {
				src = versionTemplate
			}
			tmpl, err := parseTemplate(src, "template parsing error: ")
			if err != nil {
				return err
			}
			v := versionInfo{Client: clientVersion{
				Platform: struct{ Name string }{"berth"}, Version: Version, APIVersion: client.MaxAPIVersion,
				DefaultAPIVersion: client.MaxAPIVersion, GoVersion: runtime.Version(), Os: runtime.GOOS,
				Arch: runtime.GOARCH, Context: "default",
			}}
			api, cerr := c.Client(cmd.Context())
			if cerr == nil {
				v.Client.APIVersion = api.ClientVersion()
				sv, err := api.ServerVersion(cmd.Context(), client.ServerVersionOptions{})
				if err == nil {
					for _, comp := range sv.Components {
						if bt, ok := comp.Details["BuildTime"]; ok {
							if t, err := time.Parse(time.RFC3339Nano, bt); err == nil {
								comp.Details["BuildTime"] = t.Format(time.ANSIC)
							}
						}
					}
					v.Server = &sv
				}
				cerr = err
			}
			tw := tabwriter.NewWriter(c.out, 20, 1, 1, ' ', 0)
			if err := tmpl.Execute(tw, v); err != nil {
				return fmt.Errorf("template parsing error: %w", err)
			}
			fmt.Fprint(tw, "\n")
			tw.Flush()
			return cerr
		},
	}
	cmd.Flags().StringVarP(&fmtFlag, "format", "f", "", formatHelp(false))
	return cmd
}

// infoView is what `info --format` templates see: the daemon's info and berth's.
type infoView struct {
	*system.Info
	ClientInfo   clientInfo
	ClientErrors []string `json:",omitempty"`
	ServerErrors []string `json:",omitempty"`
}

type clientInfo struct {
	Debug   bool
	Version string
	Context string
}

func (c *CLI) newInfoCommand() *cobra.Command { return c.infoCommand("info [OPTIONS]") }

func (c *CLI) infoCommand(use string) *cobra.Command {
	var fmtFlag string
	cmd := &cobra.Command{
		Use:   use,
		Short: "Display system-wide information",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			view := infoView{ClientInfo: clientInfo{Debug: c.debug, Version: Version, Context: "default"}}
			api, err := c.Client(cmd.Context())
			if err == nil {
				var res client.SystemInfoResult
				if res, err = api.Info(cmd.Context(), client.InfoOptions{}); err == nil {
					view.Info = &res.Info
				}
			}
			if err != nil {
				view.ServerErrors = append(view.ServerErrors, c.errorText(err))
			}
			if fmtFlag != "" {
				t, perr := parseTemplate(fmtFlag, "template parsing error: ")
				if perr != nil {
					return perr
				}
				if err := t.Execute(c.out, view); err != nil {
					return fmt.Errorf("template parsing error: %w", err)
				}
				fmt.Fprintln(c.out)
				if len(view.ServerErrors) > 0 {
					return errors.New(strings.Join(view.ServerErrors, "\n"))
				}
				return nil
			}
			c.prettyInfo(view)
			if len(view.ServerErrors) > 0 {
				return errors.New(strings.Join(view.ServerErrors, "\n"))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&fmtFlag, "format", "f", "", formatHelp(false))
	return cmd
}

// prettyInfo prints `info` the way docker does, for the fields a berth daemon has.
func (c *CLI) prettyInfo(v infoView) {
	w := c.out
	fmt.Fprintln(w, "Client:")
	fmt.Fprintf(w, " Version:    %s\n", v.ClientInfo.Version)
	fmt.Fprintf(w, " Context:    %s\n", v.ClientInfo.Context)
	fmt.Fprintf(w, " Debug Mode: %v\n", v.ClientInfo.Debug)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Server:")
	i := v.Info
	if i == nil {
		return
	}
	fmt.Fprintf(w, " Containers: %d\n", i.Containers)
	fmt.Fprintf(w, "  Running: %d\n", i.ContainersRunning)
	fmt.Fprintf(w, "  Paused: %d\n", i.ContainersPaused)
	fmt.Fprintf(w, "  Stopped: %d\n", i.ContainersStopped)
	fmt.Fprintf(w, " Images: %d\n", i.Images)
	fmt.Fprintf(w, " Server Version: %s\n", i.ServerVersion)
	fmt.Fprintf(w, " Storage Driver: %s\n", i.Driver)
	for _, kv := range i.DriverStatus {
		fmt.Fprintf(w, "  %s: %s\n", kv[0], kv[1])
	}
	if i.LoggingDriver != "" {
		fmt.Fprintf(w, " Logging Driver: %s\n", i.LoggingDriver)
	}
	if i.CgroupDriver != "" {
		fmt.Fprintf(w, " Cgroup Driver: %s\n", i.CgroupDriver)
	}
	if i.CgroupVersion != "" {
		fmt.Fprintf(w, " Cgroup Version: %s\n", i.CgroupVersion)
	}
	fmt.Fprintln(w, " Plugins:")
	fmt.Fprintf(w, "  Volume: %s\n", strings.Join(i.Plugins.Volume, " "))
	fmt.Fprintf(w, "  Network: %s\n", strings.Join(i.Plugins.Network, " "))
	fmt.Fprintf(w, "  Log: %s\n", strings.Join(i.Plugins.Log, " "))
	if len(i.Runtimes) > 0 {
		var names []string
		for n := range i.Runtimes {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(w, " Runtimes: %s\n", strings.Join(names, " "))
		fmt.Fprintf(w, " Default Runtime: %s\n", i.DefaultRuntime)
	}
	if i.InitBinary != "" {
		fmt.Fprintf(w, " Init Binary: %s\n", i.InitBinary)
	}
	if len(i.SecurityOptions) > 0 {
		fmt.Fprintln(w, " Security Options:")
		for _, o := range i.SecurityOptions {
			for _, kv := range strings.Split(o, ",") {
				k, val, _ := strings.Cut(kv, "=")
				if k == "name" {
					fmt.Fprintf(w, "  %s\n", val)
				} else {
					fmt.Fprintf(w, "   %s: %s\n", strings.ToUpper(k[:1])+k[1:], val)
				}
			}
		}
	}
	fmt.Fprintf(w, " Kernel Version: %s\n", i.KernelVersion)
	fmt.Fprintf(w, " Operating System: %s\n", i.OperatingSystem)
	fmt.Fprintf(w, " OSType: %s\n", i.OSType)
	fmt.Fprintf(w, " Architecture: %s\n", i.Architecture)
	fmt.Fprintf(w, " CPUs: %d\n", i.NCPU)
	fmt.Fprintf(w, " Total Memory: %s\n", units.BytesSize(float64(i.MemTotal)))
	fmt.Fprintf(w, " Name: %s\n", i.Name)
	fmt.Fprintf(w, " ID: %s\n", i.ID)
	fmt.Fprintf(w, " Docker Root Dir: %s\n", i.DockerRootDir)
	fmt.Fprintf(w, " Debug Mode: %v\n", i.Debug)
	if len(i.Labels) > 0 {
		fmt.Fprintln(w, " Labels:")
		for _, l := range i.Labels {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	fmt.Fprintf(w, " Experimental: %v\n", i.ExperimentalBuild)
	fmt.Fprintf(w, " Live Restore Enabled: %v\n", i.LiveRestoreEnabled)
	fmt.Fprintln(w)
	for _, warn := range i.Warnings {
		fmt.Fprintln(c.err, warn)
	}
}
