// Package stats turns the durations the bench commands (test/bench, test/bench/images)
// measure into the numbers and tables of their reports: nearest-rank quantiles, ratios of
// medians, the title line with the machine, markdown tables. It must not measure, nor
// decide what a report says.
package stats

import (
	"fmt"
	"io"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Quantile returns the nearest-rank q-quantile (0<q<=1) of ds, 0 when there is none; the
// median of an even count is the mean of the middle two.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if q == 0.5 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Median is Quantile(ds, 0.5).
func Median(ds []time.Duration) time.Duration { return Quantile(ds, 0.5) }

// Ratio is the median of a over the median of b ("%.2f"), or none when either is empty.
func Ratio(a, b []time.Duration, none string) string {
	if len(a) == 0 || len(b) == 0 {
		return none
	}
	return fmt.Sprintf("%.2f", float64(Median(a))/float64(Median(b)))
}

// Title is a report's first line: "# berth <what>: N=<n> (after <warmup> warm-up), kernel
// <release>, <CPUs> CPUs, <date>".
func Title(what string, n, warmup int) string {
	var uts unix.Utsname
	unix.Uname(&uts)
	return fmt.Sprintf("# berth %s: N=%d (after %d warm-up), kernel %s, %d CPUs, %s",
		what, n, warmup, unix.ByteSliceToString(uts.Release[:]), goruntime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
}

// Table is a markdown table: its first column left-aligned, the others (numbers)
// right-aligned.
type Table struct {
	header []string
	rows   [][]string
}

// NewTable starts a table with its header.
func NewTable(header ...string) *Table { return &Table{header: header} }

// Row adds a row; a cell is a string, or anything fmt prints with %v.
func (t *Table) Row(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, row)
}

// Print writes the table to w, followed by an empty line.
func (t *Table) Print(w io.Writer) {
	line := func(cells []string) { fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")) }
	line(t.header)
	align := make([]string, len(t.header))
	for i := range align {
		align[i] = "---:"
	}
	if len(align) > 0 {
		align[0] = "---"
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(align, "|"))
	for _, r := range t.rows {
		line(r)
	}
	fmt.Fprintln(w)
}
