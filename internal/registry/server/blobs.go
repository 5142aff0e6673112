package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"berth/internal/errdefs"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// parseDigest parses a digest named in a request (400 DIGEST_INVALID).
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", apiErr(http.StatusBadRequest, CodeDigestInvalid, map[string]string{"digest": s}, "invalid digest %q: %v", s, err)
	}
	return d, nil
}

func blobUnknown(name string, d digest.Digest) error {
	return apiErr(http.StatusNotFound, CodeBlobUnknown, map[string]string{"digest": d.String()}, "blob %s unknown to repository %s", d, name)
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, name, ref string) error {
	d, err := parseDigest(ref)
	if err != nil {
		return err
	}
	var ok bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		_, ok = blobLinked(tx, name, d)
		return nil
	}); err != nil {
		return err
	}
	if !ok {
		return blobUnknown(name, d)
	}
	f, err := s.content.Open(d)
	if errors.Is(err, errdefs.ErrNotFound) {
		return blobUnknown(name, d)
	} else if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(f, 0, f.Size()))
	return nil
}

func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, name, ref string) error {
	d, err := parseDigest(ref)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := repoSub(tx, name, bktBlobs)
		if b == nil || b.Get([]byte(d.String())) == nil {
			return blobUnknown(name, d)
		}
		if err := b.Delete([]byte(d.String())); err != nil {
			return err
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

// blobCreated answers a finished upload or mount.
func blobCreated(w http.ResponseWriter, name string, d digest.Digest) {
	w.Header().Set("Location", "/v2/"+name+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// commitAndLink stores what r holds as blob d (size bytes when >= 0) and
// links it into repository name. The blob is verified before it becomes
// visible; on any failure nothing is kept.
func (s *Server) commitAndLink(ctx context.Context, name string, r io.Reader, d digest.Digest, size int64) error {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	cw, err := s.content.Writer(ctx)
	if err != nil {
		return err
	}
	defer cw.Close()
	if _, err := cw.ReadFrom(r); err != nil {
		return apiErr(http.StatusBadRequest, CodeBlobUploadInvalid, nil, "reading the blob: %v", err)
	}
	if size >= 0 && cw.Size() != size {
		return apiErr(http.StatusBadRequest, CodeSizeInvalid, map[string]int64{"expected": size, "received": cw.Size()},
			"blob has %d bytes, %d were announced", cw.Size(), size)
	}
	info, err := cw.Commit(d, -1)
	if errors.Is(err, errdefs.ErrCorrupt) || errors.Is(err, errdefs.ErrInvalid) {
		return apiErr(http.StatusBadRequest, CodeDigestInvalid, map[string]string{"digest": d.String()}, "uploaded content does not match digest %s", d)
	} else if err != nil {
		return err
	}
	if err := s.syncAlgDir(d); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return linkBlob(tx, name, d, info.Size) })
}

// syncAlgDir makes the rename of a blob durable before it is recorded.
func (s *Server) syncAlgDir(d digest.Digest) error {
	p, err := s.content.Path(d)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// startUpload is POST /v2/<name>/blobs/uploads/: a mount (?mount=&from=), a
// monolithic upload (?digest=, the blob in the body), or a new session.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request, name string) error {
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		if from := q.Get("from"); from != "" || s.mountsAnywhere() {
			if done, err := s.mount(w, name, m, from); done || err != nil {
				return err
			}
		}
		// Not mountable: fall back to a new upload session (202), as the spec says.
	} else if ds := q.Get("digest"); ds != "" {
		d, err := parseDigest(ds)
		if err != nil {
			return err
		}
		if err := s.commitAndLink(r.Context(), name, r.Body, d, r.ContentLength); err != nil {
			return err
		}
		blobCreated(w, name, d)
		return nil
	}
	id := newID()
	f, err := os.OpenFile(filepath.Join(s.uploads, id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	err = s.db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bktUploads), id, uploadRecord{Repo: name, Started: time.Now().UTC()})
	})
	if err != nil {
		os.Remove(filepath.Join(s.uploads, id))
		return err
	}
	uploadHeaders(w, name, id, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// mountsAnywhere tells whether a mount without from= may take the blob from
// any repository (see wholeRegistry).
func (s *Server) mountsAnywhere() bool {
	_, ok := s.opts.Auth.(wholeRegistry)
	return s.opts.Auth == nil || ok
}

// mount links blob m from repository from (any repository when from is
// empty) into name. It reports false when the blob cannot be mounted.
func (s *Server) mount(w http.ResponseWriter, name, m, from string) (bool, error) {
	d, err := digest.Parse(m)
	if err != nil || (from != "" && !nameRE.MatchString(from)) {
		return false, nil
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	var ok bool
	err = s.db.Update(func(tx *bolt.Tx) error {
		var l blobLink
		if from != "" {
			l, ok = blobLinked(tx, from, d)
		} else {
			l, ok = blobLinkedAnywhere(tx, d)
		}
		if !ok || !s.content.Exists(d) {
			ok = false
			return nil
		}
		return linkBlob(tx, name, d, l.Size)
	})
	if err != nil || !ok {
		return false, err
	}
	blobCreated(w, name, d)
	return true, nil
}

func uploadHeaders(w http.ResponseWriter, name, id string, size int64) {
	h := w.Header()
	h.Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
	h.Set("Docker-Upload-UUID", id)
	h.Set("Range", rangeHeader(size))
	h.Set("Content-Length", "0")
}

// rangeHeader is the Range of an upload holding size bytes: "0-<last byte>",
// "0-0" when empty (as distribution answers).
func rangeHeader(size int64) string {
	if size == 0 {
		return "0-0"
	}
	return fmt.Sprintf("0-%d", size-1)
}

// lockUpload serializes the requests on upload id.
func (s *Server) lockUpload(id string) func() {
	s.uploadMu.Lock()
	m, ok := s.busy[id]
	if !ok {
		m = &sync.Mutex{}
		s.busy[id] = m
	}
	s.uploadMu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		s.uploadMu.Lock()
		if m.TryLock() {
			delete(s.busy, id)
			m.Unlock()
		}
		s.uploadMu.Unlock()
	}
}

// upload finds upload id of repository name and its size so far.
func (s *Server) upload(name, id string) (int64, error) {
	unknown := apiErr(http.StatusNotFound, CodeBlobUploadUnknown, map[string]string{"uuid": id}, "upload %s unknown to repository %s", id, name)
	if id == "" || strings.ContainsAny(id, "/.") {
		return 0, unknown
	}
	var rec uploadRecord
	if err := s.db.View(func(tx *bolt.Tx) error {
		if !getJSON(tx.Bucket(bktUploads), id, &rec) {
			rec.Repo = ""
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if rec.Repo != name {
		return 0, unknown
	}
	st, err := os.Stat(filepath.Join(s.uploads, id))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, unknown
	} else if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// removeUpload forgets an upload and removes its bytes.
func (s *Server) removeUpload(id string) error {
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktUploads).Delete([]byte(id)) }); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.uploads, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request, name, id string) error {
	unlock := s.lockUpload(id)
	defer unlock()
	size, err := s.upload(name, id)
	if err != nil {
		return err
	}
	uploadHeaders(w, name, id, size)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkRange checks a chunk's Content-Range against the upload's size: a
// chunk must start where the upload ends (416 otherwise, with the upload's
// Location and Range so the client can resume).
func checkRange(w http.ResponseWriter, r *http.Request, name, id string, size int64) error {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return nil
	}
	bad := &Error{Status: http.StatusRequestedRangeNotSatisfiable, Code: CodeBlobUploadInvalid,
		Detail: map[string]string{"range": cr},
		Header: http.Header{"Location": {"/v2/" + name + "/blobs/uploads/" + id}, "Range": {rangeHeader(size)}, "Docker-Upload-Uuid": {id}}}
	spec := strings.TrimPrefix(strings.TrimPrefix(cr, "bytes "), "bytes=")
	a, b, ok := strings.Cut(spec, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(strings.SplitN(b, "/", 2)[0], 10, 64)
	if !ok || err1 != nil || err2 != nil || start < 0 || end < start {
		bad.Message = fmt.Sprintf("invalid Content-Range %q", cr)
		return bad
	}
	if start != size {
		bad.Message = fmt.Sprintf("chunk %d-%d does not start at the end of the upload (%d bytes)", start, end, size)
		return bad
	}
	if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
		bad.Message = fmt.Sprintf("Content-Range %q does not match Content-Length %d", cr, r.ContentLength)
		return bad
	}
	return nil
}

// patchUpload appends a chunk. A chunk is all or nothing: if its body cannot
// be read in full, the upload is cut back to where it was.
func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request, name, id string) error {
	unlock := s.lockUpload(id)
	defer unlock()
	size, err := s.upload(name, id)
	if err != nil {
		return err
	}
	if err := checkRange(w, r, name, id, size); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.uploads, id), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(f, r.Body)
	if err == nil && r.ContentLength >= 0 && n != r.ContentLength {
		err = fmt.Errorf("got %d bytes, %d announced", n, r.ContentLength)
	}
	if err != nil {
		if terr := f.Truncate(size); terr != nil {
			return terr
		}
		return apiErr(http.StatusBadRequest, CodeBlobUploadInvalid, nil, "reading the chunk: %v", err)
	}
	uploadHeaders(w, name, id, size+n)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// finishUpload is PUT ?digest=: the upload's bytes and the request's body
