package image

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"sync"

	"berth/internal/archive"
	"berth/internal/snapshot"

	"github.com/opencontainers/go-digest"
)

// early unpacks layer blobs while a load is still reading the archive.
// Which blobs are layers, and in which image, is known only from
// manifest.json or index.json, which come last in docker's archives; so
// every new blob that looks like a tar stream is unpacked as soon as it is
// stored, on the CPUs the archive reading leaves idle, and the result is
// used when the image's layers are unpacked (op.unpack) or dropped.
type early struct {
	s       *Store
	ctx     context.Context
	cancel  context.CancelFunc
	sem     chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	results map[digest.Digest]*earlyResult
	// present holds the diff IDs of the layers already unpacked: an
	// uncompressed blob with one of them as digest is not unpacked again.
	present map[digest.Digest]bool
}

type earlyResult struct {
	done    chan struct{}
	staging *snapshot.Staging
	stats   archive.UnpackStats
	err     error
}

func newEarly(ctx context.Context, s *Store) *early {
	e := &early{s: s, sem: make(chan struct{}, runtime.GOMAXPROCS(0)), results: map[digest.Digest]*earlyResult{}, present: map[digest.Digest]bool{}}
	e.ctx, e.cancel = context.WithCancel(ctx)
	if ls, err := s.Snaps.Layers(); err == nil {
		for _, l := range ls {
			e.present[l.DiffID] = true
		}
	}
	return e
}

// looksLikeLayer tells a tar stream (possibly compressed) from a JSON
// document or anything else by its first bytes.
func looksLikeLayer(head []byte) bool {
	if archive.DetectCompression(head) != archive.Uncompressed {
		return true
	}
	return len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar"))
}

// start unpacks the stored blob d in the background if it looks like a
// layer that is not unpacked yet.
func (e *early) start(d digest.Digest) {
	if e == nil || e.present[d] {
		return
	}
	f, err := e.s.Content.Open(d)
	if err != nil {
		return
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	if !looksLikeLayer(head[:n]) {
		f.Close()
		return
	}
	f.Seek(0, io.SeekStart)
	r := &earlyResult{done: make(chan struct{})}
	e.mu.Lock()
	if _, dup := e.results[d]; dup {
		e.mu.Unlock()
		f.Close()
		return
	}
	e.results[d] = r
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(r.done)
		defer f.Close()
		select {
		case e.sem <- struct{}{}:
		case <-e.ctx.Done():
			r.err = e.ctx.Err()
			return
		}
		defer func() { <-e.sem }()
		if r.staging, r.err = e.s.Snaps.NewLayer(e.ctx); r.err != nil {
			return
		}
		r.stats, r.err = archive.Unpack(e.ctx, f, r.staging.Dir, archive.UnpackOptions{Digest: d})
	}()
}

// take hands over the early unpacking of blob d, waiting for it to finish;
// nil when there is none.
func (e *early) take(d digest.Digest) *earlyResult {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	r := e.results[d]
	delete(e.results, d)
	e.mu.Unlock()
	if r != nil {
		<-r.done
	}
	return r
}

// close stops what is still running and removes every result nobody took.
func (e *early) close() {
	if e == nil {
		return
	}
	e.cancel()
	e.wg.Wait()
	for _, r := range e.results {
		if r.staging != nil {
			r.staging.Abort()
		}
	}
	e.results = nil
}
