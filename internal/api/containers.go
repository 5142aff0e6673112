package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/moby/moby/api/types/container"

	"berth/internal/daemon"
	"berth/internal/errdefs"
)

func (s *Server) containerRoutes() {
	s.handle("POST", "/containers/create", s.createContainer)
	s.handle("GET", "/containers/json", s.listContainers)
	s.handle("POST", "/containers/prune", s.pruneContainers)
	s.handle("GET", "/containers/{id}/json", s.inspectContainer)
	s.handle("GET", "/containers/{id}/top", s.topContainer)
	s.handle("GET", "/containers/{id}/logs", s.containerLogs)
	s.handle("GET", "/containers/{id}/changes", s.containerChanges)
	s.handle("GET", "/containers/{id}/export", s.exportContainer)
	s.handle("GET", "/containers/{id}/stats", s.containerStats)
	s.handle("POST", "/containers/{id}/resize", s.resizeContainer)
	s.handle("POST", "/containers/{id}/start", s.startContainer)
	s.handle("POST", "/containers/{id}/stop", s.stopContainer)
	s.handle("POST", "/containers/{id}/restart", s.restartContainer)
	s.handle("POST", "/containers/{id}/kill", s.killContainer)
	s.handle("POST", "/containers/{id}/update", s.updateContainer)
	s.handle("POST", "/containers/{id}/rename", s.renameContainer)
	s.handle("POST", "/containers/{id}/pause", s.pauseContainer)
	s.handle("POST", "/containers/{id}/unpause", s.unpauseContainer)
	s.handle("POST", "/containers/{id}/attach", s.attachContainer)
	s.handle("POST", "/containers/{id}/wait", s.waitContainer)
	s.handle("DELETE", "/containers/{id}", s.removeContainer)
	s.handle("HEAD", "/containers/{id}/archive", s.statArchive)
	s.handle("GET", "/containers/{id}/archive", s.getArchive)
	s.handle("PUT", "/containers/{id}/archive", s.putArchive)
}

