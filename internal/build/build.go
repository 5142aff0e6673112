// Package build owns berth's Dockerfile builder: it parses a Dockerfile with buildkit's
// parser (instructions, variables, heredocs, line continuations, the escape directive),
// picks the stages a target needs, and executes them on berth's own store and runtime:
// RUN steps in berth containers (daemon.RunBuildStep), COPY and ADD into overlay snapshots
// of the step's layers, metadata instructions on the image config. Every step that changes
// the filesystem commits one layer; every step's result is kept in the image store's build
// cache under a key made of its parent's key, the instruction, the build args in scope and
// (for COPY and ADD) the content of its sources, so that an unchanged step is reused
// ("Using cache"). Only a build's final state becomes an image.
//
// The context arrives as a directory (the API extracts the uploaded tar); .dockerignore
// applies to COPY and ADD sources.
package build

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/internal/cli/buildctx"
	"berth/internal/daemon"
	"berth/internal/errdefs"
	"berth/internal/image"
)

// Backend is what a build runs on: the daemon.
type Backend interface {
	Images() *image.Store
	RunBuildStep(ctx context.Context, s daemon.BuildStep) (id string, exitCode int, err error)
	RemoveBuildContainer(id string) error
	// Pull fetches an image from its registry (FROM of an image that is not here, or
	// --pull).
	Pull(ctx context.Context, ref string, out io.Writer) (*image.Image, error)
}

// Options are a build's parameters (POST /build's).
type Options struct {
	// ContextDir is the build context, extracted.
	ContextDir string
	// Dockerfile is the Dockerfile's path in the context ("Dockerfile" when empty).
	Dockerfile string
	Tags       []string
	// BuildArgs are --build-arg values; a nil value means "from the Dockerfile's default".
	BuildArgs map[string]*string
	Labels    map[string]string
	Target    string
	NoCache   bool
	Pull      bool
	Platform  string
	// HostConfig is what every RUN container gets: network mode, resources, cgroup
	// parent, extra hosts, ulimits, shm size.
	HostConfig container.HostConfig
}

// Result is the image a build made.
type Result struct {
	Image *image.Image
}

// Builder runs builds on a backend.
type Builder struct {
	b Backend
}

// New is a builder on b.
func New(b Backend) *Builder { return &Builder{b: b} }

// Error is a build failure at a Dockerfile instruction.
type Error struct {
	File        string
	Line        int
	Instruction string
	Err         error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Instruction, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ExitError is a RUN whose command failed.
type ExitError struct {
	Command []string
	Code    int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("The command '%s' returned a non-zero code: %d", strings.Join(e.Command, " "), e.Code)
}

// Build parses and runs the Dockerfile, writing Docker's classic progress text to out
// ("Step 1/5 : FROM busybox", " ---> Running in ...", the commands' output, " ---> Using
// cache", "Successfully built ..."). On failure no image is made and every container the
// build made is removed; the steps that completed stay in the cache.
func (bd *Builder) Build(ctx context.Context, o Options, out io.Writer) (*Result, error) {
	if o.Platform != "" {
		if p := strings.TrimPrefix(o.Platform, "linux/"); p != runtime.GOARCH && o.Platform != "linux" {
			return nil, errdefs.Invalid("platform %q is not supported: berth builds for linux/%s", o.Platform, runtime.GOARCH)
		}
	}
	name := o.Dockerfile
	if name == "" {
		name = "Dockerfile"
	}
	df, err := readDockerfile(o.ContextDir, name)
	if err != nil {
		return nil, err
	}
	res, err := parser.Parse(strings.NewReader(string(df)))
	if err != nil {
		return nil, errdefs.InvalidWrap(err, "%s", filepath.Base(name))
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(out, "[Warning] %s\n", w.Short)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, errdefs.InvalidWrap(err, "%s", filepath.Base(name))
	}
	if len(stages) == 0 {
		return nil, errdefs.Invalid("%s: the Dockerfile has no FROM instruction", filepath.Base(name))
	}
	b := &build{
		bd: bd, o: o, out: out, file: filepath.Base(name),
		lex:      shell.NewLex(res.EscapeToken),
		stages:   stages,
		results:  map[int]*stageResult{},
		usedArgs: map[string]bool{},
	}
	if ex, err := buildctx.ReadDockerignore(o.ContextDir); err != nil {
		return nil, errdefs.InvalidWrap(err, ".dockerignore")
	} else if len(ex) > 0 {
		if b.ignore, err = buildctx.NewMatcher(ex); err != nil {
			return nil, errdefs.InvalidWrap(err, ".dockerignore")
		}
	}
	if err := b.globalArgs(metaArgs); err != nil {
		return nil, err
	}
	target := len(stages) - 1
	if o.Target != "" {
		i, ok := instructions.HasStage(stages, o.Target)
		if !ok {
			return nil, errdefs.Invalid("failed to reach build target %s in Dockerfile", o.Target)
		}
		target = i
	}
	needed, err := b.neededStages(target)
	if err != nil {
		return nil, err
	}
	for _, i := range needed {
		b.total += 1 + len(stages[i].Commands)
	}
	var final *stageResult
	for _, i := range needed {
		r, err := b.runStage(ctx, i)
		if err != nil {
			return nil, err
		}
		final = r
	}
	b.warnUnusedArgs()
	st := final.state
	if len(o.Labels) > 0 {
		st = st.Clone()
		if st.Config.Config.Labels == nil {
			st.Config.Config.Labels = map[string]string{}
		}
		for k, v := range o.Labels {
			st.Config.Config.Labels[k] = v
		}
	}
	im, err := bd.b.Images().CreateFromState(ctx, st, o.Tags)
	if err != nil {
		return nil, err
	}
	return &Result{Image: im}, nil
}

func readDockerfile(dir, name string) ([]byte, error) {
	if filepath.IsAbs(name) || !filepath.IsLocal(filepath.Clean(name)) {
		return nil, errdefs.Invalid("the Dockerfile (%s) must be within the build context", name)
	}
	p, err := securejoin.SecureJoin(dir, name)
	if err != nil {
		return nil, errdefs.InvalidWrap(err, "the Dockerfile (%s)", name)
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errdefs.Invalid("Cannot locate specified Dockerfile: %s", name)
		}
		return nil, err
	}
	if fi.IsDir() {
		return nil, errdefs.Invalid("Cannot locate specified Dockerfile: %s (it is a directory)", name)
	}
	if fi.Size() > 16<<20 {
		return nil, errdefs.Invalid("the Dockerfile %s is larger than 16 MiB", name)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read the Dockerfile: %w", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, errdefs.Invalid("the Dockerfile (%s) cannot be empty", name)
	}
	return b, nil
}

