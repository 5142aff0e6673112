// Package registryinterop_test proves berth's registry, client and server, with the tools
// people use against registries (acceptance 2 and 3 of the registry issue):
//
//   - TestDockerPushPull: the stock docker CLI pushes a two-layer image to `berth registry
//     serve` through berthd (Pushed, then "Layer already exists", "Mounted from" for another
//     repository, --all-tags), and pulls it back after rmi: same image ID, same RepoDigest
//     as the server reports, it runs.
//   - TestSkopeo: skopeo copies an image berthd saved into berth's server and out of it (to
//     an OCI archive and to a directory), with the digests the server reports; berthd pulls
//     what skopeo pushed, and skopeo reads what berthd pushed.
//   - TestPodmanPull: podman pulls from berth's server an image docker pushed through
//     berthd: same image ID, same digest, same files.
//   - TestLogin: a server with --htpasswd: `docker login` with a wrong password is refused
//     with 401 and a clear message; without credentials push and pull are refused; after
//     login both work; after logout pull is refused again.
//   - TestBadInput: a manifest naming a blob the server no longer has, a blob corrupted on
//     the server, a digest mismatch on upload, a manifest naming a missing blob, unknown
//     media types, a push aborted by killing the docker CLI, and the server SIGKILLed in the
//     middle of a push: the spec's error codes, clear messages, and neither berthd nor the
//     server keeps anything half-written visible.
//
// Each test has its own berthd (test/berthtest: its own data root and network namespace),
// and runs berth's registry server (`berth registry serve`, built from this tree) in that
// namespace on 127.0.0.1, by PID, with its root under the daemon's directory; skopeo and
// podman run in the same namespace (nsenter), podman with a private store (test/engine).
// The test process reaches the server with a Go HTTP client whose sockets are made in that
// namespace. Pushes that must be interrupted go through a throttling TCP proxy (also in the
// namespace) so that the interruption lands in the middle of a layer on a loaded machine.
//
// skopeo and podman write a few fixed host paths (the blob info cache of containers/image):
// TestMain takes test/engine's host-wide lock, as the other packages that run these tools
// do, and removes those paths if the run created them.
//
// Needs root, the docker CLI, skopeo and podman (apt-get install skopeo podman;
// hack/install-deps.sh installs them).
package registryinterop_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth/internal/network"
	"berth/test/berthtest"
	"berth/test/engine"
)

var (
	// skipAll, when set, is why every test skips.
	skipAll string
	// work is the package's scratch directory (the berth binary).
	work string
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		skipAll = "the registry interop tests need root (berthd, network namespaces)"
		os.Exit(m.Run())
	}
	var err error
	if work, err = os.MkdirTemp("/var/tmp", "berth-regi-"); err != nil {
		fmt.Fprintln(os.Stderr, "registry_interop:", err)
		os.Exit(1)
	}
	unlock, err := engine.LockHost(func() {
		fmt.Fprintln(os.Stderr, "registry_interop: waiting for another run of the engine tests to finish")
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry_interop:", err)
		os.RemoveAll(work)
		os.Exit(1)
	}
	before := engine.SnapshotHostPaths()
	code := m.Run()
	for _, err := range before.Restore() {
		fmt.Fprintf(os.Stderr, "registry_interop: left %v\n", err)
	}
	unlock()
	os.RemoveAll(work)
	os.Exit(code)
}

// requireTools skips the test when not root or when a tool (an apt package of the same
// name) is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	if skipAll != "" {
		t.Skip(skipAll)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install %s)", tool, tool)
		}
	}
}

var (
	berthOnce sync.Once
	berthBin  string
	berthErr  error
)

// berthBinary builds the berth CLI (`berth registry serve`) from this tree, once per test
// binary, next to the binaries berthtest builds for berthd.
func berthBinary(t *testing.T) string {
	t.Helper()
	berthtest.Binaries(t)
	berthOnce.Do(func() {
		bin := filepath.Join(work, "berth")
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/berth")
		cmd.Dir = berthtest.Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			berthErr = fmt.Errorf("go build ./cmd/berth: %v\n%s", err, out)
			return
		}
		berthBin = bin
	})
	if berthErr != nil {
		t.Fatal(berthErr)
	}
	return berthBin
}

// dialIn dials from inside the network namespace at path.
func dialIn(path string) func(ctx context.Context, proto, addr string) (net.Conn, error) {
	return func(ctx context.Context, proto, addr string) (net.Conn, error) {
		var c net.Conn
		err := network.RunInNetNS(path, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, proto, addr)
			return err
		})
		return c, err
	}
}

// httpIn is an HTTP client whose connections start in d's network namespace.
func httpIn(d *berthtest.Daemon) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: dialIn(d.NetNS), DisableKeepAlives: true},
		Timeout:   60 * time.Second,
	}
}

