package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"berth/internal/archive"
	"berth/internal/build"
	"berth/internal/daemon"
	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/registry"
)

func (s *Server) buildRoutes() {
	s.handle("POST", "/build", s.build)
	s.handle("POST", "/build/prune", s.pruneBuildCache)
}

// build is POST /build, the classic builder: the body is the context (a tar, maybe
// compressed), the answer a stream of JSON messages ({"stream": ...}, {"aux": {"ID":
// ...}}, {"error": ...}) that the docker CLI renders.
func (s *Server) build(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	if v := q.Get("version"); v == "2" {
		return errdefs.Invalid("BuildKit (version=2) is not supported by berthd; use the classic builder (DOCKER_BUILDKIT=0)")
	}
	if boolValue(r, "squash") {
		return errdefs.Invalid("squash is not supported by berthd's builder")
	}
	if remote := q.Get("remote"); remote != "" {
		return errdefs.Invalid("remote build contexts (%s) are not supported by berthd: send the context as the request body", remote)
	}
	o := build.Options{
		Dockerfile: q.Get("dockerfile"),
		Tags:       q["t"],
		Target:     q.Get("target"),
		NoCache:    boolValue(r, "nocache"),
		Pull:       boolValue(r, "pull"),
		Platform:   q.Get("platform"),
	}
	if err := jsonParam(q.Get("buildargs"), &o.BuildArgs); err != nil {
		return errdefs.InvalidWrap(err, "buildargs")
	}
	if err := jsonParam(q.Get("labels"), &o.Labels); err != nil {
		return errdefs.InvalidWrap(err, "labels")
	}
	hc := &o.HostConfig
	hc.NetworkMode = container.NetworkMode(q.Get("networkmode"))
	if hc.NetworkMode == "default" {
		hc.NetworkMode = ""
	}
	hc.ExtraHosts = q["extrahosts"]
	hc.CgroupParent = q.Get("cgroupparent")
	if err := jsonParam(q.Get("ulimits"), &hc.Ulimits); err != nil {
		return errdefs.InvalidWrap(err, "ulimits")
	}
	for _, p := range []struct {
		k string
		v *int64
	}{{"memory", &hc.Memory}, {"memswap", &hc.MemorySwap}, {"cpushares", &hc.CPUShares}, {"cpuquota", &hc.CPUQuota}, {"cpuperiod", &hc.CPUPeriod}, {"shmsize", &hc.ShmSize}} {
		n, err := intValue(r, p.k, 0)
		if err != nil {
			return err
		}
		*p.v = int64(n)
	}
	hc.CpusetCpus, hc.CpusetMems = q.Get("cpusetcpus"), q.Get("cpusetmems")
	for _, t := range o.Tags {
		if _, err := parseNewTag(t); err != nil {
			return err
		}
	}

	auths, err := registry.DecodeAuthConfigs(r.Header.Get("X-Registry-Config"))
	if err != nil {
		return err
	}
	dir, err := s.extractContext(r)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.ContextDir = dir

	p := newProgress(w)
	quiet := boolValue(r, "q")
	var out io.Writer = &streamWriter{p: p}
	if quiet {
		out = io.Discard
	}
	res, err := build.New(buildBackend{s.d, daemon.AuthConfigs(auths)}).Build(r.Context(), o, out)
	if err != nil {
		if !p.started && !isBuildError(err) {
			return err
		}
		msg := err.Error()
		// A failed RUN's exit code is the stream error's code: docker build exits with it.
		code := 0
		var xe *build.ExitError
		if errors.As(err, &xe) {
			code = xe.Code
		}
		p.send(jsonMessage{Error: msg, ErrorDetail: &errorMessage{Message: msg, Code: code}})
		return nil
	}
	id := res.Image.ID.String()
	p.send(map[string]any{"aux": map[string]string{"ID": id}})
	if quiet {
		p.send(jsonMessage{Stream: id + "\n"})
	} else {
		p.send(jsonMessage{Stream: "Successfully built " + strings.TrimPrefix(id, "sha256:")[:12] + "\n"})
		for _, t := range o.Tags {
			p.send(jsonMessage{Stream: "Successfully tagged " + familiarTag(t) + "\n"})
		}
	}
	for _, t := range o.Tags {
		s.d.Event(events.ImageEventType, events.ActionTag, id, map[string]string{"name": familiarTag(t)})
	}
	return nil
}

// isBuildError is an error at a Dockerfile line (sent in the stream, as dockerd does,
// not as an HTTP status).
func isBuildError(err error) bool {
	var be *build.Error
	return errors.As(err, &be)
}

func jsonParam(v string, dst any) error {
	if v == "" {
		return nil
	}
	return json.Unmarshal([]byte(v), dst)
}

func parseNewTag(t string) (string, error) {
	if strings.Contains(t, "@") {
		return "", errdefs.Invalid("invalid reference format: %s: a build cannot tag by digest", t)
	}
	if _, err := image.ParseRef(t); err != nil {
		return "", errdefs.InvalidWrap(err, "invalid reference format: %s", t)
	}
	return t, nil
}

func familiarTag(t string) string {
	if n, err := image.ParseRef(t); err == nil {
		return reference.FamiliarString(n)
	}
	return t
}

// extractContext unpacks the request body (a tar, plain or gzip/zstd-compressed; empty
// for no context) into a directory of its own under the data root.
func (s *Server) extractContext(r *request) (string, error) {
	base := filepath.Join(s.d.Config().DataRoot, "build")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(base, "context-")
	if err != nil {
		return "", err
	}
	body := io.Reader(r.Body)
	if r.Body == nil {
		body = strings.NewReader("")
	}
	cr := &countReader{r: body}
	if _, err := archive.Unpack(r.Context(), cr, dir, archive.UnpackOptions{Whiteouts: archive.WhiteoutApply, AnySymlinkTarget: true}); err != nil {
		if cr.n == 0 {
			return dir, nil // no context at all
		}
		os.RemoveAll(dir)
		var errno syscall.Errno
		if errors.As(err, &errno) || r.Context().Err() != nil {
			return "", err // the host's failure (ENOSPC) or the client's, not bad input
		}
		return "", errdefs.InvalidWrap(err, "read the build context")
	}
	return dir, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// streamWriter sends what the builder writes as {"stream": ...} messages.
type streamWriter struct{ p *progress }

func (sw *streamWriter) Write(b []byte) (int, error) {
	sw.p.send(jsonMessage{Stream: string(b)})
	return len(b), nil
}

func (s *Server) pruneBuildCache(w http.ResponseWriter, r *request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	var keep time.Duration
	for k, v := range f {
		switch k {
		case "until":
			t, err := daemon.ParseTime(v[0], timeNow())
			if err != nil {
				return err
			}
			keep = timeNow().Sub(t)
		default:
			return errdefs.Invalid("invalid filter '%s'", k)
		}
	}
	deleted, res, err := s.d.Images().PruneBuildCache(r.Context(), keep)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"CachesDeleted": deleted, "SpaceReclaimed": res.Bytes})
}

// buildBackend is the daemon as a build sees it: its pulls (FROM, --pull) use the
// credentials the client sent in X-Registry-Config.
type buildBackend struct {
	*daemon.Daemon
	auth daemon.AuthLookup
}

func (b buildBackend) Pull(ctx context.Context, ref string, out io.Writer) (*image.Image, error) {
	return b.Daemon.Pull(ctx, ref, b.auth, out)
}
