package harness

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"

	"berth/test/bench/stats"
	"berth/test/engine"
)

// Measured is a bench's engine type: a pointer to a struct that embeds *Engine.
type Measured interface {
	comparable
	Base() *Engine
	// Cleanup removes the engine's containers and images and ends it (Engine.Shutdown); it
	// returns the leftovers.
	Cleanup() int
}

// Start starts an engine in dir, its containers' cgroups under cgroupParent. Without an
// engine (nil) the error says why it did not start; with one, it is cleaned up either way.
type Start[E Measured] func(ctx context.Context, dir, cgroupParent string) (E, error)

// Engines is a bench of engines' run, for RunEngines; I is what the engines are prepared
// with.
type Engines[E Measured, I any] struct {
	Tools   string // -tools: the engines to measure, comma-separated ("docker" is dockerd)
	Workdir string // -workdir: the parent of the bench's directory
	Prefix  string // the start of the bench's directory's name
	// Check checks the flags before anything starts (nil: nothing to check); its error ends
	// the run (exit status 2).
	Check func() error
	// Inputs writes what the engines are prepared with into the bench's directory; its error
	// is logged after "InputsWhat: " and fails the run.
	Inputs     func(work string) (I, error)
	InputsWhat string
	// Start starts an engine by name, in its directory (work/<name>; dockerd's: docker) with
	// its containers' cgroup parent (likewise named). A peer's Start that returns no engine
	// (it is not installed) skips it; with SkipMissing that is not a failure of the run.
	Start       map[string]Start[E]
	SkipMissing bool
	Prepare     func(ctx context.Context, e E, in I) error
	// Measure measures the live engines (not dropped), in the order of -tools.
	Measure func(ctx context.Context, live []E, in I)
	// Report prints the report's body, after its head: the title, the engines' versions and
	// the load average; the engines' failures follow on standard error.
	Report func(engines []E, in I, cg *engine.CgroupParent)
	// What, N and Warmup are the title's (stats.Title).
	What      string
	N, Warmup int
	// AnyFailure fails the run on any failed command, not only on a dropped engine.
	AnyFailure bool
}

// RunEngines is the run of a bench of engines, in the process Main runs in a mount
// namespace of its own; it returns the exit status. It parses the tools, holds the engine
// tests' host lock when a peer of berthd runs (Begin), writes the inputs, starts and
// prepares every engine, measures those that work and prints the report, then cleans up
// every engine and sweeps (Sweep). It exits 1 when anything was left, when the bench was
// interrupted, or when an engine failed.
func RunEngines[E Measured, I any](b *Bench, o Engines[E, I]) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	OnInterrupt(b.Name, func() {
		b.stopping.Store(true)
		cancel()
	})

	names, err := parseTools(o.Tools, o.Start)
	if err == nil && o.Check != nil {
		err = o.Check()
	}
	if err != nil {
		b.Logf("%v", err)
		return 2
	}
	lock := slices.ContainsFunc(names, func(n string) bool { return n != "berth" })
	work, cg, before, unlock, err := Begin(o.Workdir, o.Prefix, fmt.Sprintf("berth-bench-%s-%d", b.Name, os.Getpid()), lock, b.Logf)
	if err != nil {
		b.Logf("%v", err)
		return 2
	}
	defer unlock()

	leftovers := 0
	failed := false
	var engines []E
	var none E
	in, err := o.Inputs(work)
	if err != nil {
		b.Logf("%s: %v", o.InputsWhat, err)
		failed = true
	}
	for _, name := range names {
		if err != nil || b.Stopping() {
			break
		}
		short := name
		if name == "dockerd" {
			short = "docker"
		}
		e, serr := o.Start[name](ctx, filepath.Join(work, short), cg.Path+"/"+short)
		if e != none {
			engines = append(engines, e)
		}
		if serr == nil {
			serr = o.Prepare(ctx, e, in)
		}
		if serr != nil {
			b.Logf("%s: %v (skipped)", name, serr)
			if e != none {
				e.Base().Dropped = true
				e.Base().FirstErr = serr.Error()
			}
			// A peer that is not installed is skipped; one that did not work is a failure.
			if e != none || name == "berth" || !o.SkipMissing {
				failed = true
			}
		}
	}

	if !b.Stopping() && !measure(ctx, b, o, engines, in, cg) {
		failed = true
	}

	for _, e := range engines {
		leftovers += e.Cleanup()
	}
	leftovers += Sweep(work, *b.Keep, before, cg, b.Logf)
	for _, e := range engines {
		if e.Base().Dropped || (o.AnyFailure && e.Base().Fails > 0) {
			failed = true
		}
	}
	if leftovers > 0 || b.Stopping() || failed {
		return 1
	}
	return 0
}

// parseTools is the engines of -tools, each once, in order.
func parseTools[E Measured](tools string, start map[string]Start[E]) ([]string, error) {
	var names []string
	for _, name := range strings.Split(tools, ",") {
		switch name = strings.TrimSpace(name); name {
		case "":
			continue
		case "docker":
			name = "dockerd"
		}
		if _, ok := start[name]; !ok {
			return nil, fmt.Errorf("-tools: unknown engine %q (want %s)", name, strings.Join(slices.Sorted(maps.Keys(start)), ", "))
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no engine to measure")
	}
	return names, nil
}

// measure measures the engines that started and prints the report; a panic is reported
// (false) so that the caller still cleans up.
func measure[E Measured, I any](ctx context.Context, b *Bench, o Engines[E, I], engines []E, in I, cg *engine.CgroupParent) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			b.Logf("panic: %v\n%s", p, debug.Stack())
			ok = false
		}
	}()
	var live []E
	for _, e := range engines {
		if !e.Base().Dropped {
			live = append(live, e)
		}
	}
	if len(live) == 0 {
		b.Logf("no engine to measure")
		return false
	}
	b.loadStart = stats.LoadAvg()
	o.Measure(ctx, live, in)
	if b.Stopping() {
		return false
	}
	fmt.Printf("%s\n\n", stats.Title(o.What, o.N, o.Warmup))
	for _, e := range engines {
		v := e.Base().Version
		if e.Base().FirstErr != "" {
			v += "; " + e.Base().FirstErr
		}
		fmt.Printf("- %s: %s\n", e.Base().Name, v)
	}
	fmt.Printf("- load average (1, 5, 15 min) at the start: %s, at the end: %s\n", b.loadStart, stats.LoadAvg())
	o.Report(engines, in, cg)
	for _, e := range engines {
		if e := e.Base(); e.Fails > 0 {
			fmt.Fprintf(os.Stderr, "%s: %s: %d failures; first: %s\n", b.Name, e.Name, e.Fails, e.FirstErr)
		}
	}
	return true
}

// Rotated is s starting at its element i (modulo its length), then the ones before: the
// order of a round i, so that every element in turn goes first.
func Rotated[T any](s []T, i int) []T {
	k := i % len(s)
	return append(slices.Clone(s[k:]), s[:k]...)
}

// RepoRoot is the repository the bench command runs in (for the default -bin): the first
// directory up from the working directory with a go.mod, "." when there is none.
func RepoRoot() string {
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return d
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "."
}