// server is one `berth registry serve` in a berthd's network namespace, started by PID.
type server struct {
	t        *testing.T
	d        *berthtest.Daemon
	bin      string
	Addr     string // 127.0.0.1:port
	Root     string
	htpasswd string
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{}
	http     *http.Client
}

// startServer starts berth's registry server on 127.0.0.1:port in d's network namespace,
// with its root under d.Dir and, when htpasswd is set, basic authentication; it stops the
// server (by its PID) at the end of the test.
func startServer(t *testing.T, d *berthtest.Daemon, port int, htpasswd string) *server {
	t.Helper()
	s := &server{
		t: t, d: d, bin: berthBinary(t),
		Addr:     fmt.Sprintf("127.0.0.1:%d", port),
		Root:     filepath.Join(d.Dir, fmt.Sprintf("registry-%d", port)),
		htpasswd: htpasswd,
		logPath:  filepath.Join(d.Dir, fmt.Sprintf("registry-%d.log", port)),
		http:     httpIn(d),
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("registry %s log:\n%s", s.Addr, s.LogTail(15))
		}
	})
	s.Start()
	return s
}

// Start starts (or restarts, on the same root and address) the server and waits until it
// answers /v2/ (200, or 401 with htpasswd).
func (s *server) Start() {
	t := s.t
	t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := []string{"registry", "serve", "--addr", s.Addr, "--root", s.Root}
	if s.htpasswd != "" {
		args = append(args, "--htpasswd", s.htpasswd)
	}
	// nsenter joins the namespace and execs berth: the PID is the server's.
	cmd := s.d.HostCmd(context.Background(), s.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	want := http.StatusOK
	if s.htpasswd != "" {
		want = http.StatusUnauthorized
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := s.http.Get("http://" + s.Addr + "/v2/")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == want {
				return
			}
			t.Fatalf("registry /v2/ answered %d, want %d", res.StatusCode, want)
		}
		select {
		case <-done:
			t.Fatalf("berth registry serve exited at start:\n%s", s.LogTail(20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth registry serve not ready after 30 s: %v\n%s", err, s.LogTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill kills the server with SIGKILL (by its PID) and waits for it to be gone.
func (s *server) Kill() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
	default:
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// LogTail is the server's last n log lines.
func (s *server) LogTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// reply is an HTTP answer of the registry.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// Codes are the spec's error codes of the answer's error body.
func (r reply) Codes() []string {
	var body struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	json.Unmarshal(r.Body, &body)
	var out []string
	for _, e := range body.Errors {
		out = append(out, e.Code)
	}
	return out
}

func (r reply) String() string {
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
}

// Do sends a request to the server (path starts with /v2/, or is a Location it gave);
// hdr is header names and values.
func (s *server) Do(method, path string, body []byte, hdr ...string) reply {
	s.t.Helper()
	url := path
	if !strings.HasPrefix(path, "http") {
		url = "http://" + s.Addr + path
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{Status: res.StatusCode, Header: res.Header, Body: b}
}

// manifestAccept accepts every manifest type berth pushes.
const manifestAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"

// ManifestDigest is the digest the server reports for repo:ref (HEAD), "" when it has none.
func (s *server) ManifestDigest(repo, ref string) string {
	s.t.Helper()
	r := s.Do("HEAD", "/v2/"+repo+"/manifests/"+ref, nil, "Accept", manifestAccept)
	if r.Status != http.StatusOK {
		return ""
	}
	return r.Header.Get("Docker-Content-Digest")
}

// HasBlob tells whether repo has blob d (HEAD: 200 or 404; anything else fails the test).
func (s *server) HasBlob(repo, d string) bool {
	s.t.Helper()
	r := s.Do("HEAD", "/v2/"+repo+"/blobs/"+d, nil)
	switch r.Status {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	}
	s.t.Fatalf("HEAD blob %s of %s: %d", d, repo, r.Status)
	return false
}

// Ingest lists the server's unfinished blob writes (name: size).
func (s *server) Ingest() map[string]int64 {
	return dirSizes(filepath.Join(s.Root, "content", "ingest"))
}

// BlobStored tells whether the server's content store holds blob d (sha256:...).
func (s *server) BlobStored(d string) bool {
	_, err := os.Stat(filepath.Join(s.Root, "content", "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
	return err == nil
}

// dirSizes lists a directory's files and their sizes.
func dirSizes(dir string) map[string]int64 {
	out := map[string]int64{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			out[e.Name()] = fi.Size()
		}
	}
	return out
}

// storeState is what berthd's image store holds on disk: its blobs and its unfinished
// writes.
type storeState struct {
	Blobs  []string
	Ingest map[string]int64
}

// berthStore reads berthd's content store (<data root>/image/content).
func berthStore(d *berthtest.Daemon) storeState {
	root := filepath.Join(d.DataRoot, "image", "content")
	var st storeState
	for name := range dirSizes(filepath.Join(root, "blobs", "sha256")) {
		st.Blobs = append(st.Blobs, "sha256:"+name)
	}
	slices.Sort(st.Blobs)
	st.Ingest = dirSizes(filepath.Join(root, "ingest"))
	return st
}

// images lists berthd's images (docker images -a: ID and repository:tag), sorted.
func images(d *berthtest.Daemon) string {
	lines := strings.Split(d.Must("images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// pushRE matches the last line of a pushed tag: "<tag>: digest: sha256:... size: N".
var pushRE = regexp.MustCompile(`(?m)^(\S+): digest: (sha256:[0-9a-f]{64}) size: (\d+)$`)

// pushed is the digest `docker push` reported for tag ("" when none).
func pushed(out, tag string) string {
	for _, m := range pushRE.FindAllStringSubmatch(out, -1) {
		if m[1] == tag {
			return m[2]
		}
	}
	return ""
}

// push runs `docker push` and fails the test unless it succeeds; it returns stdout.
func push(t *testing.T, d *berthtest.Daemon, args ...string) string {
	t.Helper()
	out, errOut, code := d.Docker(append([]string{"push"}, args...)...)
	if code != 0 {
		t.Fatalf("docker push %s: exit %d\nstdout: %s\nstderr: %s\nberthd log:\n%s", strings.Join(args, " "), code, out, errOut, d.LogTail(3000))
	}
	return out
}

// tarFile is one regular file of a layer.
type tarFile struct {
	Name string
	Data []byte
}

// writeRootfs writes a tarball: busybox's root filesystem (berthtest.BusyboxTar) with
// files added, for `docker import`.
func writeRootfs(t *testing.T, path string, files ...tarFile) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	tr := tar.NewReader(bytes.NewReader(berthtest.BusyboxTar(t)))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	for _, file := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: file.Name, Mode: 0o644, Size: int64(len(file.Data)), ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(file.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// importImage imports busybox plus files as image ref (CMD ["sh"]).
func importImage(t *testing.T, d *berthtest.Daemon, ref string, files ...tarFile) {
	t.Helper()
	path := filepath.Join(d.Dir, "import.tar")
	writeRootfs(t, path, files...)
	defer os.Remove(path)
	d.Must("import", "--change", `CMD ["sh"]`, path, ref)
}

// randomBytes is n incompressible bytes (seeded: the same on every run).
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'b', 'e', 'r', 't', 'h'})
	r.Read(b)
	return b
}

// proxy is a TCP proxy in a berthd's network namespace, to a server there, that can slow
// down what clients send (a push) so that it can be interrupted in the middle.
type proxy struct {
	ln     net.Listener
	Addr   string
	target string
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	// rate limits client-to-server bytes per second (0: no limit).
	rate atomic.Int64
	mu   sync.Mutex
	live map[net.Conn]bool
	wg   sync.WaitGroup
}

// startProxy listens on 127.0.0.1:port in d's network namespace and forwards to target
// there; it is closed at the end of the test.
func startProxy(t *testing.T, d *berthtest.Daemon, port int, target string) *proxy {
	t.Helper()
	p := &proxy{target: target, dial: dialIn(d.NetNS), live: map[net.Conn]bool{}}
	err := network.RunInNetNS(d.NetNS, func() error {
		var err error
		p.ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.Addr = p.ln.Addr().String()
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c)
		}()
	}
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live == nil {
		return false
	}
	for _, c := range cs {
		p.live[c] = true
	}
	return true
}

func (p *proxy) forward(c net.Conn) {
	defer c.Close()
	up, err := p.dial(context.Background(), "tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(c, up) {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		p.copyThrottled(up, c)
		done <- struct{}{}
	}()
	go func() {
		io.Copy(c, up)
		done <- struct{}{}
	}()
	// Either side ending ends both: a killed server resets the client's connection.
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.live, c)
	delete(p.live, up)
	p.mu.Unlock()
}

// copyThrottled copies src to dst at no more than p.rate bytes a second.
func (p *proxy) copyThrottled(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if r := p.rate.Load(); r > 0 {
				time.Sleep(time.Duration(int64(n) * int64(time.Second) / r))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.live {
		c.Close()
	}
	p.live = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inspect is what `docker image inspect` says of an image (the parts the tests compare).
type inspect struct {
	ID          string `json:"Id"`
	RepoTags    []string
	RepoDigests []string
	Config      struct {
		Cmd        []string
		Env        []string
		WorkingDir string
	}
	RootFS struct{ Layers []string }
}

func inspectImage(t *testing.T, d *berthtest.Daemon, ref string) inspect {
	t.Helper()
	var out []inspect
	if err := json.Unmarshal([]byte(d.Must("image", "inspect", ref)), &out); err != nil || len(out) != 1 {
		t.Fatalf("docker image inspect %s: %v (%d images)", ref, err, len(out))
	}
	return out[0]
}
