package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"berth/internal/errdefs"
)

// Error is a registry's refusal: its HTTP status and the errors its body
// lists (distribution's {"errors": [{"code", "message"}]}). It has the
// errdefs kind of its status: 404 not found, 401/403 forbidden, other 4xx
// invalid.
type Error struct {
	// What the request was for ("manifest busybox:latest").
	What       string
	StatusCode int
	Errors     []ErrorInfo
}

// ErrorInfo is one entry of a registry's error body.
type ErrorInfo struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

func (e *Error) Error() string {
	var parts []string
	for _, x := range e.Errors {
		switch {
		case x.Message != "" && x.Code != "":
			parts = append(parts, strings.ToLower(strings.ReplaceAll(x.Code, "_", " "))+": "+x.Message)
		case x.Message != "":
			parts = append(parts, x.Message)
		case x.Code != "":
			parts = append(parts, strings.ToLower(strings.ReplaceAll(x.Code, "_", " ")))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d %s", e.StatusCode, strings.ToLower(http.StatusText(e.StatusCode))))
	}
	return e.What + ": " + strings.Join(parts, "; ")
}

// Unwrap gives the errdefs kind.
func (e *Error) Unwrap() error {
	switch {
	case e.StatusCode == http.StatusNotFound:
		return errdefs.ErrNotFound
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		return errdefs.ErrForbidden
	case e.StatusCode >= 400 && e.StatusCode < 500 && e.StatusCode != http.StatusTooManyRequests:
		return errdefs.ErrInvalid
	}
	return nil
}

// Denied tells whether the registry refused access (no or wrong credentials,
// or a repository the credentials may not see).
func (e *Error) Denied() bool {
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
		return true
	}
	for _, x := range e.Errors {
		if x.Code == "UNAUTHORIZED" || x.Code == "DENIED" {
			return true
		}
	}
	return false
}

// IsDenied tells whether err is a registry's refusal of access.
func IsDenied(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Denied()
}

// responseError reads a failed response's error body.
func responseError(resp *http.Response, what string) error {
	e := &Error{What: what, StatusCode: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Errors []ErrorInfo `json:"errors"`
		// Token services answer {"details": "..."} (Docker Hub) or
		// {"error": "..."} (OAuth2).
		Details string `json:"details"`
		Err     string `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil {
		e.Errors = body.Errors
		if len(e.Errors) == 0 && (body.Details != "" || body.Err != "") {
			e.Errors = []ErrorInfo{{Message: strings.TrimSpace(body.Details + " " + body.Err)}}
		}
	} else if s := strings.TrimSpace(string(b)); s != "" && len(s) < 200 && !strings.Contains(s, "<") {
		e.Errors = []ErrorInfo{{Message: s}}
	}
	return e
}

// drain reads a little of what is left of a response so that its
// connection can be reused, and closes it.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// request describes one API request; body, when set, makes a fresh body
// for each attempt.
type request struct {
	method string
	url    string
	header http.Header
	body   func() (io.ReadCloser, error)
	size   int64 // body's length, -1 when unknown
	scope  string
}

// do sends req with credentials for its scope. A 401 gets a fresh token
// and one more attempt. The response is returned whatever its status.
func (r *Repository) do(ctx context.Context, rq request) (*http.Response, error) {
	hc, err := r.c.httpClient(r.Host)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		var body io.ReadCloser
		if rq.body != nil {
			if body, err = rq.body(); err != nil {
				return nil, err
			}
		}
		req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, body)
		if err != nil {
			if body != nil {
				body.Close()
			}
			return nil, errdefs.InvalidWrap(err, "registry request")
		}
		if rq.body != nil {
			req.ContentLength = rq.size
		}
		for k, v := range rq.header {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", r.c.opts.UserAgent)
		if err := r.auth.authorize(ctx, req, rq.scope, attempt > 0); err != nil {
			if body != nil {
				body.Close()
			}
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			if cs := parseChallenges(resp.Header.Values("WWW-Authenticate")); len(cs) > 0 {
				r.auth.setChallenges(cs)
				drain(resp)
				continue
			}
		}
		return resp, nil
	}
}

// pullScope and pushScope are the token scopes of a repository.
func (r *Repository) pullScope() string { return "repository:" + r.Name + ":pull" }
func (r *Repository) pushScope() string { return "repository:" + r.Name + ":pull,push" }
