package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/template"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"berth/internal/cli/format"
)

// inspectFunc fetches one object: its typed value (for templates) and its raw JSON.
type inspectFunc func(ctx context.Context, api *client.Client, name string) (any, []byte, error)

// inspector prints inspected objects: an indented JSON array, or a template's execution
// per object.
type inspector struct {
	out  io.Writer
	tmpl *template.Template
	raw  [][]byte
	buf  bytes.Buffer
}

func newInspector(out io.Writer, tmplStr string) (*inspector, error) {
	in := &inspector{out: out}
	if tmplStr == "" || tmplStr == "json" {
		return in, nil
	}
	t, err := format.Parse(tmplStr)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	in.tmpl = t
	return in, nil
}

// add prints (or keeps, for the JSON array) one object. A template that does not fit the
// typed value is executed on the raw JSON instead (fields the API types do not have).
func (in *inspector) add(typed any, raw []byte) error {
	if in.tmpl == nil {
		if raw == nil {
			b, err := json.Marshal(typed)
			if err != nil {
				return err
			}
			raw = b
		}
		in.raw = append(in.raw, raw)
		return nil
	}
	var b bytes.Buffer
	if err := in.tmpl.Execute(&b, typed); err != nil {
		if raw == nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("unable to read inspect data: %w", err)
		}
		b.Reset()
		if err := in.tmpl.Option("missingkey=error").Execute(&b, v); err != nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
	}
	in.buf.Write(b.Bytes())
	in.buf.WriteByte('\n')
	return nil
}

func (in *inspector) flush() error {
	if in.tmpl != nil {
		if in.buf.Len() == 0 {
			_, err := io.WriteString(in.out, "\n")
			return err
		}
		_, err := in.buf.WriteTo(in.out)
		return err
	}
	if len(in.raw) == 0 {
		_, err := io.WriteString(in.out, "[]\n")
		return err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, []byte("["+string(bytes.Join(in.raw, []byte(",")))+"]"), "", "    "); err != nil {
		return fmt.Errorf("indent the inspect output: %w", err)
	}
	b.WriteByte('\n')
	_, err := b.WriteTo(in.out)
	return err
}

// inspect inspects each name with get and prints the result; errors are reported together
// after the output, exit code 1.
func (c *CLI) inspect(ctx context.Context, names []string, tmpl string, get inspectFunc) error {
	in, err := newInspector(c.out, tmpl)
	if err != nil {
		return StatusError{Status: err.Error(), Code: 64}
	}
	api, err := c.Client(ctx)
	if err != nil {
		in.flush()
		return err
	}
	var errs []string
	for _, n := range names {
		typed, raw, err := get(ctx, api, n)
		if err != nil {
			errs = append(errs, c.errorText(err))
			continue
		}
		if err := in.add(typed, raw); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if err := in.flush(); err != nil {
		return err
	}
	if len(errs) > 0 {
		return StatusError{Status: strings.Join(errs, "\n"), Code: 1}
	}
	return nil
}

func inspectContainer(size bool) inspectFunc {
	return func(ctx context.Context, api *client.Client, name string) (any, []byte, error) {
		r, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{Size: size})
		return r.Container, r.Raw, err
	}
}

func inspectImage(ctx context.Context, api *client.Client, name string) (any, []byte, error) {
	var raw bytes.Buffer
	r, err := api.ImageInspect(ctx, name, client.ImageInspectWithRawResponse(&raw))
	return r.InspectResponse, raw.Bytes(), err
}

func inspectVolume(ctx context.Context, api *client.Client, name string) (any, []byte, error) {
	r, err := api.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	return r.Volume, r.Raw, err
}

func inspectNetwork(verbose bool) inspectFunc {
	return func(ctx context.Context, api *client.Client, name string) (any, []byte, error) {
		r, err := api.NetworkInspect(ctx, name, client.NetworkInspectOptions{Verbose: verbose})
		return r.Network, r.Raw, err
	}
}

// skippable errors let an untyped inspect try the next kind of object.
func skippable(err error) bool {
	return cerrdefs.IsNotFound(err) || strings.Contains(err.Error(), "not supported") ||
		strings.Contains(err.Error(), "invalid reference format")
}

func (c *CLI) newInspectCommand() *cobra.Command {
	var tmpl, typ string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on Docker objects",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kinds := []struct {
				name string
				get  inspectFunc
			}{
				{"container", inspectContainer(size)},
				{"image", inspectImage},
				{"network", inspectNetwork(false)},
				{"volume", inspectVolume},
			}
			valid := false
			for _, k := range kinds {
				valid = valid || k.name == typ
			}
			if typ != "" && !valid {
				return fmt.Errorf(`unknown type: %q: must be one of "container", "image", "network", "volume"`, typ)
			}
			return c.inspect(cmd.Context(), args, tmpl, func(ctx context.Context, api *client.Client, name string) (any, []byte, error) {
				for _, k := range kinds {
					if typ != "" && k.name != typ {
						continue
					}
					v, raw, err := k.get(ctx, api, name)
					if err != nil {
						if typ == "" && skippable(err) {
							continue
						}
						return nil, nil, err
					}
					if size && k.name != "container" {
						fmt.Fprintf(c.err, "WARNING: --size ignored for %s\n", k.name)
					}
					return v, raw, nil
				}
				return nil, nil, errors.New("Error: No such object: " + name)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&tmpl, "format", "f", "", formatHelp(false))
	fs.StringVar(&typ, "type", "", "Only inspect objects of the given type")
	fs.BoolVarP(&size, "size", "s", false, "Display total file sizes if the type is container")
	return cmd
}

// inspectTypeCommand is `<kind> inspect` of the management commands.
func (c *CLI) inspectTypeCommand(kind string) *cobra.Command {
	var tmpl string
	var size, verbose bool
	use := map[string]string{
		"container": "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		"image":     "inspect [OPTIONS] IMAGE [IMAGE...]",
		"volume":    "inspect [OPTIONS] VOLUME [VOLUME...]",
		"network":   "inspect [OPTIONS] NETWORK [NETWORK...]",
	}[kind]
	short := map[string]string{
		"container": "Display detailed information on one or more containers",
		"image":     "Display detailed information on one or more images",
		"volume":    "Display detailed information on one or more volumes",
		"network":   "Display detailed information on one or more networks",
	}[kind]
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			get := map[string]inspectFunc{
				"container": inspectContainer(size), "image": inspectImage,
				"volume": inspectVolume, "network": inspectNetwork(verbose),
			}[kind]
			return c.inspect(cmd.Context(), args, tmpl, get)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&tmpl, "format", "f", "", formatHelp(false))
	switch kind {
	case "container":
		fs.BoolVarP(&size, "size", "s", false, "Display total file sizes")
	case "network":
		fs.BoolVarP(&verbose, "verbose", "v", false, "Verbose output for diagnostics")
	}
	return cmd
}
