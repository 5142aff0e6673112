package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"berth/internal/cli/cpath"
	"berth/internal/cli/format"
	"berth/internal/cli/jsonstream"
	"berth/internal/cli/opts"
)

// terminal describes c's standard output for jsonstream, nil when it is not a terminal.
func (c *CLI) terminal() *jsonstream.Terminal {
	if !c.out.IsTerminal() {
		return nil
	}
	return &jsonstream.Terminal{Width: c.out.Width}
}

// displayStream renders a JSON message stream to out; an error message in it ends the
// command with exit code 1 (or the message's code).
func (c *CLI) displayStream(r io.Reader, out io.Writer, aux func(json.RawMessage)) error {
	var term *jsonstream.Terminal
	if out == io.Writer(c.out) {
		term = c.terminal()
	}
	err := jsonstream.Display(r, out, term, aux)
	var jerr *jsonstream.Error
	if errors.As(err, &jerr) {
		code := jerr.Code
		if code == 0 {
			code = 1
		}
		return StatusError{Status: jerr.Message, Code: code}
	}
	return err
}

func parsePlatform(s string) (*ocispec.Platform, error) {
	if s == "" {
		return nil, nil
	}
	p, err := platforms.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid platform %q: %w", s, err)
	}
	return &p, nil
}

// platformList is --platform as a list: empty without one.
func platformList(s string) ([]ocispec.Platform, error) {
	p, err := parsePlatform(s)
	if p == nil {
		return nil, err
	}
	return []ocispec.Platform{*p}, nil
}

// pullImage pulls image and renders the progress to out (what run and create show).
func (c *CLI) pullImage(ctx context.Context, img, platform string, out io.Writer) error {
	api, err := c.Client(ctx)
	if err != nil {
		return err
	}
	ref, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		return err
	}
	ref = reference.TagNameOnly(ref)
	o := client.ImagePullOptions{RegistryAuth: c.registryAuth(ref)}
	if o.Platforms, err = platformList(platform); err != nil {
		return err
	}
	resp, err := api.ImagePull(ctx, reference.FamiliarString(ref), o)
	if err != nil {
		return err
	}
	defer resp.Close()
	err = jsonstream.Display(resp, out, c.terminal(), nil)
	var jerr *jsonstream.Error
	if errors.As(err, &jerr) {
		return errors.New(jerr.Message)
	}
	return err
}

func (c *CLI) newPullCommand() *cobra.Command {
	var all, quiet bool
	var platform string
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := c.transfer(cmd.Context(), args[0], all, quiet, func(ctx context.Context, api *client.Client, ref reference.Named, auth string) (io.ReadCloser, error) {
				o := client.ImagePullOptions{All: all, RegistryAuth: auth}
				var err error
				if o.Platforms, err = platformList(platform); err != nil {
					return nil, err
				}
				return api.ImagePull(ctx, reference.FamiliarString(ref), o)
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, ref.String())
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&all, "all-tags", "a", false, "Download all tagged images in the repository")
	fs.BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	fs.StringVar(&platform, "platform", os.Getenv("DOCKER_DEFAULT_PLATFORM"), "Set platform if server is multi-platform capable")
	fs.Bool("disable-content-trust", true, "Skip image verification")
	return cmd
}

func (c *CLI) newPushCommand() *cobra.Command {
	var all, quiet bool
	var platform string
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := c.transfer(cmd.Context(), args[0], all, quiet, func(ctx context.Context, api *client.Client, ref reference.Named, auth string) (io.ReadCloser, error) {
				o := client.ImagePushOptions{All: all, RegistryAuth: auth}
				var err error
				if o.Platform, err = parsePlatform(platform); err != nil {
					return nil, err
				}
				return api.ImagePush(ctx, reference.FamiliarString(ref), o)
			})
			if err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(c.out, ref.String())
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&all, "all-tags", "a", false, "Push all tags of an image to the repository")
	fs.BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	fs.StringVar(&platform, "platform", "", "Push a platform-specific manifest as a single-platform image to the registry.")
	fs.Bool("disable-content-trust", true, "Skip image signing")
	return cmd
}

