package image

import (
	"encoding/json"

	"berth/internal/errdefs"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's media types (image-spec's are in ocispec).
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignGzip  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1JWS   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	// OCI's non-distributable layers (deprecated in image-spec 1.1, still pulled).
	mediaTypeOCINonDistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar"
)

// docKind classifies a JSON document by its mediaType field, or by its
// shape when the field is absent (OCI allows that).
type docKind int

const (
	kindUnknown docKind = iota
	kindManifest
	kindIndex
)

func classify(b []byte, descType string) (docKind, error) {
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Config        json.RawMessage   `json:"config"`
		Layers        json.RawMessage   `json:"layers"`
		Manifests     json.RawMessage   `json:"manifests"`
		FSLayers      []json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return kindUnknown, errdefs.Corrupt("not a JSON document: %v", err)
	}
	mt := probe.MediaType
	if mt == "" {
		mt = descType
	}
	switch mt {
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
		return kindManifest, nil
	case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList:
		return kindIndex, nil
	case mediaTypeDockerSchema1, mediaTypeDockerSchema1JWS:
		return kindUnknown, errdefs.Invalid("Docker image manifest schema 1 is not supported (deprecated since 2017): convert the image with a newer tool")
	}
	switch {
	case probe.FSLayers != nil || probe.SchemaVersion == 1:
		return kindUnknown, errdefs.Invalid("Docker image manifest schema 1 is not supported (deprecated since 2017): convert the image with a newer tool")
	case probe.Manifests != nil:
		return kindIndex, nil
	case probe.Config != nil:
		return kindManifest, nil
	}
	return kindUnknown, errdefs.Invalid("unknown document type %q", mt)
}

// choosePlatform picks this machine's manifest from an index (Docker's
// rule: the best match for the running platform).
func choosePlatform(idx ocispec.Index) (ocispec.Descriptor, error) {
	m := platforms.Default()
	var best *ocispec.Descriptor
	for i := range idx.Manifests {
		d := idx.Manifests[i]
		if d.Platform == nil {
			// Attestations and unlabelled entries: only as a last resort.
			if best == nil && d.Annotations["vnd.docker.reference.type"] == "" {
				best = &idx.Manifests[i]
			}
			continue
		}
		if !m.Match(*d.Platform) {
			continue
		}
		if best == nil || best.Platform == nil || m.Less(*d.Platform, *best.Platform) {
			best = &idx.Manifests[i]
		}
	}
	if best == nil {
		return ocispec.Descriptor{}, errdefs.NotFound("no image in the index matches platform %s", platforms.DefaultString())
	}
	return *best, nil
}

// layerMediaType names a layer blob by its compression, in the manifest's
// family (OCI or Docker).
func layerMediaType(docker bool, compression string) string {
	switch {
	case docker && compression == "gzip":
		return MediaTypeDockerLayerGzip
	case docker:
		return MediaTypeDockerLayer
	case compression == "gzip":
		return ocispec.MediaTypeImageLayerGzip
	case compression == "zstd":
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

// checkMediaTypes refuses a manifest whose config or layers are not an
// image's (an artifact: a Helm chart, a signature, a WASM module): berth
// could neither run nor unpack it. The message is dockerd's. A missing
// media type is allowed, as older tools wrote none.
func checkMediaTypes(m ocispec.Manifest) error {
	switch m.Config.MediaType {
	case "", ocispec.MediaTypeImageConfig, MediaTypeDockerConfig:
	default:
		return errdefs.Invalid("unsupported media type %s", m.Config.MediaType)
	}
	for _, l := range m.Layers {
		switch l.MediaType {
		case "", ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
			mediaTypeOCINonDistributable, mediaTypeOCINonDistributable + "+gzip", mediaTypeOCINonDistributable + "+zstd",
			MediaTypeDockerLayer, MediaTypeDockerLayerGzip, MediaTypeDockerForeignGzip:
		default:
			return errdefs.Invalid("unsupported media type %s", l.MediaType)
		}
	}
	return nil
}
