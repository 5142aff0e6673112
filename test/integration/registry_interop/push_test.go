package registryinterop_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"berth/test/berthtest"
)

// buildApp builds a two-layer image (busybox, then a RUN that writes /marker) as ref.
func buildApp(t *testing.T, d *berthtest.Daemon, ref, marker string) {
	t.Helper()
	ctxDir := filepath.Join(d.Dir, "ctx-app")
	os.MkdirAll(ctxDir, 0o755)
	defer os.RemoveAll(ctxDir)
	df := "FROM busybox\nENV APP_MODE=pushed\nWORKDIR /srv\nRUN echo " + marker + " > /marker\nCMD [\"cat\", \"/marker\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Must("build", "-q", "-t", ref, ctxDir)
}

// TestDockerPushPull: the stock docker CLI pushes to berth's server through berthd and
// pulls back from it.
func TestDockerPushPull(t *testing.T) {
	requireTools(t)
	d := berthtest.Start(t, berthtest.Options{})
	s := startServer(t, d, 5000, "")
	d.Busybox("busybox")
	one := s.Addr + "/app/one"
	buildApp(t, d, one+":v1", "two-layers")
	orig := inspectImage(t, d, one+":v1")
	if len(orig.RootFS.Layers) != 2 {
		t.Fatalf("the test image has %d layers, want 2", len(orig.RootFS.Layers))
	}

	// First push: every layer is uploaded; the digest is the server's.
	out := push(t, d, one+":v1")
	if !strings.Contains(out, "The push refers to repository ["+one+"]") || strings.Count(out, ": Pushed") != 2 {
		t.Errorf("first push: want the repository line and 2 layers Pushed:\n%s", out)
	}
	dgst := pushed(out, "v1")
	if dgst == "" {
		t.Fatalf("first push: no \"v1: digest: ... size: N\" line:\n%s", out)
	}
	if got := s.ManifestDigest("app/one", "v1"); got != dgst {
		t.Errorf("the server has app/one:v1 at %q, docker push said %s", got, dgst)
	}
	if got := inspectImage(t, d, one+":v1").RepoDigests; !slices.Contains(got, one+"@"+dgst) {
		t.Errorf("RepoDigests %v lack %s@%s", got, one, dgst)
	}

	// Second push: nothing to upload, same digest.
	out = push(t, d, one+":v1")
	if strings.Count(out, ": Layer already exists") != 2 || strings.Contains(out, ": Pushed") || pushed(out, "v1") != dgst {
		t.Errorf("second push: want 2 layers already there and digest %s:\n%s", dgst, out)
	}

	// Another repository of the same server: the layers are mounted, not uploaded.
	two := s.Addr + "/app/two"
	d.Must("tag", one+":v1", two+":v1")
	out = push(t, d, two+":v1")
	if strings.Count(out, ": Mounted from app/one") != 2 || pushed(out, "v1") != dgst {
		t.Errorf("push to app/two: want 2 layers \"Mounted from app/one\" and digest %s:\n%s", dgst, out)
	}

	// --all-tags pushes every tag of the repository.
	d.Must("tag", one+":v1", one+":v2")
	out = push(t, d, "--all-tags", one)
	if pushed(out, "v1") != dgst || pushed(out, "v2") != dgst {
		t.Errorf("push --all-tags: want v1 and v2 at %s:\n%s", dgst, out)
	}
	r := s.Do("GET", "/v2/app/one/tags/list", nil)
	var tags struct {
		Name string
		Tags []string
	}
	if json.Unmarshal(r.Body, &tags); r.Status != http.StatusOK || tags.Name != "app/one" || !slices.Equal(tags.Tags, []string{"v1", "v2"}) {
		t.Errorf("tags of app/one: %s", r)
	}

	// Remove it here (and the build cache that keeps its RUN layer), pull it back: the same
	// image (config and layers), it runs.
	d.Must("rmi", one+":v1", one+":v2", two+":v1")
	d.Must("builder", "prune", "-a", "-f")
	if _, _, code := d.Docker("image", "inspect", one+":v1"); code == 0 {
		t.Fatal("rmi left the image")
	}
	out, errOut, code := d.Docker("pull", one+":v1")
	if code != 0 {
		t.Fatalf("docker pull: exit %d: %s\n%s", code, out, errOut)
	}
	// The busybox layer is still here (the busybox image); the RUN layer is downloaded.
	for _, want := range []string{": Already exists", ": Pull complete", "Digest: " + dgst, "Status: Downloaded newer image for " + one + ":v1"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker pull output lacks %q:\n%s", want, out)
		}
	}
	got := inspectImage(t, d, one+":v1")
	if got.ID != orig.ID || !slices.Equal(got.RootFS.Layers, orig.RootFS.Layers) {
		t.Errorf("pulled image %s (layers %v), pushed %s (layers %v)", got.ID, got.RootFS.Layers, orig.ID, orig.RootFS.Layers)
	}
	if !slices.Equal(got.Config.Env, orig.Config.Env) || !slices.Equal(got.Config.Cmd, orig.Config.Cmd) || got.Config.WorkingDir != "/srv" {
		t.Errorf("pulled config: Env %v Cmd %v WorkingDir %q; pushed Env %v Cmd %v", got.Config.Env, got.Config.Cmd, got.Config.WorkingDir, orig.Config.Env, orig.Config.Cmd)
	}
	if !slices.Contains(got.RepoDigests, one+"@"+dgst) {
		t.Errorf("pulled RepoDigests %v lack %s@%s", got.RepoDigests, one, dgst)
	}
	if out := d.Must("run", "--rm", one+":v1"); out != "two-layers" {
		t.Errorf("run the pulled image: %q", out)
	}
	if out := d.Must("run", "--rm", one+":v1", "sh", "-c", "echo $APP_MODE $(pwd)"); out != "pushed /srv" {
		t.Errorf("the pulled image's Env and WorkingDir: %q", out)
	}
	d.Must("rmi", one+":v1")
}

