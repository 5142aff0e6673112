package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"berth/internal/errdefs"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// The manifest media types the registry stores. Docker's schema 1 is refused.
const (
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerForeign  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

func isImageManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mtDockerManifest
}
func isIndex(mt string) bool { return mt == ocispec.MediaTypeImageIndex || mt == mtDockerList }

// nondistributable layers are not pushed to registries: a manifest may name
// them without the registry holding them.
func nondistributable(mt string) bool {
	return strings.HasPrefix(mt, "application/vnd.oci.image.layer.nondistributable.") || mt == mtDockerForeign
}

// manifestDoc is what the registry reads of any manifest it accepts.
type manifestDoc struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
}

func manifestInvalid(format string, a ...any) error {
	return apiErr(http.StatusBadRequest, CodeManifestInvalid, nil, format, a...)
}

func manifestUnknown(name, ref string) error {
	return apiErr(http.StatusNotFound, CodeManifestUnknown, map[string]string{"name": name, "reference": ref}, "manifest %s unknown to repository %s", ref, name)
}

func nameUnknown(name string) error {
	return apiErr(http.StatusNotFound, CodeNameUnknown, map[string]string{"name": name}, "repository %s is not known to the registry", name)
}

// isDigestRef tells a digest reference from a tag (tags cannot hold ':').
func isDigestRef(ref string) bool { return strings.Contains(ref, ":") }

func checkTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return apiErr(http.StatusBadRequest, codeTagInvalid, map[string]string{"tag": tag}, "invalid tag %q", tag)
	}
	return nil
}

// parseManifest checks a manifest's form and returns what the registry
// records of it and the blobs and manifests it needs (children must be
// stored in the repository before it).
func parseManifest(body []byte, contentType string) (rec manifestRecord, blobs, manifests []digest.Digest, err error) {
	var doc manifestDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return rec, nil, nil, manifestInvalid("manifest is not valid JSON: %v", err)
	}
	if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
		return rec, nil, nil, manifestInvalid("unsupported manifest schemaVersion (only 2 is)")
	}
	mt := contentType
	if mt != "" {
		if parsed, _, err := mime.ParseMediaType(mt); err == nil {
			mt = parsed
		}
	}
	if mt == "" || mt == "application/octet-stream" || mt == "application/json" {
		mt = doc.MediaType
	}
	if mt == "" { // OCI manifests may leave mediaType out: tell them by shape
		switch {
		case doc.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		case doc.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		}
	}
	if doc.MediaType != "" && doc.MediaType != mt {
		return rec, nil, nil, manifestInvalid("manifest mediaType %q does not match Content-Type %q", doc.MediaType, mt)
	}
	checkDesc := func(what string, d ocispec.Descriptor) error {
		if err := d.Digest.Validate(); err != nil {
			return manifestInvalid("%s: invalid digest %q: %v", what, d.Digest, err)
		}
		if d.Size < 0 {
			return manifestInvalid("%s: negative size", what)
		}
		if d.Data != nil {
			if int64(len(d.Data)) != d.Size || d.Digest.Algorithm().FromBytes(d.Data) != d.Digest {
				return manifestInvalid("%s: data does not match digest %s and size %d", what, d.Digest, d.Size)
			}
		}
		return nil
	}
	switch {
	case isImageManifest(mt):
		if doc.Config == nil {
			return rec, nil, nil, manifestInvalid("image manifest without config")
		}
		if err := checkDesc("config", *doc.Config); err != nil {
			return rec, nil, nil, err
		}
		blobs = append(blobs, doc.Config.Digest)
		for i, l := range doc.Layers {
			if err := checkDesc(fmt.Sprintf("layer %d", i), l); err != nil {
				return rec, nil, nil, err
			}
			if !nondistributable(l.MediaType) {
				blobs = append(blobs, l.Digest)
			}
		}
		rec.ArtifactType = doc.ArtifactType
		if rec.ArtifactType == "" {
			rec.ArtifactType = doc.Config.MediaType
		}
	case isIndex(mt):
		for i, m := range doc.Manifests {
			if err := checkDesc(fmt.Sprintf("manifest %d", i), m); err != nil {
				return rec, nil, nil, err
			}
			manifests = append(manifests, m.Digest)
		}
		rec.ArtifactType = doc.ArtifactType
	default:
		return rec, nil, nil, apiErr(http.StatusBadRequest, CodeManifestInvalid, map[string]string{"mediaType": mt},
			"unsupported manifest media type %q", mt)
	}
	if doc.Subject != nil {
		if err := checkDesc("subject", *doc.Subject); err != nil {
			return rec, nil, nil, err
		}
		rec.Subject = doc.Subject.Digest
	}
	rec.MediaType = mt
	rec.Size = int64(len(body))
	rec.Annotations = doc.Annotations
	rec.Refs = append(append([]digest.Digest{}, blobs...), manifests...)
	return rec, blobs, manifests, nil
}

