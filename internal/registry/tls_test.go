package registry_test

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/internal/image"
	"berth/internal/registry"
)

// TestTLS: a registry that is not on loopback is reached over HTTPS, its certificate
// verified with the CAs of <CertsDir>/<host>/*.crt; an insecure-registries entry turns
// verification off; plain HTTP is never tried for a registry that is not insecure.
func TestTLS(t *testing.T) {
	reg := newFakeRegistry(t)
	im := reg.pushTestImage(t, "app", "v1")
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(reg.serve))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	// httptest's certificate names example.com: the client dials that name to the
	// local servers, the TLS one on 443 and the plain one on 80.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		switch addr {
		case "example.com:443":
			addr = tlsSrv.Listener.Addr().String()
		case "example.com:80":
			addr = reg.host()
		default:
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.ErrNotExist}
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	ref, _ := image.ParseRef("example.com/app:v1")
	manifest := func(o registry.Options) error {
		o.DialContext, o.RetryDelay = dial, time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		desc, _, err := registry.New(o).Repository(ref, nil).Manifest(ctx, "v1")
		if err == nil && desc.Digest != im.index.Digest {
			t.Errorf("manifest %s, want %s", desc.Digest, im.index.Digest)
		}
		return err
	}
	if err := manifest(registry.Options{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unknown CA: %v", err)
	}
	certs := t.TempDir()
	os.MkdirAll(filepath.Join(certs, "example.com"), 0o755)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(certs, "example.com", "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := manifest(registry.Options{CertsDir: certs}); err != nil {
		t.Errorf("CA from certs.d: %v", err)
	}
	if err := manifest(registry.Options{Insecure: []string{"example.com"}}); err != nil {
		t.Errorf("insecure registry over HTTPS: %v", err)
	}
	// Only the plain server: HTTP is used for an insecure registry only.
	tlsSrv.Close()
	if err := manifest(registry.Options{}); err == nil {
		t.Error("a registry that is not insecure was reached over HTTP")
	}
	if err := manifest(registry.Options{Insecure: []string{"example.com"}}); err != nil {
		t.Errorf("insecure registry over HTTP: %v", err)
	}
}
