package errdefs

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestKinds(t *testing.T) {
	err := fmt.Errorf("load: %w", NotFound("no such image: %s", "busybox"))
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		t.Fatalf("kind lost: %v", err)
	}
	if got := err.Error(); got != "load: no such image: busybox" {
		t.Fatalf("text %q", got)
	}
	w := InvalidWrap(io.ErrUnexpectedEOF, "archive %q", "x.tar")
	if !errors.Is(w, ErrInvalid) || !errors.Is(w, io.ErrUnexpectedEOF) {
		t.Fatalf("wrapped chain lost: %v", w)
	}
	if got := w.Error(); got != `archive "x.tar": unexpected EOF` {
		t.Fatalf("text %q", got)
	}
}
