package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Code is one of the distribution spec's error codes.
type Code string

// The spec's error codes (distribution-spec v1.1, "Error Codes").
const (
	CodeBlobUnknown         Code = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       Code = "DIGEST_INVALID"
	CodeManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     Code = "MANIFEST_INVALID"
	CodeManifestUnknown     Code = "MANIFEST_UNKNOWN"
	CodeNameInvalid         Code = "NAME_INVALID"
	CodeNameUnknown         Code = "NAME_UNKNOWN"
	CodeSizeInvalid         Code = "SIZE_INVALID"
	CodeUnauthorized        Code = "UNAUTHORIZED"
	CodeDenied              Code = "DENIED"
	CodeUnsupported         Code = "UNSUPPORTED"
	CodeTooManyRequests     Code = "TOOMANYREQUESTS"
	// Not in the spec's table, but what distribution answers for a bad tag.
	codeTagInvalid Code = "TAG_INVALID"
	// A failure of the server itself (disk full, database error).
	codeUnknown Code = "UNKNOWN"
)

// Error is an answer of the API that is not a success: an HTTP status and the
// spec's error body. Handlers return it; serveError writes it.
type Error struct {
	Status  int
	Code    Code
	Message string
	Detail  any
	// Header is set on the response (Location and Range on a 416).
	Header http.Header
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func apiErr(status int, code Code, detail any, format string, a ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, a...), Detail: detail}
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// serveError writes err as the spec's error JSON. An error that is not an
// *Error is a failure of the server: 500 UNKNOWN, logged by the access log.
func serveError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: codeUnknown, Message: err.Error()}
	}
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	if lw, ok := w.(*logWriter); ok {
		lw.err = err
	}
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code, Message: e.Message, Detail: e.Detail}}})
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}
