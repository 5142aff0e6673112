package build_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth/test/imagetest"
)

// toolchain is the image with busybox and the host's C toolchain (imagetest.ToolchainTar).
const toolchain = "toolchain"

const helloC = `#include <stdio.h>
#include "greeting.h"

int main(void) {
	printf("%s from a static C program\n", GREETING);
	return 0;
}
`

const multiStageDockerfile = `FROM toolchain AS compile
WORKDIR /src
COPY greeting.h ./
COPY hello.c ./
RUN gcc -static -O2 -o /hello hello.c

FROM scratch AS bare
COPY --from=compile /hello /hello
ENTRYPOINT ["/hello"]

FROM busybox
RUN echo prepared > /prepared
COPY --from=compile /hello /usr/local/bin/hello
CMD ["hello"]
`

// TestMultiStage pins Docker's multi-stage build and its layer cache: a static C program
// compiled in one stage is copied (COPY --from=<stage>) into a busybox stage and a scratch
// stage, and both images run it. A rebuild with no change hits the cache in every step after
// FROM (" ---> Using cache") and makes the same image; after a change to one copied file,
// the steps before that COPY still hit the cache and the COPY and every step that depends on
// it run again, in this stage and in the stages that copy from it, while the other stages'
// independent steps hit it.
//
// The default target (the busybox stage) does not need the scratch stage: Docker's classic
// builder builds it anyway, berth skips it (as BuildKit does). The step checks accept both.
func TestMultiStage(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	d.importTar(t, imagetest.ToolchainTar(t), toolchain, `CMD ["sh"]`)
	d.clean(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": multiStageDockerfile,
		"greeting.h": "#define GREETING \"hello\"\n",
		"hello.c":    helloC,
	})

	out := d.mustBuild(t, ctx, "-t", "bt/hello")
	if strings.Contains(out, "Using cache") {
		t.Errorf("the first build used the cache:\n%s", out)
	}
	equal(t, "docker run bt/hello (busybox stage)", d.must(t, "run", "--rm", "--network", "none", "bt/hello"), "hello from a static C program")
	equal(t, "the busybox stage's own step", d.cat(t, "bt/hello", "/prepared"), "prepared")
	d.mustBuild(t, ctx, "-t", "bt/hello-bare", "--target", "bare")
	equal(t, "docker run bt/hello-bare (scratch stage)", d.must(t, "run", "--rm", "--network", "none", "bt/hello-bare"), "hello from a static C program")
	equal(t, "layers of the scratch stage", d.inspect(t, "bt/hello-bare", "{{len .RootFS.Layers}}"), "1")
	ids := map[string]string{}
	for _, img := range []string{"bt/hello", "bt/hello-bare"} {
		ids[img] = d.inspect(t, img, "{{.Id}}")
	}

	// No change: every step but FROM is a cache hit, and the images are the same.
	for _, target := range [][]string{{"-t", "bt/hello"}, {"-t", "bt/hello-bare", "--target", "bare"}} {
		out = d.mustBuild(t, ctx, target...)
		ss := steps(out)
		if len(ss) < 8 {
			t.Fatalf("the rebuild %q has %d steps, want at least 8:\n%s", target, len(ss), out)
		}
		for _, s := range ss {
			if !strings.HasPrefix(s.instruction, "FROM ") && !s.cached() {
				t.Errorf("rebuild %q without change: step %q did not use the cache:%s", target, s.instruction, s.output)
			}
		}
		equal(t, "image ID of the rebuild without change", d.inspect(t, target[1], "{{.Id}}"), ids[target[1]])
	}

	// hello.c changes (the second COPY): the compile stage reruns from that COPY on, the
	// stages that copy its result rerun from their COPY --from on.
	if err := os.WriteFile(filepath.Join(ctx, "hello.c"), []byte(strings.Replace(helloC, "from a static", "again from a static", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	compile := []want{
		{"FROM toolchain AS compile", false, true},
		{"WORKDIR /src", true, true},
		{"COPY greeting.h ./", true, true},
		{"COPY hello.c ./", false, true},
		{"RUN gcc -static -O2 -o /hello hello.c", false, true},
	}
	out = d.mustBuild(t, ctx, "-t", "bt/hello")
	ss := steps(out)
	bareBuilt := slices.ContainsFunc(ss, func(s step) bool { return s.instruction == "COPY --from=compile /hello /hello" })
	checkSteps(t, "the build after a change to hello.c", ss, append(compile,
		// Not needed by the default target: berth does not build it.
		want{"FROM scratch AS bare", false, false},
		want{"COPY --from=compile /hello /hello", false, false},
		want{`ENTRYPOINT ["/hello"]`, false, false},
		want{"FROM busybox", false, true},
		want{"RUN echo prepared > /prepared", true, true},
		want{"COPY --from=compile /hello /usr/local/bin/hello", false, true},
		want{`CMD ["hello"]`, false, true},
	))
	equal(t, "docker run bt/hello after the change", d.must(t, "run", "--rm", "--network", "none", "bt/hello"), "hello again from a static C program")

	// The scratch stage after the change: the compile stage is in the cache now, and the
	// scratch stage's steps are too if the default build made them (dockerd), not if it
	// skipped the stage (berth).
	out = d.mustBuild(t, ctx, "-t", "bt/hello-bare", "--target", "bare")
	checkSteps(t, "the scratch stage after a change to hello.c", steps(out), []want{
		{"FROM toolchain AS compile", false, true},
		{"WORKDIR /src", true, true},
		{"COPY greeting.h ./", true, true},
		{"COPY hello.c ./", true, true},
		{"RUN gcc -static -O2 -o /hello hello.c", true, true},
		{"FROM scratch AS bare", false, true},
		{"COPY --from=compile /hello /hello", bareBuilt, true},
		{`ENTRYPOINT ["/hello"]`, bareBuilt, true},
	})
	equal(t, "docker run bt/hello-bare after the change", d.must(t, "run", "--rm", "--network", "none", "bt/hello-bare"), "hello again from a static C program")
}

// want is a step a build's output should show: its instruction, whether it hits the cache,
// and whether it must be there at all (a step of a stage the target does not need may be
// skipped).
type want struct {
	instruction string
	cached      bool
	required    bool
}

// checkSteps compares a build's steps with the wanted ones, in order; FROM steps are not
// checked for cache hits.
func checkSteps(t *testing.T, what string, got []step, wants []want) {
	t.Helper()
	i := 0
	for _, w := range wants {
		if i < len(got) && strings.EqualFold(got[i].instruction, w.instruction) {
			s := got[i]
			i++
			if !strings.HasPrefix(w.instruction, "FROM ") && s.cached() != w.cached {
				t.Errorf("%s: step %q: cache hit %v, want %v:%s", what, s.instruction, s.cached(), w.cached, s.output)
			}
			continue
		}
		if w.required {
			t.Errorf("%s: no step %q where expected", what, w.instruction)
		}
	}
	if i != len(got) {
		var rest []string
		for _, s := range got[i:] {
			rest = append(rest, s.instruction)
		}
		t.Errorf("%s: unexpected steps %q", what, rest)
	}
}
