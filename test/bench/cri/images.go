package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"berth/test/bench/harness"
)

// inputs are the images the engines are prepared with: docker-archives (`docker save`'s
// format), which `docker load` (berthd) and `ctr images import` (containerd) both read.
type inputs struct {
	busybox string // busyboxImage: busybox-static's root filesystem, CMD ["sh"]
	pause   string // pauseImage: /pause, a copy of -bin's berth-init, ENTRYPOINT ["/pause", "--pause"]
}

// makeInputs writes the two images into the bench's directory. The pause stand-in is
// berth-init, whose --pause mode holds berth's own pods, so both engines' sandboxes run the
// same program.
func makeInputs(work string) (*inputs, error) {
	dir := filepath.Join(work, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rootfs, err := harness.BusyboxTar(dir, nil)
	if err != nil {
		return nil, err
	}
	in := &inputs{busybox: filepath.Join(dir, "busybox.tar"), pause: filepath.Join(dir, "pause.tar")}
	if err := writeDockerArchive(in.busybox, busyboxImage, rootfs, imageConfig{
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"sh"},
	}); err != nil {
		return nil, err
	}
	os.Remove(rootfs)

	layer := filepath.Join(dir, "pause-layer.tar")
	if err := fileTar(layer, filepath.Join(*flagBin, "berth-init"), "pause"); err != nil {
		return nil, fmt.Errorf("pause stand-in: %v (make build first)", err)
	}
	if err := writeDockerArchive(in.pause, pauseImage, layer, imageConfig{Entrypoint: []string{"/pause", "--pause"}}); err != nil {
		return nil, err
	}
	os.Remove(layer)
	return in, nil
}

// fileTar writes a tar holding one executable, src's content as name.
func fileTar(path, src, name string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(out)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: st.Size(), ModTime: st.ModTime(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, in); err != nil {
		return err
	}
	return tw.Close()
}

// imageConfig is the part of an image's config the bench sets.
type imageConfig struct {
	Env        []string `json:"Env,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
}

// writeDockerArchive writes a one-layer image named tag in `docker save`'s format: the
// layer (an uncompressed tar) as <digest>/layer.tar, the config as <digest>.json, and
// manifest.json.
func writeDockerArchive(path, tag, layerPath string, cfg imageConfig) error {
	diffID, size, err := fileDigest(layerPath)
	if err != nil {
		return err
	}
	created := time.Now().UTC().Format(time.RFC3339Nano)
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      created,
		"config":       cfg,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + diffID}},
		"history":      []map[string]string{{"created": created, "created_by": "berth bench cri: " + tag}},
	})
	if err != nil {
		return err
	}
	sum := sha256.Sum256(config)
	configName := hex.EncodeToString(sum[:]) + ".json"
	layerName := diffID + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{tag}, "Layers": []string{layerName}}})
	if err != nil {
		return err
	}

	out, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(out)
	mtime := time.Now()
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	err = tw.WriteHeader(&tar.Header{Name: diffID + "/", Mode: 0o755, ModTime: mtime, Typeflag: tar.TypeDir})
	if err == nil {
		err = tw.WriteHeader(&tar.Header{Name: layerName, Mode: 0o644, Size: size, ModTime: mtime, Typeflag: tar.TypeReg})
	}
	if err == nil {
		var l *os.File
		if l, err = os.Open(layerPath); err == nil {
			_, err = io.Copy(tw, l)
			l.Close()
		}
	}
	if err == nil {
		err = add(configName, config)
	}
	if err == nil {
		err = add("manifest.json", manifest)
	}
	if err == nil {
		err = tw.Close()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileDigest is the sha256 (hex) and size of a file.
func fileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
