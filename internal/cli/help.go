package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// usageTemplate is docker's layout of a command's help.
const usageTemplate = `Usage:  {{if .Runnable}}{{.UseLine}}{{end}}{{if and .HasAvailableSubCommands (not .Runnable)}}{{.CommandPath}} COMMAND{{end}}

{{if .Long}}{{.Long}}{{else}}{{.Short}}{{end}}
{{- if gt (len .Aliases) 0}}

Aliases:
  {{aliases .}}
{{- end}}
{{- if .HasAvailableSubCommands}}
{{- if managementCommands .}}

Management Commands:
{{- range managementCommands .}}
  {{rpad .Name .NamePadding }} {{.Short}}
{{- end}}
{{- end}}
{{- if operationCommands .}}

Commands:
{{- range operationCommands .}}
  {{rpad .Name .NamePadding }} {{.Short}}
{{- end}}
{{- end}}
{{- end}}
{{- if .HasAvailableLocalFlags}}

{{if .HasParent}}Options{{else}}Global Options{{end}}:
{{wrappedFlagUsages . | trimRightSpace}}
{{- end}}
{{- if .HasAvailableSubCommands}}

Run '{{.CommandPath}} COMMAND --help' for more information on a command.
{{- end}}
`

// setHelp (called once every command is added) gives every command docker's help layout, without "[flags]" in the usage line.
func setHelp(root *cobra.Command) {
	cobra.AddTemplateFunc("aliases", func(cmd *cobra.Command) string {
		names := []string{cmd.CommandPath()}
		parent := cmd.Parent().CommandPath()
		for _, a := range cmd.Aliases {
			names = append(names, parent+" "+a)
		}
		return strings.Join(names, ", ")
	})
	cobra.AddTemplateFunc("managementCommands", func(cmd *cobra.Command) []*cobra.Command {
		var out []*cobra.Command
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() && s.HasSubCommands() {
				out = append(out, s)
			}
		}
		return out
	})
	cobra.AddTemplateFunc("operationCommands", func(cmd *cobra.Command) []*cobra.Command {
		var out []*cobra.Command
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() && !s.HasSubCommands() {
				out = append(out, s)
			}
		}
		return out
	})
	cobra.AddTemplateFunc("wrappedFlagUsages", func(cmd *cobra.Command) string {
		width := 80
		if w, _, err := term.GetSize(0); err == nil && w > 0 {
			width = w
		}
		return cmd.LocalFlags().FlagUsagesWrapped(width - 1)
	})
	root.SetHelpTemplate(`{{if or .Runnable .HasSubCommands}}{{.UsageString}}{{end}}`)
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.DisableFlagsInUseLine = true
		cmd.SetUsageTemplate(usageTemplate)
		for _, s := range cmd.Commands() {
			walk(s)
		}
	}
	walk(root)
	root.SetHelpCommand(&cobra.Command{Use: "help [command]", Hidden: true, RunE: func(c *cobra.Command, args []string) error {
		cmd, _, err := root.Find(args)
		if cmd == nil || err != nil {
			return fmt.Errorf("unknown help topic: %v", strings.Join(args, " "))
		}
		return cmd.Help()
	}})
}
