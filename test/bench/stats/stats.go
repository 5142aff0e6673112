// Package stats turns the durations and values the bench commands (test/bench,
// test/bench/images, the engine benches) measure into the numbers and tables of their
// reports: nearest-rank quantiles, medians, ratios of medians, the title line with the
// machine and its load, markdown tables. It must not measure, nor decide what a report says.
package stats

import (
	"fmt"
	"io"
	"os"
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

// Millis is the q-quantile of ds in milliseconds, with prec decimals; n/a when there is none.
func Millis(ds []time.Duration, q float64, prec int) string {
	if len(ds) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", prec, float64(Quantile(ds, q))/1e6)
}

// MedianOf is the median of xs (the mean of the middle two for an even count), as Median
// is for durations; 0 when there is none.
func MedianOf[T int64 | float64](xs []T) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return float64(s[len(s)/2-1]+s[len(s)/2]) / 2
	}
	return float64(s[len(s)/2])
}

// RatioOf is a/b ("%.2f"), n/a when either is missing (0).
func RatioOf(a, b float64) string {
	if a == 0 || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// LoadAvg is the machine's load average over 1, 5 and 15 minutes ("0.52 0.61 0.70"), "?"
// when it cannot be read.
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
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