// writeHtpasswd writes an htpasswd file with one user (bcrypt, as htpasswd -B).
func writeHtpasswd(t *testing.T, path, user, password string) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(user+":"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLogin: `docker login` against a server with htpasswd, and push and pull with and
// without credentials.
func TestLogin(t *testing.T) {
	requireTools(t)
	d := berthtest.Start(t, berthtest.Options{})
	pw := filepath.Join(d.Dir, "htpasswd")
	writeHtpasswd(t, pw, "alice", "s3cret-pass")
	s := startServer(t, d, 5001, pw)
	ref := s.Addr + "/private/app:v1"
	importImage(t, d, ref, tarFile{Name: "login-marker", Data: []byte("behind a password\n")})
	config := filepath.Join(d.Dir, "cli", "config.json")

	// A wrong password: exit 1, 401, and the registry's address.
	_, errOut, code := d.DockerIn([]byte("wrong\n"), "login", "-u", "alice", "--password-stdin", s.Addr)
	t.Logf("docker login with a wrong password: exit %d: %s", code, strings.TrimSpace(errOut))
	if code != 1 || !strings.Contains(errOut, "401 Unauthorized") || !strings.Contains(errOut, "login attempt to http://"+s.Addr+"/v2/ failed") {
		t.Errorf("login with a wrong password: exit %d, want 1 and a 401 message naming http://%s/v2/:\n%s", code, s.Addr, errOut)
	}
	if b, _ := os.ReadFile(config); strings.Contains(string(b), s.Addr) {
		t.Errorf("a refused login was stored in %s:\n%s", config, b)
	}

	// No credentials: push and pull are refused, with the registry's reason.
	out, errOut, code := d.Docker("push", ref)
	t.Logf("docker push without login: exit %d: %s", code, strings.TrimSpace(out+errOut))
	if code == 0 || !strings.Contains(strings.ToLower(out+errOut), "unauthorized") {
		t.Errorf("push without login: exit %d, want a failure saying unauthorized:\n%s\n%s", code, out, errOut)
	}
	if s.ManifestDigest("private/app", "v1") != "" {
		t.Error("the registry answered HEAD without credentials")
	}
	_, errOut, code = d.Docker("pull", s.Addr+"/private/app:nothing")
	t.Logf("docker pull without login: exit %d: %s", code, strings.TrimSpace(errOut))
	if code == 0 || !strings.Contains(errOut, "pull access denied") {
		t.Errorf("pull without login: exit %d, want \"pull access denied\":\n%s", code, errOut)
	}

	// The right password: stored by the CLI, then push and pull work.
	out, errOut, code = d.DockerIn([]byte("s3cret-pass\n"), "login", "-u", "alice", "--password-stdin", s.Addr)
	if code != 0 || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("login: exit %d:\n%s\n%s\nberthd log:\n%s", code, out, errOut, d.LogTail(3000))
	}
	if b, _ := os.ReadFile(config); !strings.Contains(string(b), `"`+s.Addr+`"`) {
		t.Errorf("%s lacks the login to %s:\n%s", config, s.Addr, b)
	}
	out = push(t, d, ref)
	dgst := pushed(out, "v1")
	if dgst == "" || !strings.Contains(out, ": Pushed") {
		t.Fatalf("push after login:\n%s", out)
	}
	d.Must("rmi", ref)
	out, errOut, code = d.Docker("pull", ref)
	if code != 0 || !strings.Contains(out, "Digest: "+dgst) {
		t.Fatalf("pull after login: exit %d:\n%s\n%s", code, out, errOut)
	}
	if got := d.Must("run", "--rm", ref, "cat", "/login-marker"); got != "behind a password" {
		t.Errorf("run the pulled image: %q", got)
	}
	d.Must("rmi", ref)

	// Logged out: refused again.
	d.Must("logout", s.Addr)
	_, errOut, code = d.Docker("pull", ref)
	if code == 0 || !strings.Contains(errOut, "pull access denied") {
		t.Errorf("pull after logout: exit %d, want \"pull access denied\":\n%s", code, errOut)
	}
}