func (s *Server) createContainer(w http.ResponseWriter, r *request) error {
	var req container.CreateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	res, err := s.d.Create(r.Context(), daemon.CreateRequest{
		Name:       r.URL.Query().Get("name"),
		Config:     req.Config,
		HostConfig: req.HostConfig,
		Networking: req.NetworkingConfig,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, container.CreateResponse{ID: res.ID, Warnings: res.Warnings})
}

func (s *Server) listContainers(w http.ResponseWriter, r *request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	limit, err := intValue(r, "limit", 0)
	if err != nil {
		return err
	}
	out, err := s.d.ListSummaries(r.Context(), daemon.ListOptions{All: boolValue(r, "all"), Limit: limit, Size: boolValue(r, "size"), Filters: f})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) pruneContainers(w http.ResponseWriter, r *request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	rep, err := s.d.PruneContainers(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *Server) inspectContainer(w http.ResponseWriter, r *request) error {
	c, err := s.d.Inspect(r.Context(), r.vars["id"], boolValue(r, "size"))
	if err != nil {
		return err
	}
	if compareVersions(r.version, "1.52") < 0 && c.NetworkSettings != nil {
		// Clients before 1.52 read the default bridge's address at the top of NetworkSettings.
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		if ns, ok := m["NetworkSettings"].(map[string]any); ok {
			for k, v := range legacyNetworkFields(c.NetworkSettings.Networks["bridge"]) {
				ns[k] = v
			}
		}
		return writeJSON(w, http.StatusOK, m)
	}
	return writeJSON(w, http.StatusOK, c)
}

func (s *Server) topContainer(w http.ResponseWriter, r *request) error {
	top, err := s.d.Top(r.Context(), r.vars["id"], r.URL.Query().Get("ps_args"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, top)
}

func (s *Server) containerLogs(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	opts := daemon.LogsOptions{
		Stdout:     boolValue(r, "stdout"),
		Stderr:     boolValue(r, "stderr"),
		Follow:     boolValue(r, "follow"),
		Timestamps: boolValue(r, "timestamps"),
		Tail:       -1,
	}
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return errdefs.Invalid("invalid value for tail: %q", t)
		}
		opts.Tail = n
	}
	var err error
	now := timeNow()
	if opts.Since, err = daemon.ParseTime(q.Get("since"), now); err != nil {
		return err
	}
	if opts.Until, err = daemon.ParseTime(q.Get("until"), now); err != nil {
		return err
	}
	fw := newFlushWriter(w)
	wrote := false
	err = s.d.Logs(r.Context(), r.vars["id"], opts, fw, func(tty bool) {
		ct := "application/vnd.docker.multiplexed-stream"
		if tty || compareVersions(r.version, "1.42") < 0 {
			ct = "application/vnd.docker.raw-stream"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		fw.Flush()
		wrote = true
	})
	if err != nil && wrote {
		s.log.Warn("logs", "id", r.vars["id"], "err", err)
		return nil
	}
	return err
}

func (s *Server) containerChanges(w http.ResponseWriter, r *request) error {
	ch, err := s.d.Changes(r.Context(), r.vars["id"])
	if err != nil {
		return err
	}
	if ch == nil {
		ch = []container.FilesystemChange{}
	}
	return writeJSON(w, http.StatusOK, ch)
}

func (s *Server) exportContainer(w http.ResponseWriter, r *request) error {
	if _, err := s.d.Get(r.vars["id"]); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := s.d.Export(r.Context(), r.vars["id"], w); err != nil {
		s.log.Warn("export", "id", r.vars["id"], "err", err)
	}
	return nil
}

func (s *Server) containerStats(w http.ResponseWriter, r *request) error {
	stream := true
	if v := r.URL.Query().Get("stream"); v != "" {
		stream = boolValue(r, "stream")
	}
	if boolValue(r, "one-shot") {
		stream = false
	}
	if _, err := s.d.Get(r.vars["id"]); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fw := newFlushWriter(w)
	enc := json.NewEncoder(fw)
	return ignoreAfterHeader(s.d.Stats(r.Context(), r.vars["id"], stream, func(st *container.StatsResponse) error {
		return enc.Encode(st)
	}))
}

// ignoreAfterHeader drops an error that comes after the response started (the client went
// away); nothing can be reported then.
func ignoreAfterHeader(error) error { return nil }

func (s *Server) resizeContainer(w http.ResponseWriter, r *request) error {
	h, err := intValue(r, "h", 0)
	if err != nil {
		return err
	}
	wd, err := intValue(r, "w", 0)
	if err != nil {
		return err
	}
	if err := s.d.Resize(r.Context(), r.vars["id"], uint(h), uint(wd)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) startContainer(w http.ResponseWriter, r *request) error {
	if err := s.d.Start(r.Context(), r.vars["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func stopParams(r *request) (string, *int, error) {
	var timeout *int
	if v := r.URL.Query().Get("t"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return "", nil, errdefs.Invalid("invalid value for t: %q", v)
		}
		timeout = &n
	}
	return r.URL.Query().Get("signal"), timeout, nil
}

func (s *Server) stopContainer(w http.ResponseWriter, r *request) error {
	sig, timeout, err := stopParams(r)
	if err != nil {
		return err
	}
	if err := s.d.Stop(r.Context(), r.vars["id"], sig, timeout); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) restartContainer(w http.ResponseWriter, r *request) error {
	sig, timeout, err := stopParams(r)
	if err != nil {
		return err
	}
	if err := s.d.Restart(r.Context(), r.vars["id"], sig, timeout); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) killContainer(w http.ResponseWriter, r *request) error {
	if err := s.d.Kill(r.Context(), r.vars["id"], r.URL.Query().Get("signal")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) updateContainer(w http.ResponseWriter, r *request) error {
	var u container.UpdateConfig
	if err := decode(r, &u); err != nil {
		return err
	}
	warnings, err := s.d.Update(r.Context(), r.vars["id"], u)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, container.UpdateResponse{Warnings: warnings})
}

func (s *Server) renameContainer(w http.ResponseWriter, r *request) error {
	if err := s.d.Rename(r.Context(), r.vars["id"], r.URL.Query().Get("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) pauseContainer(w http.ResponseWriter, r *request) error {
	if err := s.d.Pause(r.Context(), r.vars["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) unpauseContainer(w http.ResponseWriter, r *request) error {
	if err := s.d.Unpause(r.Context(), r.vars["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) attachContainer(w http.ResponseWriter, r *request) error {
	c, err := s.d.Inspect(r.Context(), r.vars["id"], false)
	if err != nil {
		return err
	}
	opts := daemon.AttachOptions{
		Stdin:      boolValue(r, "stdin"),
		Stdout:     boolValue(r, "stdout"),
		Stderr:     boolValue(r, "stderr"),
		Stream:     boolValue(r, "stream"),
		Logs:       boolValue(r, "logs"),
		DetachKeys: r.URL.Query().Get("detachKeys"),
	}
	if _, err := daemon.ParseDetachKeys(opts.DetachKeys); err != nil {
		return err
	}
	ct := "application/vnd.docker.multiplexed-stream"
	if c.Config.Tty || compareVersions(r.version, "1.42") < 0 {
		ct = "application/vnd.docker.raw-stream"
	}
	conn, err := hijack(w, r, ct)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := s.d.Attach(r.Context(), r.vars["id"], opts, conn); err != nil && !errors.Is(err, io.EOF) {
		s.log.Debug("attach", "id", r.vars["id"], "err", err)
		io.WriteString(conn, "Error attaching: "+err.Error()+"\n")
	}
	return errHijacked
}

func (s *Server) waitContainer(w http.ResponseWriter, r *request) error {
	cond := container.WaitCondition(r.URL.Query().Get("condition"))
	switch cond {
	case "", container.WaitConditionNotRunning, container.WaitConditionNextExit, container.WaitConditionRemoved:
	default:
		return errdefs.Invalid("invalid condition: %q", cond)
	}
	fw := newFlushWriter(w)
	res, err := s.d.Wait(r.Context(), r.vars["id"], cond, func() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fw.Flush()
	})
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		return nil
	}
	resp := container.WaitResponse{StatusCode: int64(res.StatusCode)}
	if res.Error != "" {
		resp.Error = &container.WaitExitError{Message: res.Error}
	}
	return json.NewEncoder(fw).Encode(resp)
}

func (s *Server) removeContainer(w http.ResponseWriter, r *request) error {
	if err := s.d.Remove(r.Context(), r.vars["id"], daemon.RemoveOptions{Force: boolValue(r, "force"), Volumes: boolValue(r, "v")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func pathStatHeader(w http.ResponseWriter, st container.PathStat) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	w.Header().Set("X-Docker-Container-Path-Stat", base64.StdEncoding.EncodeToString(b))
	return nil
}

func (s *Server) statArchive(w http.ResponseWriter, r *request) error {
	st, err := s.d.StatPath(r.Context(), r.vars["id"], r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	if err := pathStatHeader(w, st); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getArchive(w http.ResponseWriter, r *request) error {
	rc, st, err := s.d.ArchivePath(r.Context(), r.vars["id"], r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := pathStatHeader(w, st); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		s.log.Warn("archive", "id", r.vars["id"], "err", err)
	}
	return nil
}

func (s *Server) putArchive(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	if q.Get("path") == "" {
		return errdefs.Invalid("path is required")
	}
	if err := s.d.ExtractToDir(r.Context(), r.vars["id"], q.Get("path"), r.Body, boolValue(r, "noOverwriteDirNonDir"), boolValue(r, "copyUIDGID")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