// stageResult is a finished stage.
type stageResult struct {
	state *image.BuildState
	key   digest.Digest
}

// build is one run of Build.
type build struct {
	bd       *Builder
	o        Options
	out      io.Writer
	file     string
	lex      *shell.Lex
	stages   []instructions.Stage
	results  map[int]*stageResult
	meta     []kv // global ARGs (name, value) after --build-arg
	usedArgs map[string]bool
	ignore   *buildctx.Matcher
	step     int
	total    int
}

type kv struct {
	k string
	v *string
}

// neededStages are the stages target depends on (through FROM and COPY --from), in
// Dockerfile order, target last.
func (b *build) neededStages(target int) ([]int, error) {
	need := map[int]bool{}
	var visit func(i int) error
	visit = func(i int) error {
		if need[i] {
			return nil
		}
		need[i] = true
		s := b.stages[i]
		base, err := b.expandMeta(s.BaseName)
		if err != nil {
			return b.errAt(s.Location, "FROM", err)
		}
		if j, ok := b.stageRef(base, i); ok {
			if err := visit(j); err != nil {
				return err
			}
		}
		for _, c := range s.Commands {
			cp, ok := c.(*instructions.CopyCommand)
			if !ok || cp.From == "" {
				continue
			}
			from, err := b.expandMeta(cp.From)
			if err != nil {
				return b.errAt(cp.Location(), "COPY", err)
			}
			if j, ok := b.stageRef(from, i); ok {
				if err := visit(j); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := visit(target); err != nil {
		return nil, err
	}
	var out []int
	for i := range b.stages {
		if need[i] {
			out = append(out, i)
		}
	}
	return out, nil
}

// stageRef resolves a name to an earlier stage (by name, case-insensitively, or by index).
func (b *build) stageRef(name string, before int) (int, bool) {
	for j := 0; j < before; j++ {
		if b.stages[j].Name != "" && strings.EqualFold(b.stages[j].Name, name) {
			return j, true
		}
	}
	var n int
	if _, err := fmt.Sscanf(name, "%d", &n); err == nil && fmt.Sprint(n) == name && n >= 0 && n < before {
		return n, true
	}
	return 0, false
}

// errAt wraps err with the Dockerfile line of loc.
func (b *build) errAt(loc []parser.Range, instr string, err error) error {
	line := 0
	if len(loc) > 0 {
		line = loc[0].Start.Line
	}
	var be *Error
	if errors.As(err, &be) {
		return err
	}
	return &Error{File: b.file, Line: line, Instruction: instr, Err: err}
}

// stepf prints a step's header.
func (b *build) stepf(format string, a ...any) {
	b.step++
	fmt.Fprintf(b.out, "Step %d/%d : %s\n", b.step, b.total, fmt.Sprintf(format, a...))
}

func shortKey(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

// chainKey is the cache key of a step after parent.
func chainKey(parent digest.Digest, parts ...string) digest.Digest {
	h := sha256.New()
	io.WriteString(h, parent.String())
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%d:%s", len(p), p)
	}
	return digest.NewDigest(digest.SHA256, h)
}

// history is a step's history entry.
func history(createdBy string, empty bool) ocispec.History {
	now := time.Now().UTC()
	return ocispec.History{Created: &now, CreatedBy: createdBy, EmptyLayer: empty, Comment: image.BuildHistoryComment}
}
