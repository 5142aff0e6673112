package image

import (
	"fmt"
	"strings"

	"berth/internal/errdefs"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ApplyChanges applies Dockerfile instructions to an image config, as
// `docker import --change` and `docker commit --change` do: CMD, ENTRYPOINT,
// ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR. Each
// change is one instruction; they are parsed with buildkit's Dockerfile
// parser and applied in order (ENV values see earlier ENV).
func ApplyChanges(cfg *ocispec.ImageConfig, changes []string) error {
	lex := shell.NewLex('\\')
	for _, ch := range changes {
		if strings.TrimSpace(ch) == "" {
			continue
		}
		res, err := parser.Parse(strings.NewReader(ch))
		if err != nil {
			return errdefs.InvalidWrap(err, "change %q", ch)
		}
		for _, n := range res.AST.Children {
			if err := applyNode(cfg, lex, n); err != nil {
				return errdefs.InvalidWrap(err, "change %q", ch)
			}
		}
	}
	return nil
}

func applyNode(cfg *ocispec.ImageConfig, lex *shell.Lex, n *parser.Node) error {
	var args []string
	for a := n.Next; a != nil; a = a.Next {
		args = append(args, a.Value)
	}
	word := func(s string) (string, error) {
		v, _, err := lex.ProcessWord(s, shell.EnvsFromSlice(cfg.Env))
		return v, err
	}
	// Shell-form CMD/ENTRYPOINT run through /bin/sh -c, as in a Dockerfile.
	command := func() []string {
		if n.Attributes["json"] {
			return args
		}
		return []string{"/bin/sh", "-c", strings.Join(args, " ")}
	}
	pairs := func(set func(k, v string)) error {
		if len(args) == 0 || len(args)%3 != 0 {
			return fmt.Errorf("%s needs key=value pairs", strings.ToUpper(n.Value))
		}
		for i := 0; i+2 < len(args); i += 3 {
			k, err := word(args[i])
			if err != nil {
				return err
			}
			v, err := word(args[i+1])
			if err != nil {
				return err
			}
			set(k, v)
		}
		return nil
	}
	switch strings.ToLower(n.Value) {
	case "cmd":
		cfg.Cmd = command()
	case "entrypoint":
		cfg.Entrypoint = command()
		if !n.Attributes["json"] && len(args) == 0 {
			cfg.Entrypoint = nil
		}
	case "env":
		return pairs(func(k, v string) {
			for i, e := range cfg.Env {
				if strings.SplitN(e, "=", 2)[0] == k {
					cfg.Env[i] = k + "=" + v
					return
				}
			}
			cfg.Env = append(cfg.Env, k+"="+v)
		})
	case "label":
		return pairs(func(k, v string) {
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			cfg.Labels[k] = v
		})
	case "expose":
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, a := range args {
			p, err := word(a)
			if err != nil {
				return err
			}
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	case "volume":
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, a := range args {
			cfg.Volumes[a] = struct{}{}
		}
	case "user", "workdir", "stopsignal":
		if len(args) != 1 {
			return fmt.Errorf("%s takes exactly one argument", strings.ToUpper(n.Value))
		}
		v, err := word(args[0])
		if err != nil {
			return err
		}
		switch strings.ToLower(n.Value) {
		case "user":
			cfg.User = v
		case "workdir":
			if !strings.HasPrefix(v, "/") {
				v = strings.TrimSuffix(cfg.WorkingDir, "/") + "/" + v
			}
			cfg.WorkingDir = v
		case "stopsignal":
			cfg.StopSignal = v
		}
	case "onbuild":
		// Kept for builds that use this image as a base (not in ocispec's
		// config; callers that need it read the raw config).
		return fmt.Errorf("ONBUILD is not supported in --change (use a Dockerfile)")
	default:
		return fmt.Errorf("%s is not a valid change instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)", strings.ToUpper(n.Value))
	}
	return nil
}
