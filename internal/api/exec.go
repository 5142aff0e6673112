package api

import (
	"net/http"

	"github.com/moby/moby/api/types/container"

	"berth/internal/errdefs"
)

func (s *Server) execRoutes() {
	s.handle("POST", "/containers/{id}/exec", s.execCreate)
	s.handle("POST", "/exec/{id}/start", s.execStart)
	s.handle("POST", "/exec/{id}/resize", s.execResize)
	s.handle("GET", "/exec/{id}/json", s.execInspect)
}

func (s *Server) execCreate(w http.ResponseWriter, r *request) error {
	var req container.ExecCreateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	id, err := s.d.ExecCreate(r.Context(), r.vars["id"], req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, container.ExecCreateResponse{ID: id})
}

func (s *Server) execStart(w http.ResponseWriter, r *request) error {
	var req container.ExecStartRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	e, err := s.d.ExecInspect(r.vars["id"])
	if err != nil {
		return err
	}
	if e.Running || e.ExitCode != nil {
		return errdefs.Conflict("Error: Exec command %s is already running or has run", r.vars["id"])
	}
	if req.Detach {
		if err := s.d.ExecStart(r.Context(), r.vars["id"], nil, req.Tty); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, struct{}{})
	}
	ct := "application/vnd.docker.multiplexed-stream"
	if e.ProcessConfig.Tty || compareVersions(r.version, "1.42") < 0 {
		ct = "application/vnd.docker.raw-stream"
	}
	conn, err := hijack(w, r, ct)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := s.d.ExecStart(r.Context(), r.vars["id"], conn, req.Tty); err != nil {
		msg := []byte(err.Error() + "\r\n")
		if !e.ProcessConfig.Tty {
			// A multiplexed stream carries it as a stdout frame, as dockerd sends it.
			n := len(msg)
			msg = append([]byte{1, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, msg...)
		}
		conn.Write(msg)
	}
	return errHijacked
}

func (s *Server) execResize(w http.ResponseWriter, r *request) error {
	h, err := intValue(r, "h", 0)
	if err != nil {
		return err
	}
	wd, err := intValue(r, "w", 0)
	if err != nil {
		return err
	}
	if err := s.d.ExecResize(r.vars["id"], uint(h), uint(wd)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) execInspect(w http.ResponseWriter, r *request) error {
	e, err := s.d.ExecInspect(r.vars["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}
