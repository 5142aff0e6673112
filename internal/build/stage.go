package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/internal/daemon"
	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/oci"
)

// stage is a stage being built: its current state and cache key, its ARGs.
type stage struct {
	b      *build
	idx    int
	name   string // what docker ps shows as the RUN containers' image
	st     *image.BuildState
	key    digest.Digest
	args   []kv
	cmdSet bool
}

func (b *build) runStage(ctx context.Context, i int) (*stageResult, error) {
	s := b.stages[i]
	b.stepf("%s", s.SourceCode)
	fail := func(err error) (*stageResult, error) { return nil, b.errAt(s.Location, "FROM", err) }
	base, err := b.expandMeta(s.BaseName)
	if err != nil {
		return fail(err)
	}
	if base == "" {
		return fail(errdefs.Invalid("base name (%s) should not be blank", s.BaseName))
	}
	if s.Platform != "" {
		p, err := b.expandMeta(s.Platform)
		if err != nil {
			return fail(err)
		}
		if p != "linux/"+runtime.GOARCH && p != "linux" {
			return fail(errdefs.Invalid("platform %q is not supported: berth builds for linux/%s", p, runtime.GOARCH))
		}
	}
	sc := &stage{b: b, idx: i, name: base}
	switch j, isStage := b.stageRef(base, i); {
	case isStage:
		r := b.results[j]
		sc.st, sc.key = r.state.Clone(), r.key
	case strings.EqualFold(base, "scratch"):
		sc.st = &image.BuildState{Config: ocispec.Image{
			Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
			RootFS:   ocispec.RootFS{Type: "layers"},
		}}
		sc.key = chainKey("", "scratch")
	default:
		im, err := b.baseImage(ctx, base)
		if err != nil {
			return fail(err)
		}
		sc.st = image.StateOf(im)
		sc.key = chainKey("", "image", im.ID.String())
	}
	fmt.Fprintf(b.out, " ---> %s\n", b.displayID(sc))
	if triggers := sc.st.Ext.OnBuild; len(triggers) > 0 {
		sc.st.Ext.OnBuild = nil
		sc.key = chainKey(sc.key, "onbuild")
		word := "trigger"
		if len(triggers) > 1 {
			word += "s"
		}
		fmt.Fprintf(b.out, "# Executing %d build %s\n", len(triggers), word)
		for _, t := range triggers {
			if err := sc.trigger(ctx, t); err != nil {
				return fail(fmt.Errorf("ONBUILD %s: %w", t, err))
			}
		}
	}
	for _, c := range s.Commands {
		b.stepf("%s", source(c))
		if err := sc.dispatch(ctx, c); err != nil {
			return nil, b.errAt(c.Location(), strings.ToUpper(c.Name()), err)
		}
	}
	r := &stageResult{state: sc.st, key: sc.key}
	b.results[i] = r
	return r, nil
}

// source is a command's Dockerfile text.
func source(c instructions.Command) string {
	if s, ok := c.(fmt.Stringer); ok {
		return s.String()
	}
	return strings.ToUpper(c.Name())
}

// displayID is what the progress shows as a step's result.
func (b *build) displayID(sc *stage) string {
	if sc.st.Base != "" && sc.key == chainKey("", "image", sc.st.Base.String()) {
		return shortKey(sc.st.Base)
	}
	return shortKey(sc.key)
}

// baseImage resolves a FROM image, pulling it when it is not here (or always, with
// --pull).
func (b *build) baseImage(ctx context.Context, name string) (*image.Image, error) {
	if _, err := image.ParseRef(name); err != nil {
		return nil, errdefs.InvalidWrap(err, "invalid reference format %q", name)
	}
	im, err := b.bd.b.Images().Resolve(name)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	if b.o.Pull {
		pulled, perr := b.bd.b.Pull(ctx, name, b.out)
		if perr == nil {
			return pulled, nil
		}
		if im != nil && len(im.RepoDigests) == 0 {
			// An image made here (imported, loaded, built) has no registry to get a newer
			// version from.
			fmt.Fprintf(b.out, "[Warning] --pull: %s was made locally and cannot be pulled (%v); using the local image\n", name, perr)
			return im, nil
		}
		return nil, perr
	}
	if im != nil {
		return im, nil
	}
	return b.bd.b.Pull(ctx, name, b.out)
}