// transfer is a pull or a push of arg (with --all-tags a repository without a tag, else the
// tag given or the default tag, said unless quiet): send makes the request, given the
// reference and the registry's credentials; transfer renders its progress (only reads it
// with -q) and returns the reference.
func (c *CLI) transfer(ctx context.Context, arg string, all, quiet bool,
	send func(ctx context.Context, api *client.Client, ref reference.Named, auth string) (io.ReadCloser, error)) (reference.Named, error) {
	ref, err := reference.ParseNormalizedNamed(arg)
	if err != nil {
		return nil, err
	}
	switch {
	case all && !reference.IsNameOnly(ref):
		return nil, errors.New("tag can't be used with --all-tags/-a")
	case !all && reference.IsNameOnly(ref):
		ref = reference.TagNameOnly(ref)
		if t, ok := ref.(reference.Tagged); ok && !quiet {
			fmt.Fprintf(c.out, "Using default tag: %s\n", t.Tag())
		}
	}
	api, err := c.Client(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := send(ctx, api, ref, c.registryAuth(ref))
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	out := io.Writer(c.out)
	if quiet {
		out = io.Discard
	}
	return ref, c.displayStream(resp, out, nil)
}

func (c *CLI) newImagesCommand() *cobra.Command {
	return c.imageListCommand("images [OPTIONS] [REPOSITORY[:TAG]]")
}

func (c *CLI) imageListCommand(use string) *cobra.Command {
	var all, noTrunc, digests bool
	var list listFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: "List images",
		Args:  requiresMaxArgs(1),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			f := list.filters.Value().Clone()
			if len(args) == 1 {
				f.Add("reference", args[0])
			}
			res, err := api.ImageList(ctx, client.ImageListOptions{All: all, Filters: f})
			if err != nil {
				return err
			}
			source := list.format
			if source == "" {
				source = format.TableKey
			}
			fm := format.ImageFormat(source, list.quiet, digests)
			rows := format.ImageRows(res.Items, !noTrunc, digests || fm.Contains("{{.Digest}}"))
			return format.Write(c.out, fm, format.ImageHeader, rows)
		}),
	}
	fs := cmd.Flags()
	list.add(fs, "Only show image IDs", "Filter output based on conditions provided")
	fs.BoolVarP(&all, "all", "a", false, "Show all images (default hides intermediate images)")
	fs.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fs.BoolVar(&digests, "digests", false, "Show digests")
	return cmd
}

// formatHelp is the help of --format.
func formatHelp(table bool) string {
	h := "Format output using a custom template:\n"
	if table {
		h += "'table':            Print output in table format with column headers (default)\n" +
			"'table TEMPLATE':   Print output in table format using the given Go template\n"
	}
	return h + "'json':             Print in JSON format\n" +
		"'TEMPLATE':         Print output using the given Go template.\n" +
		"Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates"
}

func (c *CLI) newTagCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  exactArgs(2),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			_, err := api.ImageTag(ctx, client.ImageTagOptions{Source: args[0], Target: args[1]})
			return err
		}),
	}
}

func (c *CLI) newRmiCommand() *cobra.Command {
	return c.imageRemoveCommand("rmi [OPTIONS] IMAGE [IMAGE...]")
}

func (c *CLI) imageRemoveCommand(use string) *cobra.Command {
	var force, noPrune bool
	var plats []string
	cmd := &cobra.Command{
		Use:   use,
		Short: "Remove one or more images",
		Args:  requiresMinArgs(1),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			o := client.ImageRemoveOptions{Force: force, PruneChildren: !noPrune}
			for _, p := range plats {
				pl, err := parsePlatform(p)
				if err != nil {
					return err
				}
				o.Platforms = append(o.Platforms, *pl)
			}
			var msgs []string
			fatal := false
			for _, img := range args {
				res, err := api.ImageRemove(ctx, img, o)
				if err != nil {
					if !cerrdefs.IsNotFound(err) {
						fatal = true
					}
					msgs = append(msgs, err.Error())
					continue
				}
				for _, d := range res.Items {
					if d.Deleted != "" {
						fmt.Fprintf(c.out, "Deleted: %s\n", d.Deleted)
					} else {
						fmt.Fprintf(c.out, "Untagged: %s\n", d.Untagged)
					}
				}
			}
			if len(msgs) > 0 {
				msg := strings.Join(msgs, "\n")
				if !force || fatal {
					return errors.New(msg)
				}
				fmt.Fprintln(c.err, msg)
			}
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.BoolVarP(&force, "force", "f", false, "Force removal of the image")
	fs.BoolVar(&noPrune, "no-prune", false, "Do not delete untagged parents")
	fs.StringSliceVar(&plats, "platform", nil, `Remove only the given platform variant. Formatted as "os[/arch[/variant]]" (e.g., "linux/amd64")`)
	return cmd
}

// writeToFile copies r into path through a temporary file in the same directory, renamed
// into place once complete.
func writeToFile(path string, r io.Reader) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*")
	if err != nil {
		return fmt.Errorf("failed to create a temporary file in %s: %w", dir, err)
	}
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("failed to save to %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("failed to rename %s to %s: %w", tmp.Name(), path, err)
	}
	return nil
}

