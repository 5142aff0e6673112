// Package errdefs owns the kinds of error that cross berth's layers: a store,
// the daemon and the API agree on them, so the API can map an error to
// Docker's status code (404, 409, 400) without knowing where it came from.
// It holds no logic beyond wrapping and testing kinds.
package errdefs

import (
	"errors"
	"fmt"
)

// The kinds. Wrap one with fmt.Errorf("...: %w", ErrNotFound) or with the
// helpers below; test with errors.Is.
var (
	// ErrNotFound: the named object does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the object exists, or is in use, or in the wrong state (409).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the caller's input is malformed (400).
	ErrInvalid = errors.New("invalid argument")
	// ErrCorrupt: stored or received data does not match its digest or
	// format; the operation was refused and nothing was kept (400 on input).
	ErrCorrupt = errors.New("corrupt data")
	// ErrNotModified: the object is already in the asked state (304: start of
	// a running container, stop of a stopped one).
	ErrNotModified = errors.New("not modified")
	// ErrForbidden: the operation is not allowed on this object (403).
	ErrForbidden = errors.New("forbidden")
	// ErrUnauthorized: the credentials given were refused (401: a failed
	// login).
	ErrUnauthorized = errors.New("unauthorized")
)

type kindError struct {
	kind error
	msg  string
	err  error
}

func (e *kindError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *kindError) Unwrap() []error {
	if e.err != nil {
		return []error{e.kind, e.err}
	}
	return []error{e.kind}
}

// NotFound returns an error of kind ErrNotFound whose text is the formatted
// message alone (no "not found" suffix appended).
func NotFound(format string, a ...any) error { return newf(ErrNotFound, nil, format, a...) }

// Conflict returns an error of kind ErrConflict with the formatted message.
func Conflict(format string, a ...any) error { return newf(ErrConflict, nil, format, a...) }

// Invalid returns an error of kind ErrInvalid with the formatted message.
func Invalid(format string, a ...any) error { return newf(ErrInvalid, nil, format, a...) }

// Corrupt returns an error of kind ErrCorrupt with the formatted message.
func Corrupt(format string, a ...any) error { return newf(ErrCorrupt, nil, format, a...) }

// NotModified returns an error of kind ErrNotModified with the formatted message.
func NotModified(format string, a ...any) error { return newf(ErrNotModified, nil, format, a...) }

// Forbidden returns an error of kind ErrForbidden with the formatted message.
func Forbidden(format string, a ...any) error { return newf(ErrForbidden, nil, format, a...) }

// Unauthorized returns an error of kind ErrUnauthorized with the formatted message.
func Unauthorized(format string, a ...any) error { return newf(ErrUnauthorized, nil, format, a...) }

// InvalidWrap marks err as invalid input, keeping its chain: "msg: err".
func InvalidWrap(err error, format string, a ...any) error {
	return newf(ErrInvalid, err, format, a...)
}

func newf(kind, err error, format string, a ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, a...), err: err}
}
