package build_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput checks builds that must fail: the build exits non-zero, the error says what
// and where (the Dockerfile line), and the daemon has no new container, image or tag
// afterwards. And symbolic links in the context that point out of it: COPY copies the link
// itself, never the host file it points to.
func TestBadInput(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	// outside is a host file next to the contexts, which no build may read.
	secret := fmt.Sprintf("HOST-SECRET-%d", os.Getpid())
	for _, tc := range []struct {
		name string
		// dockerfile is the Dockerfile; line, the line the error must name.
		dockerfile string
		line       int
		// context adds to the context directory.
		context func(t *testing.T, ctx string)
		// wants are substrings of the error.
		wants []string
		// code is docker build's exit code when not 1.
		code int
		// dockerdNoLine: Docker's classic builder does not name the line of this error
		// (berth does, in every error).
		dockerdNoLine bool
		// dockerdLeaves: Docker's classic builder keeps the failed RUN's container and the
		// images of the steps before it (berth removes the container and does not list
		// per-step images in images -a).
		dockerdLeaves bool
	}{{
		// An unknown instruction is a parse error: no step runs.
		name:       "unknown_instruction",
		dockerfile: "FROM busybox\nRUN true\nRUNN echo typo\n",
		line:       3,
		wants:      []string{"RUNN"},
	}, {
		// A RUN whose command exits non-zero fails the build with the command and its code,
		// which is docker build's exit code too (the error message carries it).
		name:          "failing_RUN",
		dockerfile:    "FROM busybox\nRUN true\n\nRUN exit 3\nRUN echo never\n",
		line:          4,
		wants:         []string{"exit 3"},
		code:          3,
		dockerdNoLine: true,
		dockerdLeaves: true,
	}, {
		// A COPY source missing from the context.
		name:          "missing_COPY_source",
		dockerfile:    "FROM busybox\nCOPY nothere.txt /x\n",
		line:          2,
		wants:         []string{"nothere.txt"},
		dockerdNoLine: true,
	}, {
		// A COPY source above the context is refused ("forbidden path outside the build
		// context").
		name:          "COPY_parent_path",
		dockerfile:    "FROM busybox\nCOPY ../outside.txt /x\n",
		line:          2,
		wants:         []string{"outside.txt"},
		dockerdNoLine: true,
	}, {
		// A path through a symbolic link to a host directory is resolved inside the context
		// (linkdir -> /etc means <context>/etc): the host's /etc/passwd is not found.
		name:       "COPY_through_link_to_host_dir",
		dockerfile: "FROM busybox\nCOPY linkdir/passwd /x\n",
		line:       2,
		context: func(t *testing.T, ctx string) {
			if err := os.Symlink("/etc", filepath.Join(ctx, "linkdir")); err != nil {
				t.Fatal(err)
			}
		},
		wants:         []string{"passwd"},
		dockerdNoLine: true,
	}, {
		// A symbolic link named as the source is followed inside the context: an absolute
		// link to /etc/passwd means <context>/etc/passwd, not found; the host's file is not
		// copied.
		name:       "COPY_absolute_link_out_of_context",
		dockerfile: "FROM busybox\nCOPY abs /x\n",
		line:       2,
		context: func(t *testing.T, ctx string) {
			if err := os.Symlink("/etc/passwd", filepath.Join(ctx, "abs")); err != nil {
				t.Fatal(err)
			}
		},
		wants:         []string{"abs"},
		dockerdNoLine: true,
	}, {
		// A relative link through .. is followed inside the context too: ../outside.txt
		// stops at the context's root (<context>/outside.txt, not found); the host file
		// next to the context, which exists, is not copied.
		name:       "COPY_relative_link_out_of_context",
		dockerfile: "FROM busybox\nCOPY rel /x\n",
		line:       2,
		context: func(t *testing.T, ctx string) {
			if err := os.Symlink("../outside.txt", filepath.Join(ctx, "rel")); err != nil {
				t.Fatal(err)
			}
		},
		wants:         []string{"rel"},
		dockerdNoLine: true,
	}, {
		// Several sources need a destination directory (ending in /).
		name:          "COPY_several_sources_to_file",
		dockerfile:    "FROM busybox\nCOPY a.txt b.txt /notadir\n",
		line:          2,
		context:       files("a.txt", "b.txt"),
		wants:         []string{"directory"},
		dockerdNoLine: true,
	}, {
		// ADD of a URL nothing answers at fails the build and names the URL.
		name:          "ADD_unreachable_URL",
		dockerfile:    "FROM busybox\nADD http://127.0.0.1:1/file.txt /f\n",
		line:          2,
		wants:         []string{"127.0.0.1:1"},
		dockerdNoLine: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d.clean(t)
			ctx := writeContext(t, map[string]string{"Dockerfile": tc.dockerfile})
			if err := os.WriteFile(filepath.Join(filepath.Dir(ctx), "outside.txt"), []byte(secret), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.context != nil {
				tc.context(t, ctx)
			}
			before := d.state(t)
			r := d.failBuild(t, nil, ctx, "-t", "bt/bad")
			if want := max(tc.code, 1); r.code != want {
				t.Errorf("docker build exited %d, want %d", r.code, want)
			}
			stderr := r.stderr
			for _, w := range tc.wants {
				if !strings.Contains(stderr, w) {
					t.Errorf("the error does not mention %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, secret) {
				t.Errorf("the error shows the content of a host file outside the context:\n%s", stderr)
			}
			if !(d.name == "dockerd" && tc.dockerdNoLine) && !lineRef(stderr, tc.line) {
				t.Errorf("the error does not name Dockerfile line %d:\n%s", tc.line, stderr)
			}
			leaves := d.name == "dockerd" && tc.dockerdLeaves
			d.nothingNew(t, before, !leaves, !leaves)
		})
	}

	// Symbolic links inside a copied directory are copied as links, even those that point
	// out of the context (absolute, or relative through ..): in the image they point into
	// the image's own filesystem, and the host files they named are nowhere in it. A link
	// named as COPY's source is followed, inside the context: an absolute link to
	// /inscope.txt copies <context>/inscope.txt.
	t.Run("COPY_links_out_of_context", func(t *testing.T) {
		d.clean(t)
		ctx := writeContext(t, map[string]string{
			"Dockerfile":  "FROM busybox\nCOPY dir /links/\nCOPY toinscope /resolved\n",
			"inscope.txt": "in scope",
			"dir/":        "",
		})
		if err := os.WriteFile(filepath.Join(filepath.Dir(ctx), "outside.txt"), []byte(secret), 0o644); err != nil {
			t.Fatal(err)
		}
		for link, target := range map[string]string{"dir/abs": "/etc/passwd", "dir/rel": "../../outside.txt", "toinscope": "/inscope.txt"} {
			if err := os.Symlink(target, filepath.Join(ctx, link)); err != nil {
				t.Fatal(err)
			}
		}
		d.mustBuild(t, ctx, "-t", "bt/links")
		equal(t, "the copied links", d.runIn(t, "bt/links", "sh", "-c", "readlink /links/abs; readlink /links/rel; cat /links/rel 2>/dev/null || echo dangling"),
			"/etc/passwd\n../../outside.txt\ndangling")
		equal(t, "the image's /etc/passwd through the link", d.cat(t, "bt/links", "/links/abs"), d.cat(t, base, "/etc/passwd"))
		equal(t, "a link named as the source", d.runIn(t, "bt/links", "sh", "-c", "test -L /resolved && echo link; cat /resolved"), "in scope")
		equal(t, "files of the image with the host file's content", d.runIn(t, "bt/links", "sh", "-c", "find / -xdev -type f -exec grep -l "+secret+" {} + ; true"), "")
	})
}

// files makes files in the context, each with its name as content.
func files(names ...string) func(*testing.T, string) {
	return func(t *testing.T, ctx string) {
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(ctx, n), []byte(n), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