// (a last chunk, maybe) become the blob, verified against the digest.
func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, name, id string) error {
	unlock := s.lockUpload(id)
	defer unlock()
	size, err := s.upload(name, id)
	if err != nil {
		return err
	}
	ds := r.URL.Query().Get("digest")
	if ds == "" {
		return apiErr(http.StatusBadRequest, CodeDigestInvalid, nil, "the digest query parameter is required to finish an upload")
	}
	d, err := parseDigest(ds)
	if err != nil {
		return err
	}
	if err := checkRange(w, r, name, id, size); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(s.uploads, id))
	if err != nil {
		return err
	}
	defer f.Close()
	total := int64(-1)
	if r.ContentLength >= 0 {
		total = size + r.ContentLength
	}
	err = s.commitAndLink(r.Context(), name, io.MultiReader(io.LimitReader(f, size), r.Body), d, total)
	var e *Error
	if errors.As(err, &e) && e.Code == CodeBlobUploadInvalid {
		return err // the body was cut short: the upload stays as it was, to resume
	}
	if rerr := s.removeUpload(id); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	blobCreated(w, name, d)
	return nil
}

func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request, name, id string) error {
	unlock := s.lockUpload(id)
	defer unlock()
	if _, err := s.upload(name, id); err != nil {
		return err
	}
	if err := s.removeUpload(id); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// PurgeUploads removes uploads idle for longer than ttl, and upload files
// that no record names (left by a crash between the two). It returns how
// many it removed.
func (s *Server) PurgeUploads(ctx context.Context, ttl time.Duration) (int, error) {
	ents, err := os.ReadDir(s.uploads)
	if err != nil {
		return 0, err
	}
	known := map[string]bool{}
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktUploads).ForEach(func(k, _ []byte) error {
			known[string(k)] = true
			return nil
		})
	}); err != nil {
		return 0, err
	}
	n := 0
	now := time.Now()
	for _, e := range ents {
		id := e.Name()
		info, err := e.Info()
		if err != nil {
			continue
		}
		age := now.Sub(info.ModTime())
		// A file without a record is a crash's leftover, or an upload being
		// started right now (file first, then record): give it a minute.
		if (known[id] && age < ttl) || (!known[id] && age < time.Minute && ttl > 0) {
			delete(known, id)
			continue
		}
		unlock := s.lockUpload(id)
		err = s.removeUpload(id)
		unlock()
		if err != nil {
			return n, err
		}
		delete(known, id)
		n++
	}
	// Records whose file is gone.
	for id := range known {
		if err := s.removeUpload(id); err != nil {
			return n, err
		}
		n++
	}
	return n, ctx.Err()
}