func (c *CLI) newSaveCommand() *cobra.Command {
	var output, platform string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := c.checkArchiveOutput(output, "failed to save image"); err != nil {
				return err
			}
			api, err := c.Client(ctx)
			if err != nil {
				return err
			}
			var o []client.ImageSaveOption
			if p, err := parsePlatform(platform); err != nil {
				return err
			} else if p != nil {
				o = append(o, client.ImageSaveWithPlatforms(*p))
			}
			res, err := api.ImageSave(ctx, args, o...)
			if err != nil {
				return err
			}
			defer res.Close()
			return c.writeArchive(output, res)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	cmd.Flags().StringVar(&platform, "platform", "", `Save only the given platform variant. Formatted as "os[/arch[/variant]]" (e.g., "linux/amd64")`)
	return cmd
}

// checkArchiveOutput checks the destination of a command that writes an archive (save,
// export) before it asks the daemon: standard output must not be a terminal, and -o's
// directory must exist (its error after failed: "failed to save image: ...").
func (c *CLI) checkArchiveOutput(output, failed string) error {
	if output == "" && c.out.IsTerminal() {
		return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
	}
	if output != "" {
		if err := cpath.ValidateOutputDir(output); err != nil {
			return fmt.Errorf("%s: %w", failed, err)
		}
	}
	return nil
}

// writeArchive copies an archive to -o's file, or to standard output without -o.
func (c *CLI) writeArchive(output string, r io.Reader) error {
	if output == "" {
		_, err := io.Copy(c.out, r)
		return err
	}
	return writeToFile(output, r)
}

func (c *CLI) newLoadCommand() *cobra.Command {
	var input, platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var in io.Reader = c.in
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			} else if c.in.IsTerminal() {
				return errors.New("requested load from stdin, but stdin is empty")
			}
			api, err := c.Client(ctx)
			if err != nil {
				return err
			}
			o := []client.ImageLoadOption{client.ImageLoadWithQuiet(quiet || !c.out.IsTerminal())}
			if p, err := parsePlatform(platform); err != nil {
				return err
			} else if p != nil {
				o = append(o, client.ImageLoadWithPlatforms(*p))
			}
			res, err := api.ImageLoad(ctx, in, o...)
			if err != nil {
				return err
			}
			defer res.Close()
			br := bufio.NewReader(res)
			if b, err := br.Peek(1); err == nil && b[0] == '{' {
				return c.displayStream(br, c.out, nil)
			}
			_, err = io.Copy(c.out, br)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	fs.BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	fs.StringVar(&platform, "platform", "", `Load only the given platform variant. Formatted as "os[/arch[/variant]]" (e.g., "linux/amd64")`)
	return cmd
}

