package api

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"

	"berth/internal/daemon"
	"berth/internal/errdefs"
)

func (s *Server) networkRoutes() {
	s.handle("GET", "/networks", s.listNetworks)
	s.handle("GET", "/networks/{id}", s.inspectNetwork)
	s.handle("DELETE", "/networks/{id}", s.removeNetwork)
	s.handle("POST", "/networks/create", s.createNetwork)
	s.handle("POST", "/networks/{id}/connect", s.connectNetwork)
	s.handle("POST", "/networks/{id}/disconnect", s.disconnectNetwork)
	s.handle("POST", "/networks/prune", s.pruneNetworks)
}

// networkView is a network as the API shows it; with its endpoints when withContainers.
func (s *Server) networkView(nw *daemon.Network, withContainers bool) network.Inspect {
	out := network.Inspect{Network: network.Network{
		Name:       nw.Name,
		ID:         nw.ID,
		Created:    nw.Created,
		Scope:      "local",
		Driver:     nw.Driver,
		EnableIPv4: true,
		IPAM:       network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{}},
		Internal:   nw.Internal,
		Attachable: nw.Attachable,
		Options:    map[string]string{},
		Labels:     map[string]string{},
	}, Containers: map[string]network.EndpointResource{}}
	for k, v := range nw.Labels {
		out.Labels[k] = v
	}
	for k, v := range nw.Options {
		out.Options[k] = v
	}
	if nw.Driver == "bridge" {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{Subnet: nw.Subnet, IPRange: nw.IPRange, Gateway: nw.Gateway})
		out.Options["com.docker.network.bridge.name"] = nw.Bridge
		if nw.MTU > 0 {
			out.Options["com.docker.network.driver.mtu"] = itoa(nw.MTU)
		}
		if nw.Default {
			out.Options["com.docker.network.bridge.default_bridge"] = "true"
			out.Options["com.docker.network.bridge.enable_ip_masquerade"] = "true"
		}
	}
	if withContainers {
		for _, e := range s.d.NetworkEndpoints(nw.ID) {
			r := network.EndpointResource{Name: e.Name, EndpointID: e.Endpoint.EndpointID, IPv4Address: e.Endpoint.Address}
			if mac, err := parseMAC(e.Endpoint.Mac); err == nil {
				r.MacAddress = mac
			}
			out.Containers[e.ContainerID] = r
		}
	}
	return out
}

func (s *Server) listNetworks(w http.ResponseWriter, r *request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	for k := range f {
		switch k {
		case "name", "id", "driver", "type", "scope", "label", "dangling":
		default:
			return errdefs.Invalid("invalid filter '%s'", k)
		}
	}
	out := []network.Inspect{}
	for _, nw := range s.d.Networks() {
		v := s.networkView(nw, false)
		if !filterNetwork(f, nw, len(s.d.NetworkEndpoints(nw.ID)) == 0) {
			continue
		}
		out = append(out, v)
	}
	return writeJSON(w, http.StatusOK, out)
}

func filterNetwork(f daemon.Filters, nw *daemon.Network, unused bool) bool {
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
	typ := "custom"
	if nw.Predefined() {
		typ = "builtin"
	}
	for _, l := range f["label"] {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := nw.Labels[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return match("name", func(v string) bool { return strings.Contains(nw.Name, v) }) &&
		match("id", func(v string) bool { return strings.HasPrefix(nw.ID, v) }) &&
		match("driver", func(v string) bool { return v == nw.Driver }) &&
		match("type", func(v string) bool { return v == typ }) &&
		match("scope", func(v string) bool { return v == "local" }) &&
		match("dangling", func(v string) bool {
			dangling := unused && !nw.Predefined()
			return (v == "true" || v == "1") == dangling
		})
}

func (s *Server) inspectNetwork(w http.ResponseWriter, r *request) error {
	nw, err := s.d.NetworkByRef(r.vars["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.networkView(nw, true))
}

func (s *Server) createNetwork(w http.ResponseWriter, r *request) error {
	var req network.CreateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	dr := daemon.NetworkCreateRequest{
		Name: req.Name, Driver: req.Driver, Internal: req.Internal, Attachable: req.Attachable,
		EnableIPv6: req.EnableIPv6 != nil && *req.EnableIPv6, Labels: req.Labels, Options: req.Options,
	}
	if req.EnableIPv4 != nil && !*req.EnableIPv4 {
		return errdefs.Invalid("IPv4 cannot be disabled: berth's networks are IPv4 networks")
	}
	if req.IPAM != nil {
		if req.IPAM.Driver != "" && req.IPAM.Driver != "default" {
			return errdefs.Invalid("IPAM driver %q is not supported: berth has the default one", req.IPAM.Driver)
		}
		if len(req.IPAM.Config) > 1 {
			dr.MoreIPAM = true
		}
		if len(req.IPAM.Config) > 0 {
			c := req.IPAM.Config[0]
			if c.Subnet.IsValid() {
				dr.Subnet = c.Subnet.String()
			}
			if c.IPRange.IsValid() {
				dr.IPRange = c.IPRange.String()
			}
			if c.Gateway.IsValid() {
				dr.Gateway = c.Gateway.String()
			}
		}
	}
	nw, err := s.d.CreateNetwork(r.Context(), dr)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, network.CreateResponse{ID: nw.ID, Warning: ""})
}

func (s *Server) removeNetwork(w http.ResponseWriter, r *request) error {
	if err := s.d.RemoveNetwork(r.Context(), r.vars["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) connectNetwork(w http.ResponseWriter, r *request) error {
	var req network.ConnectRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Container == "" {
		return errdefs.Invalid("no container given")
	}
	if err := s.d.Connect(r.Context(), r.vars["id"], req.Container, req.EndpointConfig); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) disconnectNetwork(w http.ResponseWriter, r *request) error {
	var req network.DisconnectRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Container == "" {
		return errdefs.Invalid("no container given")
	}
	if err := s.d.Disconnect(r.Context(), r.vars["id"], req.Container, req.Force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) pruneNetworks(w http.ResponseWriter, r *request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	deleted, err := s.d.PruneNetworks(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: deleted})
}

// legacyNetworkFields are the top-level NetworkSettings fields of API versions before 1.52,
// from the default bridge's endpoint, as dockerd filled them.
func legacyNetworkFields(es *network.EndpointSettings) map[string]any {
	out := map[string]any{
		"Bridge": "", "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
		"SecondaryIPAddresses": nil, "SecondaryIPv6Addresses": nil,
		"EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
		"IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
	}
	if es == nil {
		return out
	}
	out["EndpointID"] = es.EndpointID
	if es.Gateway.IsValid() {
		out["Gateway"] = es.Gateway.String()
	}
	if es.IPAddress.IsValid() {
		out["IPAddress"] = es.IPAddress.String()
		out["IPPrefixLen"] = es.IPPrefixLen
	}
	if len(es.MacAddress) > 0 {
		out["MacAddress"] = es.MacAddress.String()
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func parseMAC(s string) (network.HardwareAddr, error) {
	m, err := net.ParseMAC(s)
	return network.HardwareAddr(m), err
}
