package cli

import (
	"strings"
	"testing"

	"berth/internal/registry/server"
)

func TestTokenFlags(t *testing.T) {
	full := server.TokenConfig{Realm: "https://auth.example/token", Service: "reg", Issuer: "auth", RootCertBundle: "/etc/reg/ca.pem"}
	if on, err := tokenFlags(server.TokenConfig{}, true); on || err != nil {
		t.Errorf("no token flags: %v %v", on, err)
	}
	if on, err := tokenFlags(full, false); !on || err != nil {
		t.Errorf("all four: %v %v", on, err)
	}
	if _, err := tokenFlags(full, true); err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Errorf("with --htpasswd: %v", err)
	}
	partial := full
	partial.Issuer, partial.RootCertBundle = "", ""
	if _, err := tokenFlags(partial, false); err == nil || !strings.Contains(err.Error(), "--token-issuer, --token-rootcert missing") {
		t.Errorf("partial: %v", err)
	}
}