// trigger runs one ONBUILD trigger of the base image.
func (sc *stage) trigger(ctx context.Context, expr string) error {
	res, err := parser.Parse(strings.NewReader(expr))
	if err != nil {
		return errdefs.InvalidWrap(err, "parse")
	}
	for _, n := range res.AST.Children {
		switch strings.ToUpper(n.Value) {
		case "ONBUILD", "FROM", "MAINTAINER":
			return errdefs.Invalid("%s isn't allowed as an ONBUILD trigger", strings.ToUpper(n.Value))
		}
		c, err := instructions.ParseCommand(n)
		if err != nil {
			return errdefs.InvalidWrap(err, "parse")
		}
		if err := sc.dispatch(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// expander expands words with the stage's args and env.
func (sc *stage) expander() instructions.SingleWordExpander {
	env := envOf(sc.args, sc.st.Config.Config.Env)
	return func(w string) (string, error) {
		v, _, err := sc.b.lex.ProcessWord(w, env)
		return v, err
	}
}

func (sc *stage) shell() []string {
	if len(sc.st.Ext.Shell) > 0 {
		return append([]string(nil), sc.st.Ext.Shell...)
	}
	return []string{"/bin/sh", "-c"}
}

// command is a CMD, ENTRYPOINT or RUN's argv: exec form as is, shell form through SHELL.
func (sc *stage) command(c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return append([]string(nil), c.CmdLine...)
	}
	line := strings.Join(c.CmdLine, " ")
	if len(c.Files) > 0 {
		line = heredocScript(line, c.Files)
	}
	return append(sc.shell(), line)
}

// heredocScript is a shell-form RUN with here-documents as one script: a RUN that is only
// a here-document runs its content; otherwise the shell reads the here-documents itself.
func heredocScript(line string, files []instructions.ShellInlineFile) string {
	if len(files) == 1 {
		t := strings.TrimSpace(line)
		t = strings.TrimPrefix(t, "<<")
		t = strings.TrimPrefix(t, "-")
		t = strings.Trim(t, `"'`)
		if t == files[0].Name {
			return files[0].Data
		}
	}
	var sb strings.Builder
	sb.WriteString(line)
	for _, f := range files {
		sb.WriteString("\n")
		sb.WriteString(f.Data)
		if !strings.HasSuffix(f.Data, "\n") && f.Data != "" {
			sb.WriteString("\n")
		}
		sb.WriteString(f.Name)
	}
	return sb.String()
}

func (sc *stage) dispatch(ctx context.Context, c instructions.Command) error {
	if e, ok := c.(instructions.SupportsSingleWordExpansion); ok {
		if _, isRun := c.(*instructions.RunCommand); !isRun {
			if err := e.Expand(sc.expander()); err != nil {
				return errdefs.InvalidWrap(err, "expand")
			}
		}
	}
	if e, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		if err := e.ExpandRaw(sc.expander()); err != nil {
			return errdefs.InvalidWrap(err, "expand")
		}
	}
	cfg := func(st *image.BuildState) *ocispec.ImageConfig { return &st.Config.Config }
	switch c := c.(type) {
	case *instructions.EnvCommand:
		return sc.meta(ctx, "ENV", c.Env, func(st *image.BuildState) error {
			for _, e := range c.Env {
				setEnv(cfg(st), e.Key, e.Value)
			}
			return nil
		})
	case *instructions.LabelCommand:
		return sc.meta(ctx, "LABEL", c.Labels, func(st *image.BuildState) error {
			if cfg(st).Labels == nil {
				cfg(st).Labels = map[string]string{}
			}
			for _, l := range c.Labels {
				cfg(st).Labels[l.Key] = l.Value
			}
			return nil
		})
	case *instructions.MaintainerCommand:
		return sc.meta(ctx, "MAINTAINER", c.Maintainer, func(st *image.BuildState) error {
			st.Config.Author = c.Maintainer
			return nil
		})
	case *instructions.CmdCommand:
		cmd := sc.command(c.ShellDependantCmdLine)
		sc.cmdSet = true
		return sc.meta(ctx, "CMD", cmd, func(st *image.BuildState) error {
			cfg(st).Cmd = cmd
			return nil
		})
	case *instructions.EntrypointCommand:
		ep := sc.command(c.ShellDependantCmdLine)
		if c.PrependShell && len(c.CmdLine) == 0 {
			ep = nil
		}
		resetCmd := !sc.cmdSet
		return sc.meta(ctx, "ENTRYPOINT", []any{ep, resetCmd}, func(st *image.BuildState) error {
			cfg(st).Entrypoint = ep
			if resetCmd {
				cfg(st).Cmd = nil
			}
			return nil
		})
	case *instructions.ShellCommand:
		return sc.meta(ctx, "SHELL", c.Shell, func(st *image.BuildState) error {
			st.Ext.Shell = append([]string(nil), c.Shell...)
			return nil
		})
	case *instructions.ExposeCommand:
		var ports []string
		for _, p := range c.Ports {
			w, err := sc.expander()(p)
			if err != nil {
				return errdefs.InvalidWrap(err, "expand")
			}
			ps, err := exposedPorts(w)
			if err != nil {
				return err
			}
			ports = append(ports, ps...)
		}
		return sc.meta(ctx, "EXPOSE", ports, func(st *image.BuildState) error {
			if cfg(st).ExposedPorts == nil {
				cfg(st).ExposedPorts = map[string]struct{}{}
			}
			for _, p := range ports {
				cfg(st).ExposedPorts[p] = struct{}{}
			}
			return nil
		})
	case *instructions.UserCommand:
		return sc.meta(ctx, "USER", c.User, func(st *image.BuildState) error {
			cfg(st).User = c.User
			return nil
		})
	case *instructions.WorkdirCommand:
		wd := c.Path
		if !path.IsAbs(wd) {
			wd = path.Join("/", cfg(sc.st).WorkingDir, wd)
		}
		wd = path.Clean(wd)
		return sc.meta(ctx, "WORKDIR", wd, func(st *image.BuildState) error {
			cfg(st).WorkingDir = wd
			return nil
		})
	case *instructions.VolumeCommand:
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return errdefs.Invalid("VOLUME specified can not be an empty string")
			}
		}
		return sc.meta(ctx, "VOLUME", c.Volumes, func(st *image.BuildState) error {
			if cfg(st).Volumes == nil {
				cfg(st).Volumes = map[string]struct{}{}
			}
			for _, v := range c.Volumes {
				cfg(st).Volumes[v] = struct{}{}
			}
			return nil
		})
	case *instructions.StopSignalCommand:
		if err := checkSignal(c.Signal); err != nil {
			return err
		}
		return sc.meta(ctx, "STOPSIGNAL", c.Signal, func(st *image.BuildState) error {
			cfg(st).StopSignal = c.Signal
			return nil
		})
	case *instructions.HealthCheckCommand:
		h := *c.Health
		// Options a HEALTHCHECK leaves out keep the inherited check's values (dockerd merges
		// a step's config with its parent's).
		if old := sc.st.Ext.Healthcheck; old != nil && !(len(h.Test) > 0 && h.Test[0] == "NONE") {
			if h.Interval == 0 {
				h.Interval = old.Interval
			}
			if h.Timeout == 0 {
				h.Timeout = old.Timeout
			}
			if h.StartPeriod == 0 {
				h.StartPeriod = old.StartPeriod
			}
			if h.StartInterval == 0 {
				h.StartInterval = old.StartInterval
			}
			if h.Retries == 0 {
				h.Retries = old.Retries
			}
		}
		return sc.meta(ctx, "HEALTHCHECK", h, func(st *image.BuildState) error {
			st.Ext.Healthcheck = &h
			return nil
		})
	case *instructions.OnbuildCommand:
		expr := strings.TrimSpace(c.Expression)
		switch f := strings.ToUpper(strings.Fields(expr + " x")[0]); f {
		case "ONBUILD":
			return errdefs.Invalid("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
		case "FROM", "MAINTAINER":
			return errdefs.Invalid("%s isn't allowed as an ONBUILD trigger", f)
		}
		return sc.meta(ctx, "ONBUILD", expr, func(st *image.BuildState) error {
			st.Ext.OnBuild = append(st.Ext.OnBuild, expr)
			return nil
		})
	case *instructions.ArgCommand:
		var desc []string
		for _, a := range c.Args {
			k, err := sc.expander()(a.Key)
			if err != nil {
				return errdefs.InvalidWrap(err, "expand")
			}
			var def *string
			if a.Value != nil {
				v, err := sc.expander()(*a.Value)
				if err != nil {
					return errdefs.InvalidWrap(err, "expand")
				}
				def = &v
			}
			arg := sc.b.declareArg(k, def)
			sc.args = append(sc.args, arg)
			if arg.v != nil {
				desc = append(desc, k+"="+*arg.v)
			} else {
				desc = append(desc, k)
			}
		}
		return sc.meta(ctx, "ARG", desc, func(*image.BuildState) error { return nil })
	case *instructions.RunCommand:
		return sc.run(ctx, c)
	case *instructions.CopyCommand:
		return sc.copy(ctx, copyRequest{
			add: false, sources: c.SourcePaths, inline: c.SourceContents, dest: c.DestPath,
			from: c.From, chown: c.Chown, chmod: c.Chmod, excludes: c.ExcludePatterns, parents: c.Parents,
			text: source(c),
		})
	case *instructions.AddCommand:
		if c.KeepGitDir != nil {
			return errdefs.Invalid("ADD --keep-git-dir: berth's builder does not fetch git repositories")
		}
		unpack := true
		if c.Unpack != nil {
			unpack = *c.Unpack
		}
		return sc.copy(ctx, copyRequest{
			add: true, sources: c.SourcePaths, inline: c.SourceContents, dest: c.DestPath,
			chown: c.Chown, chmod: c.Chmod, excludes: c.ExcludePatterns, checksum: c.Checksum,
			unpack: unpack, text: source(c),
		})
	default:
		return errdefs.Invalid("%s is not supported by berth's builder", strings.ToUpper(c.Name()))
	}
}

