package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// benchArchive is a layer shaped like a distribution image: 8000 files in
// 400 directories, mostly small, a few large, about 120 MB in all.
func benchArchive(b *testing.B) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	// Text-like content: it compresses about as well as real layers do.
	var words []string
	for range 4096 {
		w := make([]byte, 2+rng.IntN(10))
		for i := range w {
			w[i] = byte('a' + rng.IntN(26))
		}
		words = append(words, string(w))
	}
	content := make([]byte, 0, 4<<20+16)
	for len(content) < 4<<20 {
		content = append(content, words[rng.IntN(len(words))]...)
		content = append(content, " \n"[rng.IntN(2)])
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(hdr *tar.Header, body []byte) {
		hdr.ModTime, hdr.Format = testTime, tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			b.Fatal(err)
		}
	}
	for d := 0; d < 400; d++ {
		dir := fmt.Sprintf("usr/lib/pkg%03d/", d)
		write(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}, nil)
		for f := 0; f < 20; f++ {
			var size int
			switch r := rng.IntN(100); {
			case r < 70:
				size = rng.IntN(4 << 10)
			case r < 97:
				size = 4<<10 + rng.IntN(28<<10)
			default:
				size = 32<<10 + rng.IntN(1<<20)
			}
			name := dir + "file" + strconv.Itoa(f)
			off := rng.IntN(len(content) - size)
			write(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(size)}, content[off:off+size])
			if f%10 == 0 {
				write(&tar.Header{Typeflag: tar.TypeSymlink, Name: name + ".link", Linkname: "file" + strconv.Itoa(f), Mode: 0o777}, nil)
			}
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkUnpack measures Unpack against `tar -x` on the same stream,
// uncompressed and gzip-compressed. MB/s are of the uncompressed tar.
func BenchmarkUnpack(b *testing.B) {
	data := benchArchive(b)
	base := b.TempDir()
	run := func(b *testing.B, extract func(dir string) error) {
		b.Helper()
		b.SetBytes(int64(len(data)))
		for i := 0; b.Loop(); i++ {
			dir := filepath.Join(base, strconv.Itoa(i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := extract(dir); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	for _, in := range []struct {
		name    string
		data    []byte
		tarFlag string
	}{{"", data, "-x"}, {"-gzip", compress(b, data, Gzip), "-xz"}} {
		b.Run("berth"+in.name, func(b *testing.B) {
			run(b, func(dir string) error {
				_, err := Unpack(context.Background(), bytes.NewReader(in.data), dir, UnpackOptions{})
				return err
			})
		})
		b.Run("tar"+in.tarFlag, func(b *testing.B) {
			if _, err := exec.LookPath("tar"); err != nil {
				b.Skip("no tar")
			}
			run(b, func(dir string) error {
				cmd := exec.Command("tar", in.tarFlag, "--same-owner", "-p", "-C", dir)
				cmd.Stdin = bytes.NewReader(in.data)
				out, err := cmd.CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		})
	}
}
