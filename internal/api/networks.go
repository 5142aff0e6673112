package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/moby/moby/api/types/network"

	"berth/internal/daemon"
	"berth/internal/errdefs"
)

// berthd has, until its own networks (bridge, user networks) land, the two predefined
// networks that need no plumbing: "host" (the host's namespace) and "none" (a namespace with
// only loopback). They are listed, inspected and pruned (nothing to prune) like dockerd's.
var predefinedNetworks = []struct{ name, driver string }{{"host", "host"}, {"none", "null"}}

func networkID(name string) string {
	h := sha256.Sum256([]byte("berth-network:" + name))
	return hex.EncodeToString(h[:])
}

func (s *Server) networkRoutes() {
	s.handle("GET", "/networks", s.listNetworks)
	s.handle("GET", "/networks/{id}", s.inspectNetwork)
	s.handle("POST", "/networks/create", s.createNetwork)
	s.handle("POST", "/networks/prune", s.pruneNetworks)
	s.handle("POST", "/build/prune", s.pruneBuildCache)
}

func (s *Server) networkInspect(name, driver string, withContainers bool) network.Inspect {
	n := network.Inspect{Network: network.Network{
		Name:    name,
		ID:      networkID(name),
		Created: s.d.Started(),
		Scope:   "local",
		Driver:  driver,
		IPAM:    network.IPAM{Driver: "default", Config: []network.IPAMConfig{}},
		Options: map[string]string{},
		Labels:  map[string]string{},
	}, Containers: map[string]network.EndpointResource{}}
	n.EnableIPv4 = true
	if withContainers {
		for _, c := range s.d.RunningIn(name) {
			n.Containers[c.ID] = network.EndpointResource{Name: strings.TrimPrefix(c.Name, "/")}
		}
	}
	return n
}

func (s *Server) listNetworks(w http.ResponseWriter, r *request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	out := []network.Inspect{}
	for _, p := range predefinedNetworks {
		id := networkID(p.name)
		if !filterNetwork(f, p.name, id, p.driver) {
			continue
		}
		out = append(out, s.networkInspect(p.name, p.driver, false))
	}
	return writeJSON(w, http.StatusOK, out)
}

func filterNetwork(f daemon.Filters, name, id, driver string) bool {
	match := func(key string, ok func(string) bool) bool {
		vals := f[key]
		if len(vals) == 0 {
			return true
		}
		for _, v := range vals {
			if ok(v) {
				return true
			}
		}
		return false
	}
	// Predefined networks have no labels and are never dangling.
	return match("name", func(v string) bool { return strings.Contains(name, v) }) &&
		match("id", func(v string) bool { return strings.HasPrefix(id, v) }) &&
		match("driver", func(v string) bool { return v == driver }) &&
		match("type", func(v string) bool { return v == "builtin" }) &&
		match("scope", func(v string) bool { return v == "local" }) &&
		match("dangling", func(v string) bool { return v == "false" || v == "0" }) &&
		len(f["label"]) == 0
}

func (s *Server) inspectNetwork(w http.ResponseWriter, r *request) error {
	ref := r.vars["id"]
	for _, p := range predefinedNetworks {
		if ref == p.name || (len(ref) >= 3 && strings.HasPrefix(networkID(p.name), ref)) {
			return writeJSON(w, http.StatusOK, s.networkInspect(p.name, p.driver, true))
		}
	}
	return errdefs.NotFound("network %s not found", ref)
}

func (s *Server) createNetwork(w http.ResponseWriter, r *request) error {
	var req struct{ Name, Driver string }
	if err := decode(r, &req); err != nil {
		return err
	}
	for _, p := range predefinedNetworks {
		if req.Name == p.name {
			return errdefs.Forbidden("%s is a pre-defined network and cannot be created", req.Name)
		}
	}
	return errdefs.Invalid("network %s: berthd has no user-defined networks yet (only host and none; bridge networks come with berth's networking)", req.Name)
}

func (s *Server) pruneNetworks(w http.ResponseWriter, r *request) error {
	if _, err := filters(r); err != nil {
		return err
	}
	// The predefined networks are never pruned, and there are no others.
	return writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: []string{}})
}

func (s *Server) pruneBuildCache(w http.ResponseWriter, r *request) error {
	// berthd keeps no build cache (yet): nothing to reclaim.
	return writeJSON(w, http.StatusOK, map[string]any{"CachesDeleted": []string{}, "SpaceReclaimed": 0})
}