// meta is a step that changes only the config: taken from the cache when it has it (so
// that an unchanged build makes the same image, history times included), else applied.
func (sc *stage) meta(ctx context.Context, instr string, what any, apply func(st *image.BuildState) error) error {
	j, err := json.Marshal(what)
	if err != nil {
		return err
	}
	key := chainKey(sc.key, instr, string(j))
	if sc.cached(key) {
		return nil
	}
	next := sc.st.Clone()
	if err := apply(next); err != nil {
		return err
	}
	next.Config.History = append(next.Config.History, history("/bin/sh -c #(nop) "+instr+" "+string(j), true))
	if err := sc.b.bd.b.Images().PutStep(ctx, key, next); err != nil {
		return err
	}
	sc.st, sc.key = next, key
	fmt.Fprintf(sc.b.out, " ---> %s\n", shortKey(key))
	return nil
}

// cached takes the step's state from the cache, unless --no-cache.
func (sc *stage) cached(key digest.Digest) bool {
	if sc.b.o.NoCache {
		return false
	}
	st, ok, err := sc.b.bd.b.Images().CachedStep(key)
	if err != nil || !ok {
		return false
	}
	sc.st, sc.key = st, key
	fmt.Fprintf(sc.b.out, " ---> Using cache\n ---> %s\n", shortKey(key))
	return true
}