func (c *CLI) newImportCommand() *cobra.Command {
	changes := opts.NewList(nil)
	var message, platform string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) > 2 {
				return argsError(cmd, "requires at most 2 arguments")
			}
			var src client.ImageImportSource
			switch s := args[0]; {
			case s == "-":
				src = client.ImageImportSource{Source: c.in, SourceName: "-"}
			case strings.HasPrefix(s, "https://"), strings.HasPrefix(s, "http://"):
				src = client.ImageImportSource{SourceName: s}
			default:
				f, err := os.Open(s)
				if err != nil {
					return err
				}
				defer f.Close()
				src = client.ImageImportSource{Source: f, SourceName: "-"}
			}
			var ref string
			if len(args) == 2 {
				ref = args[1]
			}
			api, err := c.Client(ctx)
			if err != nil {
				return err
			}
			o := client.ImageImportOptions{Message: message, Changes: changes.Values()}
			if p, err := parsePlatform(platform); err != nil {
				return err
			} else if p != nil {
				o.Platform = *p
			}
			res, err := api.ImageImport(ctx, src, ref, o)
			if err != nil {
				return err
			}
			defer res.Close()
			return c.displayStream(res, c.out, nil)
		},
	}
	fs := cmd.Flags()
	fs.VarP(changes, "change", "c", "Apply Dockerfile instruction to the created image")
	fs.StringVarP(&message, "message", "m", "", "Set commit message for imported image")
	fs.StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	return cmd
}

func (c *CLI) newHistoryCommand() *cobra.Command {
	var human, quiet, noTrunc bool
	var fmtFlag, platform string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  exactArgs(1),
		RunE: c.withAPI(func(ctx context.Context, api *client.Client, args []string) error {
			var hopts []client.ImageHistoryOption
			if p, err := parsePlatform(platform); err != nil {
				return err
			} else if p != nil {
				hopts = append(hopts, client.ImageHistoryWithPlatform(*p))
			}
			res, err := api.ImageHistory(ctx, args[0], hopts...)
			if err != nil {
				return err
			}
			source := fmtFlag
			if source == "" || source == format.TableKey {
				source = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
				if quiet {
					source = "{{.ID}}"
				}
			}
			var rows []any
			for _, h := range res.Items {
				rows = append(rows, &historyRow{h: h, trunc: !noTrunc, human: human})
			}
			return format.Write(c.out, format.Format(source), format.Header{
				"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
				"Size": "SIZE", "Comment": "COMMENT",
			}, rows)
		}),
	}
	fs := cmd.Flags()
	fs.BoolVarP(&human, "human", "H", true, "Print sizes and dates in human readable format")
	fs.StringVar(&platform, "platform", "", `Show history for the given platform. Formatted as "os[/arch[/variant]]" (e.g., "linux/amd64")`)
	fs.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	fs.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fs.StringVar(&fmtFlag, "format", "", formatHelp(true))
	return cmd
}

// historyRow is one row of `history`.
type historyRow struct {
	h            image.HistoryResponseItem
	trunc, human bool
}

func (r *historyRow) MarshalJSON() ([]byte, error) { return format.MarshalMethods(r) }

func (r *historyRow) ID() string {
	if r.trunc {
		return format.TruncateID(r.h.ID)
	}
	return r.h.ID
}

func (r *historyRow) CreatedSince() string {
	if !r.human {
		return time.Unix(r.h.Created, 0).Format(time.RFC3339)
	}
	return format.Ago(time.Unix(r.h.Created, 0))
}

func (r *historyRow) CreatedAt() string { return time.Unix(r.h.Created, 0).Format(time.RFC3339) }

func (r *historyRow) CreatedBy() string {
	s := strings.ReplaceAll(r.h.CreatedBy, "\t", " ")
	if r.trunc {
		s = format.Ellipsis(s, 45)
	}
	return s
}

func (r *historyRow) Size() string {
	if r.human {
		return units.HumanSizeWithPrecision(float64(r.h.Size), 3)
	}
	return fmt.Sprint(r.h.Size)
}

func (r *historyRow) Comment() string { return r.h.Comment }

func (c *CLI) newImageCommand() *cobra.Command {
	ls := c.imageListCommand("ls [OPTIONS] [REPOSITORY[:TAG]]")
	ls.Aliases = []string{"list"}
	rm := c.imageRemoveCommand("rm [OPTIONS] IMAGE [IMAGE...]")
	rm.Aliases = []string{"remove"}
	return groupCommand("image", "Manage images",
		c.newBuildCommand(), c.newHistoryCommand(), c.newImportCommand(), c.inspectTypeCommand("image"),
		c.newLoadCommand(), ls, c.newImagePruneCommand(), c.newPullCommand(), c.newPushCommand(), rm,
		c.newSaveCommand(), c.newTagCommand(),
	)
}
