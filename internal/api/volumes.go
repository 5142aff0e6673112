package api

import (
	"net/http"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/volume"
)

func (s *Server) volumeRoutes() {
	s.handle("GET", "/volumes", s.listVolumes)
	s.handle("POST", "/volumes/create", s.createVolume)
	s.handle("POST", "/volumes/prune", s.pruneVolumes)
	s.handle("GET", "/volumes/{name}", s.inspectVolume)
	s.handle("DELETE", "/volumes/{name}", s.removeVolume)
}

func (s *Server) listVolumes(w http.ResponseWriter, r *request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	vols, err := s.d.Volumes().List(f)
	if err != nil {
		return err
	}
	warnings := s.d.Volumes().Warnings()
	if warnings == nil {
		warnings = []string{}
	}
	return writeJSON(w, http.StatusOK, volume.ListResponse{Volumes: vols, Warnings: warnings})
}

func (s *Server) createVolume(w http.ResponseWriter, r *request) error {
	var req volume.CreateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	v, err := s.d.Volumes().Create(r.Context(), req)
	if err != nil {
		return err
	}
	s.d.Event(events.VolumeEventType, events.ActionCreate, v.Name, map[string]string{"driver": v.Driver})
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) inspectVolume(w http.ResponseWriter, r *request) error {
	v, err := s.d.Volumes().Get(r.vars["name"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) removeVolume(w http.ResponseWriter, r *request) error {
	if err := s.d.Volumes().Remove(r.Context(), r.vars["name"], boolValue(r, "force")); err != nil {
		return err
	}
	s.d.Event(events.VolumeEventType, events.ActionDestroy, r.vars["name"], nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) pruneVolumes(w http.ResponseWriter, r *request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	rep, err := s.d.Volumes().Prune(r.Context(), f)
	if err != nil {
		return err
	}
	if rep.VolumesDeleted == nil {
		rep.VolumesDeleted = []string{}
	}
	for _, n := range rep.VolumesDeleted {
		s.d.Event(events.VolumeEventType, events.ActionDestroy, n, nil)
	}
	return writeJSON(w, http.StatusOK, rep)
}
