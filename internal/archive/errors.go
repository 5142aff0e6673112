package archive

import (
	"errors"
	"fmt"
)

// ErrBreakout is the refusal of an entry whose name, symbolic link target or
// hard link target would reach outside the extraction directory. It comes
// wrapped in an EntryError.
var ErrBreakout = errors.New("path escapes the extraction directory")

// Refusals of oversized headers, wrapped in an EntryError.
var (
	errNameTooLong     = fmt.Errorf("name or link target longer than %d bytes", maxPathLen)
	errXattrsTooLarge  = fmt.Errorf("extended attributes larger than %d bytes", maxXattrBytes)
	errUnsupportedType = errors.New("unsupported entry type")
	errBadWhiteout     = errors.New("invalid whiteout name")
	errRootNotDir      = errors.New("root entry is not a directory")
)

// EntryError names the tar entry an error is about.
type EntryError struct {
	Name string // the entry's name as it appears in the archive
	Err  error
}

func (e *EntryError) Error() string { return fmt.Sprintf("tar entry %q: %v", e.Name, e.Err) }

func (e *EntryError) Unwrap() error { return e.Err }