func setEnv(c *ocispec.ImageConfig, k, v string) {
	for i, e := range c.Env {
		if strings.SplitN(e, "=", 2)[0] == k {
			c.Env[i] = k + "=" + v
			return
		}
	}
	c.Env = append(c.Env, k+"="+v)
}

// exposedPorts parses an EXPOSE word: "80", "80/udp", "8000-8002/tcp".
func exposedPorts(w string) ([]string, error) {
	port, proto, _ := strings.Cut(w, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, errdefs.Invalid("invalid proto: %s", proto)
	}
	lo, hi, isRange := strings.Cut(port, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || a == 0 {
		return nil, errdefs.Invalid("invalid containerPort: %s", port)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
			return nil, errdefs.Invalid("invalid containerPort: %s", port)
		}
	}
	var out []string
	for p := a; p <= b; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}

func checkSignal(s string) error {
	if _, err := oci.ParseSignal(s); err != nil {
		return errdefs.Invalid("Invalid signal: %s", s)
	}
	return nil
}

// run is a RUN: the command in a container over the current state, then its changes as a
// layer.
func (sc *stage) run(ctx context.Context, c *instructions.RunCommand) error {
	if err := c.Expand(sc.expander()); err != nil {
		return errdefs.InvalidWrap(err, "expand")
	}
	network := ""
	for _, f := range c.FlagsUsed {
		switch f {
		case "network":
			network = string(instructions.GetNetwork(c))
		case "mount", "security", "device":
			return errdefs.Invalid("RUN --%s needs BuildKit's cache and secret mounts, which berth's builder does not have", f)
		}
	}
	cmd := sc.command(c.ShellDependantCmdLine)
	if len(cmd) == 0 {
		return errdefs.Invalid("RUN needs a command")
	}
	argEnv, keyed := sc.b.argEnv(sc.args, sc.st.Config.Config.Env)
	cj, _ := json.Marshal(cmd)
	kj, _ := json.Marshal(keyed)
	key := chainKey(sc.key, "RUN", string(cj), string(kj), network)
	if sc.cached(key) {
		return nil
	}
	runState := sc.st.Clone()
	rc := &runState.Config.Config
	var dirs []string
	for v := range rc.Volumes {
		dirs = append(dirs, v)
	}
	sort.Strings(dirs)
	rc.Entrypoint, rc.Cmd, rc.Volumes, rc.ExposedPorts = nil, nil, nil, nil
	runState.Ext.Healthcheck, runState.Ext.OnBuild = nil, nil
	cfg := &container.Config{
		Image:      sc.name,
		Cmd:        cmd,
		Entrypoint: []string{},
		Env:        append(append([]string(nil), rc.Env...), argEnv...),
		User:       rc.User,
		WorkingDir: rc.WorkingDir,
		Labels:     map[string]string{daemon.BuildLabel: "step"},
	}
	hc := sc.b.o.HostConfig
	switch network {
	case "":
	case "none", "host":
		hc.NetworkMode = container.NetworkMode(network)
	case "default":
		hc.NetworkMode = ""
	default:
		return errdefs.Invalid("RUN --network=%s: berth's builder takes default, none or host", network)
	}
	var id string
	remove := func() {
		if id == "" {
			return
		}
		cid := id
		id = ""
		if err := sc.b.bd.b.RemoveBuildContainer(cid); err != nil {
			fmt.Fprintf(sc.b.out, "[Warning] remove intermediate container %s: %v\n", daemon.ShortID(cid), err)
			return
		}
		fmt.Fprintf(sc.b.out, "Removing intermediate container %s\n", daemon.ShortID(cid))
	}
	defer remove()
	id, code, err := sc.b.bd.b.RunBuildStep(ctx, daemon.BuildStep{
		State: runState, Config: cfg, HostConfig: &hc, Output: sc.b.out, Dirs: dirs,
		Started: func(cid string) { fmt.Fprintf(sc.b.out, " ---> Running in %s\n", daemon.ShortID(cid)) },
	})
	if err != nil {
		return err
	}
	if code != 0 {
		return &ExitError{Command: cmd, Code: code}
	}
	createdBy := strings.Join(cmd, " ")
	if len(keyed) > 0 {
		createdBy = fmt.Sprintf("|%d %s %s", len(keyed), strings.Join(keyed, " "), createdBy)
	}
	next, err := sc.b.bd.b.Images().CommitStep(ctx, key, id, sc.st, history(createdBy, false))
	if err != nil {
		return err
	}
	remove()
	sc.st, sc.key = next, key
	fmt.Fprintf(sc.b.out, " ---> %s\n", shortKey(key))
	return nil
}