func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, name, ref string) error {
	alg := digest.Canonical
	var want digest.Digest
	if isDigestRef(ref) {
		d, err := parseDigest(ref)
		if err != nil {
			return err
		}
		want, alg = d, d.Algorithm()
	} else if err := checkTag(ref); err != nil {
		return err
	}
	tags := r.URL.Query()["tag"]
	for _, t := range tags {
		if err := checkTag(t); err != nil {
			return err
		}
	}
	max := s.opts.MaxManifestSize
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return apiErr(http.StatusBadRequest, CodeManifestInvalid, nil, "reading the manifest: %v", err)
	}
	if int64(len(body)) > max {
		return apiErr(http.StatusRequestEntityTooLarge, CodeSizeInvalid, nil, "manifest is larger than %d bytes", max)
	}
	d := alg.FromBytes(body)
	if want != "" && d != want {
		return apiErr(http.StatusBadRequest, CodeDigestInvalid, map[string]string{"digest": want.String()},
			"manifest has digest %s, not %s", d, want)
	}
	rec, blobs, manifests, err := parseManifest(body, r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	if !isDigestRef(ref) {
		tags = append(tags, ref)
	}

	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	if !s.content.Exists(d) {
		if _, err := s.content.Ingest(r.Context(), bytes.NewReader(body), d, int64(len(body))); err != nil {
			return err
		}
		if err := s.syncAlgDir(d); err != nil {
			return err
		}
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		rb := repoSub(tx, name, bktBlobs)
		mb := repoSub(tx, name, bktManifests)
		for _, b := range blobs {
			if rb == nil || rb.Get([]byte(b.String())) == nil {
				return apiErr(http.StatusBadRequest, CodeManifestBlobUnknown, map[string]string{"digest": b.String()},
					"manifest names blob %s, unknown to repository %s", b, name)
			}
		}
		for _, m := range manifests {
			if mb == nil || mb.Get([]byte(m.String())) == nil {
				return apiErr(http.StatusBadRequest, CodeManifestBlobUnknown, map[string]string{"digest": m.String()},
					"index names manifest %s, unknown to repository %s", m, name)
			}
		}
		repoB, err := repoCreate(tx, name)
		if err != nil {
			return err
		}
		if err := putJSON(repoB.Bucket(bktManifests), d.String(), rec); err != nil {
			return err
		}
		for _, t := range tags {
			if err := repoB.Bucket(bktTags).Put([]byte(t), []byte(d.String())); err != nil {
				return err
			}
		}
		if rec.Subject != "" {
			sb, err := repoB.Bucket(bktReferrers).CreateBucketIfNotExists([]byte(rec.Subject.String()))
			if err != nil {
				return err
			}
			return sb.Put([]byte(d.String()), nil)
		}
		return nil
	})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", "/v2/"+name+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if rec.Subject != "" {
		h.Set("OCI-Subject", rec.Subject.String())
	}
	for _, t := range r.URL.Query()["tag"] {
		h.Add("OCI-Tag", t)
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// resolve finds the manifest ref (a tag or a digest) names in repository name.
func resolve(tx *bolt.Tx, name, ref string) (digest.Digest, manifestRecord, error) {
	var rec manifestRecord
	r := repo(tx, name)
	if r == nil {
		return "", rec, nameUnknown(name)
	}
	var d digest.Digest
	if isDigestRef(ref) {
		var err error
		if d, err = parseDigest(ref); err != nil {
			return "", rec, err
		}
	} else {
		if err := checkTag(ref); err != nil {
			return "", rec, err
		}
		v := r.Bucket(bktTags).Get([]byte(ref))
		if v == nil {
			return "", rec, manifestUnknown(name, ref)
		}
		d = digest.Digest(v)
	}
	if !getJSON(r.Bucket(bktManifests), d.String(), &rec) {
		return "", rec, manifestUnknown(name, ref)
	}
	return d, rec, nil
}

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, name, ref string) error {
	var d digest.Digest
	var rec manifestRecord
	if err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		d, rec, err = resolve(tx, name, ref)
		return err
	}); err != nil {
		return err
	}
	body, err := s.content.ReadAll(d, s.opts.MaxManifestSize)
	if errors.Is(err, errdefs.ErrNotFound) {
		return manifestUnknown(name, ref)
	} else if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", rec.MediaType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("ETag", `"`+d.String()+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
	return nil
}

// deleteManifest deletes a tag (the manifest stays), or a manifest by
// digest with every tag that names it and its entry in the referrers.
func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request, name, ref string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		rb := repo(tx, name)
		if rb == nil {
			return nameUnknown(name)
		}
		if !isDigestRef(ref) {
			if err := checkTag(ref); err != nil {
				return err
			}
			tb := rb.Bucket(bktTags)
			if tb.Get([]byte(ref)) == nil {
				return manifestUnknown(name, ref)
			}
			if err := tb.Delete([]byte(ref)); err != nil {
				return err
			}
			return repoPrune(tx, name)
		}
		d, rec, err := resolve(tx, name, ref)
		if err != nil {
			return err
		}
		if err := rb.Bucket(bktManifests).Delete([]byte(d.String())); err != nil {
			return err
		}
		tb := rb.Bucket(bktTags)
		var drop [][]byte
		tb.ForEach(func(k, v []byte) error {
			if string(v) == d.String() {
				drop = append(drop, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range drop {
			if err := tb.Delete(k); err != nil {
				return err
			}
		}
		if rec.Subject != "" {
			if sb := rb.Bucket(bktReferrers).Bucket([]byte(rec.Subject.String())); sb != nil {
				if err := sb.Delete([]byte(d.String())); err != nil {
					return err
				}
				if k, _ := sb.Cursor().First(); k == nil {
					if err := rb.Bucket(bktReferrers).DeleteBucket([]byte(rec.Subject.String())); err != nil {
						return err
					}
				}
			}
		}
		return repoPrune(tx, name)
	})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// page reads the n= and last= parameters of a listing (n < 0: no limit).
func page(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	n = -1
	if v := q.Get("n"); v != "" {
		n, err = strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, "", apiErr(http.StatusBadRequest, CodeUnsupported, map[string]string{"n": v}, "invalid page size n=%q", v)
		}
	}
	return n, q.Get("last"), nil
}

// list walks the keys of b after last, at most n of them (all when n < 0),
// and reports whether more follow.
func list(c *bolt.Cursor, n int, last string) (keys []string, more bool) {
	keys = []string{}
	var k []byte
	if last != "" {
		k, _ = c.Seek([]byte(last))
		if k != nil && string(k) == last {
			k, _ = c.Next()
		}
	} else {
		k, _ = c.First()
	}
	for ; k != nil; k, _ = c.Next() {
		if n >= 0 && len(keys) == n {
			return keys, true
		}
		keys = append(keys, string(k))
	}
	return keys, false
}

func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}

// setNext sets the Link header of a listing that has more entries.
func setNext(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
}

func (s *Server) getTags(w http.ResponseWriter, r *http.Request, name string) error {
	n, last, err := page(r)
	if err != nil {
		return err
	}
	var tags []string
	var more bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		tb := repoSub(tx, name, bktTags)
		if tb == nil {
			return nameUnknown(name)
		}
		tags, more = list(tb.Cursor(), n, last)
		return nil
	}); err != nil {
		return err
	}
	if more && len(tags) > 0 {
		setNext(w, "/v2/"+name+"/tags/list", n, tags[len(tags)-1])
	}
	return writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, tags})
}

// getCatalog is GET /v2/_catalog (not in the spec, but what docker's
// registry and its tools offer).
func (s *Server) getCatalog(w http.ResponseWriter, r *http.Request) error {
	n, last, err := page(r)
	if err != nil {
		return err
	}
	var repos []string
	var more bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		repos, more = list(tx.Bucket(bktRepos).Cursor(), n, last)
		return nil
	}); err != nil {
		return err
	}
	if more && len(repos) > 0 {
		setNext(w, "/v2/_catalog", n, repos[len(repos)-1])
	}
	return writeJSON(w, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// getReferrers is GET /v2/<name>/referrers/<digest>[?artifactType=]: an
// index of the manifests whose subject is digest. An unknown subject has
// no referrers (200, empty), as the spec says.
func (s *Server) getReferrers(w http.ResponseWriter, r *http.Request, name, ref string) error {
	subject, err := parseDigest(ref)
	if err != nil {
		return err
	}
	filter := r.URL.Query().Get("artifactType")
	descs := []ocispec.Descriptor{}
	if err := s.db.View(func(tx *bolt.Tx) error {
		rb := repo(tx, name)
		if rb == nil {
			return nil
		}
		sb := rb.Bucket(bktReferrers).Bucket([]byte(subject.String()))
		if sb == nil {
			return nil
		}
		return sb.ForEach(func(k, _ []byte) error {
			var rec manifestRecord
			if !getJSON(rb.Bucket(bktManifests), string(k), &rec) {
				return nil
			}
			if filter != "" && rec.ArtifactType != filter {
				return nil
			}
			descs = append(descs, ocispec.Descriptor{
				MediaType: rec.MediaType, Digest: digest.Digest(k), Size: rec.Size,
				ArtifactType: rec.ArtifactType, Annotations: rec.Annotations,
			})
			return nil
		})
	}); err != nil {
		return err
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	return writeJSON(w, ocispec.MediaTypeImageIndex, idx)
}
