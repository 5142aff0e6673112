package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"berth/internal/cli/opts"
)

// The shapes that many commands share: the API client from the start, a verb done to each
// object named, and the flags and order of a listing.

// withAPI is the RunE of a command that needs the daemon before anything else: it makes the
// API client (negotiating the version), then runs f.
func (c *CLI) withAPI(f func(ctx context.Context, api *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		api, err := c.Client(ctx)
		if err != nil {
			return err
		}
		return f(ctx, api, args)
	}
}

// objectOp does a verb to one object (a container, network, volume) named by the user.
type objectOp func(ctx context.Context, api *client.Client, name string) error

// errSkip, from an objectOp, leaves the object out: neither printed nor an error.
var errSkip = errors.New("skipped")

// skipMissing is err, or errSkip when force says that an object that does not exist is not
// an error (rm -f).
func skipMissing(err error, force bool) error {
	if force && cerrdefs.IsNotFound(err) {
		return errSkip
	}
	return err
}

// eachObject runs op on each name in turn; the errors are returned together, one per line,
// once every name has had its turn.
func (c *CLI) eachObject(ctx context.Context, names []string, op objectOp) error {
	api, err := c.Client(ctx)
	if err != nil {
		return err
	}
	var errs []string
	for _, n := range names {
		if err := op(ctx, api, n); err != nil && !errors.Is(err, errSkip) {
			errs = append(errs, c.errorText(err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// forEach is eachObject printing the name of each object op succeeded on.
func (c *CLI) forEach(ctx context.Context, names []string, op objectOp) error {
	return c.eachObject(ctx, names, func(ctx context.Context, api *client.Client, n string) error {
		if err := op(ctx, api, n); err != nil {
			return err
		}
		fmt.Fprintln(c.out, n)
		return nil
	})
}

// verbCommand is a command that does op to each object named (one at least) and prints the
// name of each it did it to: pause, kill, network rm, ...
func (c *CLI) verbCommand(use, short string, op objectOp) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.forEach(cmd.Context(), args, op)
		},
	}
}

// listFlags are the flags every listing has: -q, --format and -f/--filter.
type listFlags struct {
	quiet   bool
	format  string
	filters *opts.Filters
}

// add defines the flags on fs, with the help of -q and of --filter.
func (l *listFlags) add(fs *pflag.FlagSet, quietHelp, filterHelp string) {
	l.filters = opts.NewFilters()
	fs.BoolVarP(&l.quiet, "quiet", "q", false, quietHelp)
	fs.StringVar(&l.format, "format", "", formatHelp(true))
	fs.VarP(l.filters, "filter", "f", filterHelp)
}

// rowsByName are the rows of a listing in docker's order: by name, with the numbers in names
// compared as numbers ("v2" before "v10").
func rowsByName[T any](items []T, name func(T) string, row func(T) any) []any {
	sort.SliceStable(items, func(i, j int) bool { return naturalLess(name(items[i]), name(items[j])) })
	var rows []any
	for _, it := range items {
		rows = append(rows, row(it))
	}
	return rows
}

// naturalLess orders strings with their digit runs compared as numbers ("v2" < "v10").
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		ca, cb := rune(a[0]), rune(b[0])
		if unicode.IsDigit(ca) && unicode.IsDigit(cb) {
			na, ra := digits(a)
			nb, rb := digits(b)
			ta, tb := strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			a, b = ra, rb
			continue
		}
		if ca != cb {
			return ca < cb
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) (string, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}
