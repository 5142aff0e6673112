package image

import (
	"errors"
	"slices"
	"testing"

	"berth/internal/errdefs"

	"github.com/opencontainers/go-digest"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                              "docker.io/library/busybox:latest",
		"docker.io/library/busybox:latest":     "docker.io/library/busybox:latest",
		"busybox:1.36":                         "docker.io/library/busybox:1.36",
		"localhost:5000/a/b@sha256:" + hex64:   "localhost:5000/a/b@sha256:" + hex64,
		"localhost:5000/a/b:t@sha256:" + hex64: "localhost:5000/a/b@sha256:" + hex64,
		"quay.io/x/y":                          "quay.io/x/y:latest",
	} {
		got, err := ParseRef(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseRef(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "Busybox", "a b", "x:y:z", "busybox@sha256:short"} {
		if _, err := ParseRef(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseRef(%q): %v, want invalid", bad, err)
		}
	}
	if got := Familiar("docker.io/library/busybox:latest"); got != "busybox:latest" {
		t.Errorf("Familiar: %s", got)
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestApplyChanges(t *testing.T) {
	var c ocispec.ImageConfig
	err := ApplyChanges(&c, []string{
		`CMD echo "hi there"`, `ENTRYPOINT ["/bin/tini", "--"]`, "ENV A=1 B=\"two words\"", "ENV C $A-x",
		"WORKDIR /srv", "WORKDIR app", "EXPOSE 80 53/udp", "USER 1000:1000", "LABEL a=b c=\"d e\"", "VOLUME /data", "STOPSIGNAL SIGINT",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Cmd, []string{"/bin/sh", "-c", `echo "hi there"`}) || !slices.Equal(c.Entrypoint, []string{"/bin/tini", "--"}) {
		t.Errorf("cmd %q entrypoint %q", c.Cmd, c.Entrypoint)
	}
	if !slices.Equal(c.Env, []string{"A=1", "B=two words", "C=1-x"}) {
		t.Errorf("env %q", c.Env)
	}
	if c.WorkingDir != "/srv/app" || c.User != "1000:1000" || c.StopSignal != "SIGINT" || c.Labels["c"] != "d e" {
		t.Errorf("config %+v", c)
	}
	if _, ok := c.ExposedPorts["53/udp"]; !ok {
		t.Errorf("ports %v", c.ExposedPorts)
	}
	if _, ok := c.ExposedPorts["80/tcp"]; !ok {
		t.Errorf("ports %v", c.ExposedPorts)
	}
	for _, bad := range []string{"RUN echo", "FROM x", "ENV", "LABEL", "WORKDIR"} {
		if err := ApplyChanges(&c, []string{bad}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("change %q: %v, want invalid", bad, err)
		}
	}
}

func TestClassifyAndPlatform(t *testing.T) {
	for doc, want := range map[string]docKind{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}`:                   kindManifest,
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`: kindIndex,
		`{"schemaVersion":2,"manifests":[]}`: kindIndex,
		`{"schemaVersion":2,"config":{}}`:    kindManifest,
	} {
		if got, err := classify([]byte(doc), ""); err != nil || got != want {
			t.Errorf("classify %s = %v, %v", doc, got, err)
		}
	}
	if _, err := classify([]byte(`{"schemaVersion":1,"fsLayers":[]}`), ""); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("schema 1: %v", err)
	}
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{
		{Digest: digest.Digest("sha256:" + hex64[:63] + "1"), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}},
		{Digest: digest.Digest("sha256:" + hex64[:63] + "2"), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{Digest: digest.Digest("sha256:" + hex64[:63] + "3"), Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}, Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"}},
	}}
	d, err := choosePlatform(idx)
	if err != nil || d.Platform.Architecture != "amd64" {
		t.Errorf("choosePlatform: %+v %v", d, err)
	}
	if _, err := choosePlatform(ocispec.Index{Manifests: idx.Manifests[:1]}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no match: %v", err)
	}
}
