package daemon

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/events"
	registrytypes "github.com/moby/moby/api/types/registry"

	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/registry"
)

// Registry is the daemon's registry client, configured from daemon.json: registries on
// localhost and in insecure-registries may answer over HTTP; others are verified with
// the system's CAs plus <config dir>/certs.d/<host>/*.crt, as dockerd's certs.d. One
// client serves every pull, push and login, so connections and each host's scheme are
// kept between them.
func (d *Daemon) Registry() *registry.Client {
	d.regOnce.Do(func() {
		d.reg = registry.New(registry.Options{
			Insecure:  d.cfg.InsecureRegistries,
			CertsDir:  filepath.Join(filepath.Dir(DefaultConfigFile), "certs.d"),
			UserAgent: "berth",
		})
	})
	return d.reg
}

// AuthLookup finds the credentials for a registry domain ("docker.io",
// "localhost:5000"); nil means anonymous.
type AuthLookup func(domain string) *registrytypes.AuthConfig

// AuthConfigs is an AuthLookup over the map POST /build's X-Registry-Config carries
// (keyed by server address: "localhost:5000", "https://index.docker.io/v1/").
func AuthConfigs(m map[string]registrytypes.AuthConfig) AuthLookup {
	return func(domain string) *registrytypes.AuthConfig {
		want := registry.Host(domain)
		for k, v := range m {
			if registry.LoginHost(k) == want {
				return &v
			}
		}
		return nil
	}
}

// Pull fetches an image from its registry for a build's FROM (a missing image, or
// --pull) with the build's credentials, writing a line per layer step to out.
func (d *Daemon) Pull(ctx context.Context, ref string, auth AuthLookup, out io.Writer) (*image.Image, error) {
	r, err := image.ParseRef(ref)
	if err != nil {
		return nil, errdefs.InvalidWrap(err, "invalid reference format")
	}
	var creds *registrytypes.AuthConfig
	if auth != nil {
		creds = auth(reference.Domain(r))
	}
	fmt.Fprintf(out, "Pulling %s\n", reference.FamiliarString(r))
	var last sync.Map // layer -> last status written
	res, err := d.PullImage(ctx, r, creds, func(p image.PullProgress) {
		if p.Status == "Downloading" || p.Status == "Waiting" {
			return
		}
		if prev, ok := last.Swap(p.ID, p.Status); !ok || prev != p.Status {
			fmt.Fprintf(out, "%s: %s\n", p.ID, p.Status)
		}
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "Digest: %s\n", res.Digest)
	return res.Image, nil
}

// PullImage pulls ref (a tag or a digest reference, normalized) from its registry with
// creds (nil: anonymous), reporting each layer's progress. The image is tried on the
// registry's mirrors first, in order: daemon.json's registry-hosts for its host, then for
// a Docker Hub image registry-mirrors, as dockerd does; then on the registry itself.
func (d *Daemon) PullImage(ctx context.Context, ref reference.Named, creds *registrytypes.AuthConfig, progress func(image.PullProgress)) (*image.Pulled, error) {
	c := d.Registry()
	var sources []*registry.Repository
	for _, m := range d.cfg.RegistryHosts[reference.Domain(ref)] {
		// The registry's credentials go to a mirror only when they name it: a mirror of
		// another host must not see them (as containerd).
		var mcreds *registrytypes.AuthConfig
		if u, _, err := registry.ParseMirror(m); err == nil && creds != nil && creds.ServerAddress != "" &&
			registry.LoginHost(creds.ServerAddress) == registry.Host(u.Host) {
			mcreds = creds
		}
		repo, err := c.Mirror(m, ref, mcreds)
		if err != nil {
			return nil, err
		}
		sources = append(sources, repo)
	}
	if reference.Domain(ref) == registry.DockerHubDomain {
		// dockerd's registry-mirrors get Docker Hub's credentials.
		for _, m := range d.cfg.RegistryMirrors {
			repo, err := c.Mirror(m, ref, creds)
			if err != nil {
				return nil, err
			}
			sources = append(sources, repo)
		}
	}
	sources = append(sources, c.Repository(ref, creds))
	var res *image.Pulled
	var err error
	for i, repo := range sources {
		if res, err = d.images.Pull(ctx, repo, ref, progress); err == nil || ctx.Err() != nil {
			break
		}
		if i < len(sources)-1 {
			d.log.Warn("pull from a registry mirror failed; trying the next source", "mirror", repo.Host, "ref", ref.String(), "err", err)
		}
	}
	if err != nil {
		if registry.IsDenied(err) {
			return nil, errdefs.NotFound("pull access denied for %s, repository does not exist or may require 'docker login': %v", reference.FamiliarName(ref), err)
		}
		return nil, err
	}
	d.Event(events.ImageEventType, events.ActionPull, reference.FamiliarString(ref), map[string]string{"name": reference.FamiliarString(ref)})
	return res, nil
}

// PushImage pushes the image ref names (tagged, or by digest) to its registry with
// creds, reporting each layer's progress.
func (d *Daemon) PushImage(ctx context.Context, ref reference.Named, creds *registrytypes.AuthConfig, progress func(image.PullProgress)) (*image.Pushed, error) {
	if reference.Domain(ref) == registry.DockerHubDomain && creds == nil {
		creds = &registrytypes.AuthConfig{}
	}
	res, err := d.images.Push(ctx, d.Registry().Repository(ref, creds), ref, progress)
	if err != nil {
		return nil, err
	}
	d.Event(events.ImageEventType, events.ActionPush, reference.FamiliarString(ref), map[string]string{"name": reference.FamiliarString(ref)})
	return res, nil
}

// Login checks credentials against a registry (POST /auth); it returns the registry's
// identity token, if it gave one. berthd keeps no credentials: the CLI stores them and
// sends them with each pull and push.
func (d *Daemon) Login(ctx context.Context, creds *registrytypes.AuthConfig) (string, error) {
	return d.Registry().Login(ctx, creds)
}
