// Package registry_test runs berth's registry server as users do: the OCI
// distribution-spec conformance suite against it, and `berth registry
// serve` killed in the middle of a push, then restarted.
package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/registry/server"

	"github.com/opencontainers/go-digest"
)

const (
	confModule  = "github.com/opencontainers/distribution-spec/conformance"
	confVersion = "v0.0.0-20260831232431-97274622c111" // as hack/conformance.sh
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "berth-registry-test.")
	if err != nil {
		d = t.TempDir()
	} else {
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	return d
}

// conformanceBinary is the suite built by `make conformance` (here by
// `hack/conformance.sh --build-only`, from the Go module proxy), or built from
// the Go module cache without the network; "" if none of them can be had.
func conformanceBinary(t *testing.T) (string, string) {
	t.Helper()
	root := repoRoot(t)
	built := filepath.Join(root, "_output", "conformance")
	if _, err := os.Stat(filepath.Join(built, ".built-"+confVersion)); err != nil {
		cmd := exec.Command(filepath.Join(root, "hack", "conformance.sh"), "--build-only")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("hack/conformance.sh --build-only: %v\n%s", err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(built, ".built-"+confVersion)); err == nil {
		return filepath.Join(built, "conformance.test"), ""
	}
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local", "GONOSUMDB="+confModule)
	tmp := tempDir(t)
	cmd := exec.Command("go", "mod", "download", "-json", confModule+"@"+confVersion)
	cmd.Dir, cmd.Env = tmp, env
	out, err := cmd.Output()
	m := regexp.MustCompile(`"Dir": "([^"]+)"`).FindSubmatch(out)
	if err != nil || m == nil {
		return "", fmt.Sprintf("%s@%s is not in the Go module cache (run `make conformance` once with the module proxy reachable)", confModule, confVersion)
	}
	src := filepath.Join(tmp, "src")
	if out, err := exec.Command("cp", "-r", string(m[1]), src).CombinedOutput(); err != nil {
		t.Fatalf("copy the suite: %v %s", err, out)
	}
	exec.Command("chmod", "-R", "u+w", src).Run()
	bin := filepath.Join(tmp, "conformance.test")
	cmd = exec.Command("go", "test", "-c", "-o", bin, ".")
	cmd.Dir, cmd.Env = src, env
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("the suite does not build offline: %v\n%s", err, out)
	}
	return bin, ""
}

// TestConformance runs the whole suite (its defaults: every API and data
// switch on) against the server, in this process, on a loopback port.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped in -short mode")
	}
	bin, why := conformanceBinary(t)
	if bin == "" {
		t.Skip(why)
	}
	dir := tempDir(t)
	reg, err := server.Open(server.Options{Root: filepath.Join(dir, "root"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: reg}
	go srv.Serve(ln)
	defer srv.Close()

	results := filepath.Join(dir, "results")
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OCI_REGISTRY="+ln.Addr().String(), "OCI_TLS=disabled", "OCI_RESULTS_DIR="+results)
	out, err := cmd.CombinedOutput()
	summary := regexp.MustCompile(`(?m)^  (Pass|FAIL|Error|Skip|Disabled)\.*: +(\d+)$`).FindAllSubmatch(out, -1)
	counts := map[string]string{}
	for _, s := range summary {
		counts[string(s[1])] = string(s[2])
	}
	t.Logf("conformance: %s passed, %s failed, %s errors, %s skipped, %s disabled",
		counts["Pass"], counts["FAIL"], counts["Error"], counts["Skip"], counts["Disabled"])
	if err != nil || counts["FAIL"] != "0" || counts["Error"] != "0" || !bytes.Contains(out, []byte("OCI Conformance Result: Pass")) {
		t.Fatalf("conformance failed (%v):\n%s", err, out)
	}
}

// berthBinary builds bin/berth from this tree.
func berthBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(tempDir(t), "berth")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/berth")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	return bin
}

type served struct {
	cmd  *exec.Cmd
	addr string
}

// serve starts `berth registry serve` on a free loopback port.
func serve(t *testing.T, bin, root string) *served {
	t.Helper()
	cmd := exec.Command(bin, "registry", "serve", "--addr", "127.0.0.1:0", "--root", root)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &served{cmd: cmd}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`msg="registry listening" addr=(\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			s.addr = m[1]
			break
		}
	}
	if s.addr == "" {
		t.Fatal("berth registry serve did not start")
	}
	go io.Copy(io.Discard, stderr)
	return s
}

func do(t *testing.T, method, url string, body io.Reader, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// TestServeKilledMidPush kills the server while a blob's last part is
// being sent: nothing half-written becomes visible, the upload resumes
// after a restart, and SIGTERM stops the server cleanly.
func TestServeKilledMidPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds berth")
	}
	bin := berthBinary(t)
	root := filepath.Join(tempDir(t), "root")
	s := serve(t, bin, root)
	base := "http://" + s.addr

	data := bytes.Repeat([]byte("berth registry blob "), 1<<16) // 1.3 MB
	d := digest.FromBytes(data)
	res := do(t, "POST", base+"/v2/app/blobs/uploads/", nil)
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d", res.StatusCode)
	}
	loc := base + res.Header.Get("Location")
	half := len(data) / 2
	res = do(t, "PATCH", loc, bytes.NewReader(data[:half]), "Content-Range", fmt.Sprintf("0-%d", half-1))
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("patch: %d", res.StatusCode)
	}

	// The PUT sends part of the rest, then the server is killed.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", loc+"?digest="+d.String(), pr)
	req.ContentLength = int64(len(data) - half)
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			err = fmt.Errorf("PUT answered %d", res.StatusCode)
		}
		done <- err
	}()
	if _, err := pw.Write(data[half : half+1000]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	pw.CloseWithError(io.ErrClosedPipe)
	if err := <-done; err == nil || strings.Contains(err.Error(), "answered") {
		t.Fatalf("the PUT should have failed with the server: %v", err)
	}

	s = serve(t, bin, root)
	base = "http://" + s.addr
	loc = base + strings.TrimPrefix(loc, strings.SplitN(loc, "/v2/", 2)[0])
	if res := do(t, "HEAD", base+"/v2/app/blobs/"+d.String(), nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("half-pushed blob visible: %d", res.StatusCode)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "content", "ingest")); len(ents) != 0 {
		t.Fatalf("ingest not cleared: %v", ents)
	}
	res = do(t, "GET", loc, nil)
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Range") != fmt.Sprintf("0-%d", half-1) {
		t.Fatalf("upload status after restart: %d %q", res.StatusCode, res.Header.Get("Range"))
	}
	res = do(t, "PUT", loc+"?digest="+d.String(), bytes.NewReader(data[half:]), "Content-Range", fmt.Sprintf("%d-%d", half, len(data)-1))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("finish after restart: %d", res.StatusCode)
	}
	if res := do(t, "HEAD", base+"/v2/app/blobs/"+d.String(), nil); res.StatusCode != http.StatusOK || res.ContentLength != int64(len(data)) {
		t.Fatalf("blob after resume: %d %d", res.StatusCode, res.ContentLength)
	}

	// SIGTERM: a clean stop, exit status 0.
	s.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("after SIGTERM: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("berth registry serve did not stop on SIGTERM")
	}
}
