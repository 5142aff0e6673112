package build

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// proxyArgs are Docker's predefined build args: usable in RUN without an ARG, left out of
// the image's history and the cache key unless the Dockerfile declares them.
var proxyArgs = []string{
	"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
	"NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
}

// platformArgs are the automatic platform args of the global scope.
func platformArgs() []kv {
	p := "linux/" + runtime.GOARCH
	var out []kv
	for _, pre := range []string{"BUILD", "TARGET"} {
		for _, a := range [][2]string{{"PLATFORM", p}, {"OS", "linux"}, {"ARCH", runtime.GOARCH}, {"VARIANT", ""}} {
			v := a[1]
			out = append(out, kv{pre + a[0], &v})
		}
	}
	return out
}

func lookup(list []kv, k string) (kv, bool) {
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].k == k {
			return list[i], true
		}
	}
	return kv{}, false
}

// buildArg is the --build-arg value for k, if one was given with a value.
func (b *build) buildArg(k string) (string, bool) {
	v, ok := b.o.BuildArgs[k]
	if !ok {
		return "", false
	}
	b.usedArgs[k] = true
	if v == nil {
		return "", false
	}
	return *v, true
}

// globalArgs evaluates the ARGs before the first FROM.
func (b *build) globalArgs(meta []instructions.ArgCommand) error {
	scope := platformArgs()
	for _, a := range meta {
		for _, arg := range a.Args {
			env := envOf(scope, nil)
			k, _, err := b.lex.ProcessWord(arg.Key, env)
			if err != nil {
				return b.errAt(a.Location(), "ARG", err)
			}
			var val *string
			if arg.Value != nil {
				v, _, err := b.lex.ProcessWord(*arg.Value, env)
				if err != nil {
					return b.errAt(a.Location(), "ARG", err)
				}
				val = &v
			}
			if v, ok := b.buildArg(k); ok {
				val = &v
			}
			scope = append(scope, kv{k, val})
			b.meta = append(b.meta, kv{k, val})
		}
	}
	return nil
}

// expandMeta expands a FROM line's word with the global args.
func (b *build) expandMeta(word string) (string, error) {
	v, _, err := b.lex.ProcessWord(word, envOf(append(platformArgs(), b.meta...), nil))
	return v, err
}

// envOf is the expansion environment: args, overridden by env ("K=V" strings).
func envOf(args []kv, env []string) shell.EnvGetter {
	var list []string
	for _, a := range args {
		if a.v != nil {
			list = append(list, a.k+"="+*a.v)
		}
	}
	return shell.EnvsFromSlice(append(list, env...))
}

// argEnv is what a RUN sees of the args: those declared in the stage (and set), and the
// predefined proxy args given with --build-arg, except where ENV sets the same name.
// The second result is the part that goes into the cache key and history ("K=V" of the
// declared args, in declaration order).
func (b *build) argEnv(args []kv, env []string) (all, keyed []string) {
	has := func(k string) bool {
		return slices.ContainsFunc(env, func(e string) bool { return strings.SplitN(e, "=", 2)[0] == k })
	}
	seen := map[string]bool{}
	for i := len(args) - 1; i >= 0; i-- {
		a := args[i]
		if seen[a.k] || a.v == nil || has(a.k) {
			seen[a.k] = true
			continue
		}
		seen[a.k] = true
		keyed = append(keyed, a.k+"="+*a.v)
	}
	slices.Reverse(keyed)
	all = append(all, keyed...)
	for _, p := range proxyArgs {
		if seen[p] || has(p) {
			continue
		}
		if v, ok := b.buildArg(p); ok {
			all = append(all, p+"="+v)
		}
	}
	return all, keyed
}

// declareArg is an ARG inside a stage: --build-arg, else its default, else the global
// value of the same name.
func (b *build) declareArg(k string, def *string) kv {
	if v, ok := b.buildArg(k); ok {
		return kv{k, &v}
	}
	if def != nil {
		return kv{k, def}
	}
	if g, ok := lookup(b.meta, k); ok {
		return g
	}
	if g, ok := lookup(platformArgs(), k); ok {
		return g
	}
	return kv{k, nil}
}

func (b *build) warnUnusedArgs() {
	var unused []string
	for k := range b.o.BuildArgs {
		if !b.usedArgs[k] && !slices.Contains(proxyArgs, k) {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		fmt.Fprintf(b.out, "[Warning] One or more build-args [%s] were not consumed\n", strings.Join(unused, " "))
	}
}
