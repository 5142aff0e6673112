package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	imagetypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	registrytypes "github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/storage"

	"berth/internal/daemon"
	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/registry"
)

func (s *Server) imageRoutes() {
	s.handle("GET", "/images/json", s.listImages)
	s.handle("POST", "/images/create", s.createImage)
	s.handle("POST", "/images/load", s.loadImages)
	s.handle("GET", "/images/get", s.saveImages)
	s.handle("POST", "/images/prune", s.pruneImages)
	s.handle("POST", "/commit", s.commit)
	s.handle("GET", "/images/{name*}/json", s.inspectImage)
	s.handle("GET", "/images/{name*}/history", s.imageHistory)
	s.handle("GET", "/images/{name*}/get", s.saveImage)
	s.handle("POST", "/images/{name*}/tag", s.tagImage)
	s.handle("POST", "/images/{name*}/push", s.pushImage)
	s.handle("POST", "/auth", s.auth)
	s.handle("DELETE", "/images/{name*}", s.removeImage)
}

func familiar(refs []string) []string {
	out := []string{}
	for _, r := range refs {
		if n, err := reference.ParseNormalizedNamed(r); err == nil {
			out = append(out, reference.FamiliarString(n))
		} else {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) imageSummary(im *image.Image, users map[string]int) imagetypes.Summary {
	sum := imagetypes.Summary{
		ID:          im.ID.String(),
		ParentID:    im.Parent.String(),
		RepoTags:    familiar(im.RepoTags),
		RepoDigests: familiar(im.RepoDigests),
		Size:        im.Size,
		SharedSize:  -1,
		Labels:      im.Config.Config.Labels,
		Containers:  -1,
	}
	if users != nil {
		sum.Containers = int64(users[im.ID.String()])
	}
	if im.Config.Created != nil {
		sum.Created = im.Config.Created.Unix()
	} else {
		sum.Created = im.Added.Unix()
	}
	if sum.Labels == nil {
		sum.Labels = map[string]string{}
	}
	desc := im.Target
	sum.Descriptor = &desc
	return sum
}

func (s *Server) listImages(w http.ResponseWriter, r *request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	sel := image.Filters{All: boolValue(r, "all")}
	for k, vals := range f {
		switch k {
		case "dangling":
			if len(vals) != 1 || (vals[0] != "true" && vals[0] != "false" && vals[0] != "1" && vals[0] != "0") {
				return errdefs.Invalid("invalid filter 'dangling=%s'", strings.Join(vals, ","))
			}
			v := vals[0] == "true" || vals[0] == "1"
			sel.Dangling = &v
		case "label":
			sel.Labels = vals
		case "reference":
			sel.References = vals
		case "before":
			sel.Before = vals[0]
		case "since":
			sel.Since = vals[0]
		case "until":
		default:
			return errdefs.Invalid("invalid filter '%s'", k)
		}
	}
	ims, err := s.d.Images().Select(sel)
	if err != nil {
		return err
	}
	var until time.Time
	if v := f["until"]; len(v) > 0 {
		if until, err = daemon.ParseTime(v[0], timeNow()); err != nil {
			return err
		}
	}
	users := s.d.ImageUsers()
	out := []imagetypes.Summary{}
	for _, im := range ims {
		sum := s.imageSummary(im, users)
		if !until.IsZero() && time.Unix(sum.Created, 0).After(until) {
			continue
		}
		if pats := f["reference"]; len(pats) > 0 {
			// As dockerd: only the references that match are listed (one row per tag).
			sum.RepoTags, sum.RepoDigests = matchingRefs(sum.RepoTags, pats), matchingRefs(sum.RepoDigests, pats)
		}
		out = append(out, sum)
	}
	return writeJSON(w, http.StatusOK, out)
}

// matchingRefs keeps the references that match one of the patterns of a reference filter,
// in their familiar form ("busybox:*") or their full one ("docker.io/library/busybox:*").
func matchingRefs(refs, patterns []string) []string {
	out := []string{}
	for _, r := range refs {
		n, err := reference.ParseNormalizedNamed(r)
		if err != nil {
			continue
		}
		for _, p := range patterns {
			familiarOK, _ := reference.FamiliarMatch(p, n)
			fullOK, _ := path.Match(p, n.String())
			if familiarOK || fullOK {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func (s *Server) inspectImage(w http.ResponseWriter, r *request) error {
	im, err := s.d.Images().Resolve(r.vars["name"])
	if err != nil {
		return err
	}
	cfg := s.d.ImageConfig(im)
	res := imagetypes.InspectResponse{
		ID:           im.ID.String(),
		RepoTags:     familiar(im.RepoTags),
		RepoDigests:  familiar(im.RepoDigests),
		Author:       cfg.Author,
		Config:       &cfg.Config,
		Architecture: cfg.Architecture,
		Variant:      cfg.Variant,
		Os:           cfg.OS,
		OsVersion:    cfg.OSVersion,
		Size:         im.Size,
		GraphDriver:  &storage.DriverData{Name: "overlay2", Data: map[string]string{}},
		RootFS:       imagetypes.RootFS{Type: "layers"},
	}
	if cfg.Created != nil {
		res.Created = cfg.Created.Format(time.RFC3339Nano)
	}
	if n := len(cfg.History); n > 0 {
		res.Comment = cfg.History[n-1].Comment
	}
	for _, l := range cfg.RootFS.DiffIDs {
		res.RootFS.Layers = append(res.RootFS.Layers, l.String())
	}
	if dirs, err := s.d.Images().Snaps.LowerDirs(im.TopLayer()); err == nil && len(dirs) > 0 {
		res.GraphDriver.Data["LowerDir"] = strings.Join(dirs, ":")
	}
	desc := im.Target
	res.Descriptor = &desc
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) imageHistory(w http.ResponseWriter, r *request) error {
	h, err := s.d.Images().History(r.vars["name"])
	if err != nil {
		return err
	}
	out := []imagetypes.HistoryResponseItem{}
	for _, e := range h {
		id := "<missing>"
		if e.ID != "" {
			id = e.ID.String()
		}
		tags := familiar(e.Tags)
		if len(tags) == 0 {
			tags = nil
		}
		out = append(out, imagetypes.HistoryResponseItem{ID: id, Created: e.Created.Unix(), CreatedBy: e.CreatedBy, Comment: e.Comment, Size: e.Size, Tags: tags})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) tagImage(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	repo, tag := q.Get("repo"), q.Get("tag")
	if repo == "" {
		return errdefs.Invalid("repository name must have at least one component")
	}
	target := repo
	if tag != "" {
		target += ":" + tag
	}
	im, err := s.d.Images().Resolve(r.vars["name"])
	if err != nil {
		return err
	}
	if err := s.d.Images().Tag(r.vars["name"], target); err != nil {
		return err
	}
	s.d.Event(events.ImageEventType, events.ActionTag, im.ID.String(), map[string]string{"name": familiar([]string{target})[0]})
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) removeImage(w http.ResponseWriter, r *request) error {
	name := r.vars["name"]
	force := boolValue(r, "force")
	im, err := s.d.Images().Resolve(name)
	if err != nil {
		return err
	}
	del, err := s.d.Images().Remove(r.Context(), name, image.RemoveOptions{Force: force, NoPrune: boolValue(r, "noprune"), ContainerRunning: s.d.ContainerRunning})
	if err != nil {
		return err
	}
	out := []imagetypes.DeleteResponse{}
	for _, d := range del {
		if d.Untagged != "" {
			out = append(out, imagetypes.DeleteResponse{Untagged: familiar([]string{d.Untagged})[0]})
			s.d.Event(events.ImageEventType, events.ActionUnTag, im.ID.String(), map[string]string{"name": d.Untagged})
		}
		if d.Deleted != "" {
			out = append(out, imagetypes.DeleteResponse{Deleted: d.Deleted})
			s.d.Event(events.ImageEventType, events.ActionDelete, d.Deleted, nil)
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// progress writes the JSON message stream of long image operations.
type progress struct {
	enc     *json.Encoder
	started bool
	w       http.ResponseWriter
}

func (p *progress) start() {
	if !p.started {
		p.w.Header().Set("Content-Type", "application/json")
		p.w.WriteHeader(http.StatusOK)
		p.started = true
	}
}

func (p *progress) send(v any) {
	p.start()
	p.enc.Encode(v)
}

func newProgress(w http.ResponseWriter) *progress {
	return &progress{enc: json.NewEncoder(newFlushWriter(w)), w: w}
}

type jsonMessage struct {
	Stream      string        `json:"stream,omitempty"`
	Status      string        `json:"status,omitempty"`
	ID          string        `json:"id,omitempty"`
	Error       string        `json:"error,omitempty"`
	ErrorDetail *errorMessage `json:"errorDetail,omitempty"`
}

type errorMessage struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message"`
}

func (s *Server) loadImages(w http.ResponseWriter, r *request) error {
	quiet := boolValue(r, "quiet")
	loaded, err := s.d.Images().Load(r.Context(), r.Body)
	if err != nil {
		return err
	}
	p := newProgress(w)
	p.start()
	for _, l := range loaded {
		line := "Loaded image ID: " + l.Image.ID.String() + "\n"
		if l.Ref != "" {
			line = "Loaded image: " + l.Ref + "\n"
		}
		s.d.Event(events.ImageEventType, events.ActionLoad, l.Image.ID.String(), map[string]string{"name": l.Ref})
		if quiet {
			p.send(jsonMessage{Stream: line})
		} else {
			p.send(jsonMessage{Stream: line})
		}
	}
	return nil
}

func (s *Server) saveImages(w http.ResponseWriter, r *request) error {
	return s.save(w, r, r.URL.Query()["names"])
}

func (s *Server) saveImage(w http.ResponseWriter, r *request) error {
	return s.save(w, r, []string{r.vars["name"]})
}

func (s *Server) save(w http.ResponseWriter, r *request, names []string) error {
	if len(names) == 0 {
		return errdefs.Invalid("no images to save")
	}
	for _, n := range names {
		if _, err := s.d.Images().Resolve(n); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := s.d.Images().Save(r.Context(), w, names); err != nil {
		s.log.Warn("save", "names", names, "err", err)
		return nil
	}
	for _, n := range names {
		s.d.Event(events.ImageEventType, events.ActionSave, n, nil)
	}
	return nil
}

func (s *Server) createImage(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	if src := q.Get("fromSrc"); src != "" {
		if src != "-" {
			return errdefs.Invalid("import from %s: berth imports from the request body only (fromSrc=-)", src)
		}
		ref := q.Get("repo")
		if ref != "" && q.Get("tag") != "" {
			ref += ":" + q.Get("tag")
		}
		msg := q.Get("message")
		im, err := s.d.Images().Import(r.Context(), r.Body, image.ImportOptions{Ref: ref, Changes: q["changes"], Message: msg})
		if err != nil {
			return err
		}
		s.d.Event(events.ImageEventType, events.ActionImport, im.ID.String(), nil)
		p := newProgress(w)
		p.send(jsonMessage{Status: im.ID.String()})
		return nil
	}
	if from := q.Get("fromImage"); from != "" {
		name := from
		if t := q.Get("tag"); t != "" {
			if strings.HasPrefix(t, "sha256:") {
				name += "@" + t
			} else {
				name += ":" + t
			}
		}
		ref, err := image.ParseRef(name)
		if err != nil {
			return errdefs.InvalidWrap(err, "invalid reference format")
		}
		return s.pullImage(w, r, ref)
	}
	return errdefs.Invalid("fromSrc or fromImage is required")
}

// pullMessage is a message of a pull's JSON progress stream (the docker CLI draws the
// bars from progressDetail).
type pullMessage struct {
	Status         string               `json:"status,omitempty"`
	ID             string               `json:"id,omitempty"`
	ProgressDetail *jsonstream.Progress `json:"progressDetail,omitempty"`
	Error          string               `json:"error,omitempty"`
	ErrorDetail    *errorMessage        `json:"errorDetail,omitempty"`
}

// pullImage is POST /images/create?fromImage=: the pull's progress as dockerd streams
// it. Errors before the first layer (no such image, access denied) are HTTP errors; later
// ones end the stream.
func (s *Server) pullImage(w http.ResponseWriter, r *request, ref reference.Named) error {
	if pl := r.URL.Query().Get("platform"); pl != "" {
		want, err := platforms.Parse(pl)
		if err != nil {
			return errdefs.InvalidWrap(err, "platform")
		}
		if !platforms.Default().Match(want) {
			return errdefs.Invalid("berth pulls images for this machine's platform (%s) only, not %s", platforms.DefaultString(), pl)
		}
	}
	creds, err := registry.DecodeAuthConfig(r.Header.Get(registrytypes.AuthHeader))
	if err != nil {
		return err
	}
	tag := "latest"
	switch t := ref.(type) {
	case reference.Canonical:
		tag = t.Digest().String()
	case reference.Tagged:
		tag = t.Tag()
	}
	p := newProgress(w)
	var mu sync.Mutex
	send := func(m pullMessage) {
		mu.Lock()
		defer mu.Unlock()
		if !p.started {
			p.send(pullMessage{Status: "Pulling from " + reference.Path(ref), ID: tag})
		}
		p.send(m)
	}
	res, err := s.d.PullImage(r.Context(), ref, creds, func(e image.PullProgress) {
		send(progressMessage(e, "Downloading"))
	})
	if err != nil {
		mu.Lock()
		started := p.started
		mu.Unlock()
		if !started {
			return err
		}
		send(pullMessage{Error: err.Error(), ErrorDetail: &errorMessage{Message: err.Error()}})
		return nil
	}
	send(pullMessage{Status: "Digest: " + res.Digest.String()})
	if res.Updated {
		send(pullMessage{Status: "Status: Downloaded newer image for " + reference.FamiliarString(ref)})
	} else {
		send(pullMessage{Status: "Status: Image is up to date for " + reference.FamiliarString(ref)})
	}
	return nil
}

func (s *Server) pruneImages(w http.ResponseWriter, r *request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	o := image.PruneOptions{Labels: f["label"], NotLabels: f["label!"]}
	for k, v := range f {
		switch k {
		case "dangling":
			o.All = len(v) > 0 && (v[0] == "false" || v[0] == "0")
		case "until":
			if o.Until, err = daemon.ParseTime(v[0], timeNow()); err != nil {
				return err
			}
		case "label", "label!":
		default:
			return errdefs.Invalid("invalid filter '%s'", k)
		}
	}
	res, err := s.d.Images().PruneWith(r.Context(), o)
	if err != nil {
		return err
	}
	rep := imagetypes.PruneReport{ImagesDeleted: []imagetypes.DeleteResponse{}, SpaceReclaimed: uint64(res.SpaceReclaimed)}
	for _, d := range res.Deleted {
		if d.Untagged != "" {
			rep.ImagesDeleted = append(rep.ImagesDeleted, imagetypes.DeleteResponse{Untagged: familiar([]string{d.Untagged})[0]})
		}
		if d.Deleted != "" {
			rep.ImagesDeleted = append(rep.ImagesDeleted, imagetypes.DeleteResponse{Deleted: d.Deleted})
		}
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *Server) commit(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	var cfg container.Config
	if err := decode(r, &cfg); err != nil {
		return err
	}
	pause := true
	if q.Get("pause") != "" {
		pause = boolValue(r, "pause")
	}
	id, err := s.d.Commit(r.Context(), q.Get("container"), daemon.CommitOptions{
		Repo: q.Get("repo"), Tag: q.Get("tag"), Author: q.Get("author"), Comment: q.Get("comment"),
		Changes: q["changes"], Pause: pause, Config: &cfg,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]string{"Id": id})
}

// progressMessage is one layer's step in a pull's or a push's stream; the step that
// moves bytes (moving: Downloading, Pushing) carries how far it is.
func progressMessage(e image.PullProgress, moving string) pullMessage {
	m := pullMessage{Status: e.Status, ID: e.ID}
	if e.Status == moving {
		m.ProgressDetail = &jsonstream.Progress{Current: e.Current, Total: e.Total}
	}
	return m
}

// pushImage is POST /images/{name}/push?tag=: the push's progress as dockerd streams it,
// one tag after the other. Without a tag (in the name or the query), every tag of the
// repository is pushed.
func (s *Server) pushImage(w http.ResponseWriter, r *request) error {
	name, tag := r.vars["name"], r.URL.Query().Get("tag")
	if tag != "" {
		sep := ":"
		if strings.Contains(tag, ":") {
			sep = "@" // a digest
		}
		name += sep + tag
	}
	ref, err := image.ParseRef(name)
	if err != nil {
		return err
	}
	creds, err := registry.DecodeAuthConfig(r.Header.Get(registrytypes.AuthHeader))
	if err != nil {
		return err
	}
	refs := []reference.Named{ref}
	if tag == "" && !strings.ContainsAny(strings.TrimPrefix(name, reference.Domain(ref)), ":@") {
		if refs, err = s.repositoryTags(ref); err != nil {
			return err
		}
	}
	p := newProgress(w)
	var mu sync.Mutex
	send := func(m any) {
		mu.Lock()
		defer mu.Unlock()
		p.send(m)
	}
	send(pullMessage{Status: "The push refers to repository [" + reference.TrimNamed(ref).String() + "]"})
	for _, ref := range refs {
		res, err := s.d.PushImage(r.Context(), ref, creds, func(e image.PullProgress) {
			send(progressMessage(e, "Pushing"))
		})
		if err != nil {
			send(pullMessage{Error: err.Error(), ErrorDetail: &errorMessage{Message: err.Error()}})
			return nil
		}
		t := res.Tag
		if t == "" {
			t = res.Digest.String()
		}
		send(pullMessage{Status: fmt.Sprintf("%s: digest: %s size: %d", t, res.Digest, res.Size)})
		send(map[string]any{"progressDetail": map[string]any{}, "aux": map[string]any{"Tag": res.Tag, "Digest": res.Digest.String(), "Size": res.Size}})
	}
	return nil
}

// repositoryTags lists the tagged references of repo's repository, sorted.
func (s *Server) repositoryTags(repo reference.Named) ([]reference.Named, error) {
	ims, err := s.d.Images().List()
	if err != nil {
		return nil, err
	}
	var out []reference.Named
	for _, im := range ims {
		for _, t := range im.RepoTags {
			n, err := reference.ParseNormalizedNamed(t)
			if err == nil && n.Name() == repo.Name() {
				out = append(out, n)
			}
		}
	}
	if len(out) == 0 {
		return nil, errdefs.NotFound("An image does not exist locally with the tag: %s", reference.FamiliarName(repo))
	}
	slices.SortFunc(out, func(a, b reference.Named) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// auth is POST /auth (`docker login`): the registry is asked to accept the
// credentials; berthd keeps none.
func (s *Server) auth(w http.ResponseWriter, r *request) error {
	var ac registrytypes.AuthConfig
	if err := json.NewDecoder(r.Body).Decode(&ac); err != nil {
		return errdefs.InvalidWrap(err, "login: bad request body")
	}
	tok, err := s.d.Login(r.Context(), &ac)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, registrytypes.AuthResponse{Status: "Login Succeeded", IdentityToken: tok})
}
