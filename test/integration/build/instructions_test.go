package build_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstructions checks each Dockerfile instruction's effect on the built image: its config
// (docker image inspect) or its filesystem (docker run ... cat), one subtest per instruction,
// against one daemon.
func TestInstructions(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T, *daemon)
	}{
		{"FROM", testFrom},
		{"RUN", testRun},
		{"CMD_ENTRYPOINT", testCmdEntrypoint},
		{"ENV", testEnv},
		{"ARG", testArg},
		{"ARG_scope", testArgScope},
		{"LABEL", testLabel},
		{"EXPOSE", testExpose},
		{"WORKDIR", testWorkdir},
		{"USER", testUser},
		{"COPY", testCopy},
		{"COPY_chmod", testCopyChmod},
		{"ADD", testAdd},
		{"VOLUME", testVolume},
		{"STOPSIGNAL", testStopSignal},
		{"HEALTHCHECK", testHealthcheck},
		{"ONBUILD", testOnbuild},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.clean(t)
			tc.test(t, d)
		})
	}
}

// testFrom pins FROM: an ARG declared before the first FROM is usable in FROM (its default,
// or --build-arg's value); a stage named with AS is a base for a later stage; FROM scratch
// starts from nothing (one layer, no command); a Dockerfile of only FROM yields the base
// image itself.
func testFrom(t *testing.T, d *daemon) {
	d.mustBuild(t, dockerfile(t, "FROM busybox\nRUN echo alt > /alt\n"), "-t", "bt/alt")
	ctx := dockerfile(t, `ARG BASE=busybox
FROM ${BASE} AS first
RUN echo first > /stage
FROM first AS second
RUN echo second >> /stage
FROM scratch
COPY --from=second /stage /stage
`)
	d.mustBuild(t, ctx, "-t", "bt/from")
	equal(t, "/stage of the scratch stage", d.fileOf(t, "bt/from", "/stage"), "first\nsecond\n")
	equal(t, "layers of the scratch stage", d.inspect(t, "bt/from", "{{len .RootFS.Layers}}"), "1")
	equal(t, "Cmd of the scratch stage", d.inspect(t, "bt/from", "{{json .Config.Cmd}}"), "null")

	only := dockerfile(t, "ARG BASE=busybox\nFROM $BASE\n")
	d.mustBuild(t, only, "-t", "bt/from-only")
	equal(t, "image ID of a Dockerfile of only FROM busybox", d.inspect(t, "bt/from-only", "{{.Id}}"), d.inspect(t, base, "{{.Id}}"))
	d.mustBuild(t, only, "-t", "bt/from-arg", "--build-arg", "BASE=bt/alt")
	equal(t, "FROM $BASE with --build-arg BASE=bt/alt: /alt", d.cat(t, "bt/from-arg", "/alt"), "alt")
}

// testRun pins RUN: the shell form runs through /bin/sh -c (variables expand, HOME is the
// user's home); the exec form runs its argv without a shell (no expansion); SHELL changes
// the shell of later shell-form RUNs and of shell-form CMDs, and is kept in the config.
func testRun(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox
RUN echo "shell form, HOME=$HOME" > /shell
RUN ["/bin/sh", "-c", "echo \"exec form, arg=$1\" > /exec", "sh", "$HOME"]
RUN printf '#!/bin/sh\necho "myshell $*" >> /myshell.log\nexec /bin/sh "$@"\n' > /myshell && chmod 755 /myshell
SHELL ["/myshell", "-c"]
RUN echo via-shell > /via
CMD echo from-cmd
`)
	d.mustBuild(t, ctx, "-t", "bt/run")
	equal(t, "shell-form RUN", d.cat(t, "bt/run", "/shell"), "shell form, HOME=/root")
	equal(t, "exec-form RUN", d.cat(t, "bt/run", "/exec"), "exec form, arg=$HOME")
	equal(t, "RUN after SHELL", d.cat(t, "bt/run", "/via"), "via-shell")
	equal(t, "the SHELL's log", d.cat(t, "bt/run", "/myshell.log"), "myshell -c echo via-shell > /via")
	equal(t, "Config.Shell", d.inspect(t, "bt/run", "{{json .Config.Shell}}"), `["/myshell","-c"]`)
	equal(t, "Config.Cmd of a shell-form CMD after SHELL", d.inspect(t, "bt/run", "{{json .Config.Cmd}}"), `["/myshell","-c","echo from-cmd"]`)
}

// testCmdEntrypoint pins CMD and ENTRYPOINT: exec and shell forms in the config; an
// ENTRYPOINT resets the CMD inherited from the base image (busybox's ["sh"]); CMD gives the
// entrypoint's default arguments, which docker run's arguments replace.
func testCmdEntrypoint(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox AS reset
ENTRYPOINT ["echo", "ep"]

FROM busybox AS both
ENTRYPOINT ["echo", "ep"]
CMD ["cmd-arg"]

FROM busybox AS shell
ENTRYPOINT echo shell-ep
CMD echo $HOME
`)
	d.mustBuild(t, ctx, "-t", "bt/ep-reset", "--target", "reset")
	equal(t, "Entrypoint", d.inspect(t, "bt/ep-reset", "{{json .Config.Entrypoint}}"), `["echo","ep"]`)
	equal(t, "Cmd after ENTRYPOINT (the base's CMD is reset)", d.inspect(t, "bt/ep-reset", "{{json .Config.Cmd}}"), "null")
	equal(t, "docker run", d.runIn(t, "bt/ep-reset"), "ep")

	d.mustBuild(t, ctx, "-t", "bt/ep-both", "--target", "both")
	equal(t, "Cmd", d.inspect(t, "bt/ep-both", "{{json .Config.Cmd}}"), `["cmd-arg"]`)
	equal(t, "docker run", d.runIn(t, "bt/ep-both"), "ep cmd-arg")
	equal(t, "docker run with arguments", d.runIn(t, "bt/ep-both", "given"), "ep given")

	d.mustBuild(t, ctx, "-t", "bt/ep-shell")
	equal(t, "shell-form Entrypoint", d.inspect(t, "bt/ep-shell", "{{json .Config.Entrypoint}}"), `["/bin/sh","-c","echo shell-ep"]`)
	equal(t, "shell-form Cmd", d.inspect(t, "bt/ep-shell", "{{json .Config.Cmd}}"), `["/bin/sh","-c","echo $HOME"]`)
	equal(t, "docker run of a shell-form ENTRYPOINT (CMD ignored)", d.runIn(t, "bt/ep-shell"), "shell-ep")
}

// envOf is the image's Env without PATH (which a builder may add).
func envOf(t *testing.T, d *daemon, image string) string {
	t.Helper()
	var env []string
	for _, e := range strings.Split(d.inspect(t, image, `{{range .Config.Env}}{{println .}}{{end}}`), "\n") {
		if e != "" && !strings.HasPrefix(e, "PATH=") {
			env = append(env, e)
		}
	}
	return strings.Join(env, "\n")
}

// testEnv pins ENV: variables are kept in the config and seen by RUN; within one ENV
// instruction a ${VAR} expands to its value from before the instruction (ENV A=1 B=${A}2
// gives B=2); ${VAR:-default}, ${VAR:+alt} and \$ escapes; the old "ENV KEY value with
// spaces" form.
func testEnv(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox
ENV A=1 B=${A}2
ENV C=${A}3 D="two words" E=\$A
ENV F ${D:-unset}-${NOPE:-dflt}-${A:+set}${NOPE:+never}
RUN echo "$A|$B|$C|$D|$E|$F" > /env
`)
	d.mustBuild(t, ctx, "-t", "bt/env")
	equal(t, "variables seen by RUN", d.cat(t, "bt/env", "/env"), "1|2|13|two words|$A|two words-dflt-set")
	equal(t, "Config.Env (without PATH)", envOf(t, d, "bt/env"), "A=1\nB=2\nC=13\nD=two words\nE=$A\nF=two words-dflt-set")
	equal(t, "docker run env", d.runIn(t, "bt/env", "sh", "-c", `echo "$C|$F"`), "13|two words-dflt-set")
}

// testArg pins ARG and --build-arg: an ARG's default, --build-arg overriding it, ARG values
// usable in ENV, not kept in the image's Env; the predefined proxy args (HTTP_PROXY...) are
// seen by RUN without an ARG but kept neither in the Env nor in the history; a --build-arg
// no ARG declares is not set, and the build warns that it was not consumed.
func testArg(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox
ARG V1
ARG V2=default2
ARG V3=default3
RUN echo "$V1|$V2|$V3|$HTTP_PROXY|$UNDECLARED" > /args
ENV FROMARG=$V1-$V3
`)
	r := d.build(t, nil, ctx, "-t", "bt/arg", "--build-arg", "V1=given", "--build-arg", "V3=over",
		"--build-arg", "HTTP_PROXY=http://proxy.invalid:3128", "--build-arg", "UNDECLARED=x")
	if r.code != 0 {
		t.Fatalf("%v\n%s", r, d.logTail())
	}
	if out := r.stdout + r.stderr; !strings.Contains(out, "UNDECLARED") || !strings.Contains(out, "not consumed") {
		t.Errorf("no warning that --build-arg UNDECLARED was not consumed:\n%s", out)
	}
	equal(t, "ARG values seen by RUN", d.cat(t, "bt/arg", "/args"), "given|default2|over|http://proxy.invalid:3128|")
	equal(t, "Config.Env (without PATH)", envOf(t, d, "bt/arg"), "FROMARG=given-over")
	history := d.must(t, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "bt/arg")
	if strings.Contains(history, "proxy.invalid") {
		t.Errorf("the HTTP_PROXY build arg is in the image's history:\n%s", history)
	}
	if inspect := d.must(t, "image", "inspect", "bt/arg"); strings.Contains(inspect, "proxy.invalid") {
		t.Errorf("the HTTP_PROXY build arg is in the image's config:\n%s", inspect)
	}
}

// testArgScope pins ARG scoping: an ARG declared before the first FROM is visible only in
// the stages that declare it again (with its global default, or --build-arg's value); an ARG
// declared in a stage ends with that stage (a stage built FROM it does not see it); a
// stage's own default replaces the global one.
func testArgScope(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `ARG GLOBAL=global-value
ARG OVERRIDDEN=global
FROM busybox AS a
ARG STAGE_A=only-in-a
RUN echo "a:[$GLOBAL][$STAGE_A][$OVERRIDDEN]" > /a
FROM a
ARG GLOBAL
ARG OVERRIDDEN=local
RUN echo "b:[$GLOBAL][$STAGE_A][$OVERRIDDEN]" > /b
`)
	d.mustBuild(t, ctx, "-t", "bt/argscope")
	equal(t, "stage a (no re-declaration)", d.cat(t, "bt/argscope", "/a"), "a:[][only-in-a][]")
	equal(t, "stage b (re-declared)", d.cat(t, "bt/argscope", "/b"), "b:[global-value][][local]")
	d.mustBuild(t, ctx, "-t", "bt/argscope2", "--build-arg", "GLOBAL=from-cli", "--build-arg", "OVERRIDDEN=cli")
	equal(t, "stage a with --build-arg", d.cat(t, "bt/argscope2", "/a"), "a:[][only-in-a][]")
	equal(t, "stage b with --build-arg", d.cat(t, "bt/argscope2", "/b"), "b:[from-cli][][cli]")
}

// testLabel pins LABEL: several labels per instruction, quoted keys and values, line
// continuations, ENV expansion, and labels inherited from the base stage.
func testLabel(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox AS parent
LABEL inherited=yes replaced=old
FROM parent
ENV V=expanded
LABEL a=1 "b c"="d e"
LABEL multi.line="x" \
      other=$V
LABEL replaced=new
`)
	d.mustBuild(t, ctx, "-t", "bt/label")
	equal(t, "Config.Labels", d.inspect(t, "bt/label", "{{json .Config.Labels}}"),
		`{"a":"1","b c":"d e","inherited":"yes","multi.line":"x","other":"expanded","replaced":"new"}`)
}

// testExpose pins EXPOSE: ports default to tcp, /udp is kept, a range is every port in it,
// and ENV expands.
func testExpose(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox
ENV PORT=9000
EXPOSE 80 53/udp 8080/tcp
EXPOSE ${PORT} 7000-7001
`)
	d.mustBuild(t, ctx, "-t", "bt/expose")
	equal(t, "Config.ExposedPorts", d.inspect(t, "bt/expose", "{{json .Config.ExposedPorts}}"),
		`{"53/udp":{},"7000/tcp":{},"7001/tcp":{},"80/tcp":{},"8080/tcp":{},"9000/tcp":{}}`)
}

// testWorkdir pins WORKDIR: a relative WORKDIR is relative to the previous one, ENV expands,
// RUN runs there, the directory is made even when no step writes to it, and the last one is
// the image's WorkingDir.
func testWorkdir(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox
ENV DIR=/a
WORKDIR $DIR
WORKDIR b
WORKDIR c
RUN pwd > /pwd
WORKDIR /made/by/workdir
`)
	d.mustBuild(t, ctx, "-t", "bt/workdir")
	equal(t, "RUN pwd", d.cat(t, "bt/workdir", "/pwd"), "/a/b/c")
	equal(t, "Config.WorkingDir", d.inspect(t, "bt/workdir", "{{.Config.WorkingDir}}"), "/made/by/workdir")
	equal(t, "docker run pwd", d.runIn(t, "bt/workdir", "pwd"), "/made/by/workdir")
}

// testUser pins USER: a name from the image's /etc/passwd or uid:gid; later RUNs run as that
// user (id -u, id -g, the owner of what they write); the last one is the image's User.
func testUser(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox
RUN echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group
USER app
RUN id -u > /tmp/by-name && id -g >> /tmp/by-name
USER 1234:5678
RUN id -u > /tmp/by-number && id -g >> /tmp/by-number
`)
	d.mustBuild(t, ctx, "-t", "bt/user")
	equal(t, "RUN id after USER app", d.cat(t, "bt/user", "/tmp/by-name"), "1000\n1000")
	equal(t, "RUN id after USER 1234:5678", d.cat(t, "bt/user", "/tmp/by-number"), "1234\n5678")
	equal(t, "owner of a file RUN wrote", d.runIn(t, "bt/user", "stat", "-c", "%u:%g", "/tmp/by-number"), "1234:5678")
	equal(t, "Config.User", d.inspect(t, "bt/user", "{{.Config.User}}"), "1234:5678")
	equal(t, "docker run id -u", d.runIn(t, "bt/user", "id", "-u"), "1234")
}

// testCopy pins COPY: globs; a directory source copies its contents; several sources into a
// directory ending in /; the file mode is kept and the owner is root (whatever the owner in
// the context, and whatever USER says) unless --chown, which also owns the directories it
// makes; --from a stage by name or by index and --from an image.
func testCopy(t *testing.T, d *daemon) {
	d.mustBuild(t, dockerfile(t, "FROM busybox\nRUN echo in-image > /in-image\n"), "-t", "bt/copysrc")
	ctx := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox AS src
RUN mkdir /from && echo from-stage > /from/f
FROM busybox
COPY *.txt /globbed/
COPY dir /dircontents/
COPY dir/sub/d.txt dir/top.txt /two/
COPY exec.sh /exec.sh
COPY --from=src /from/f /from-stage
COPY --from=0 /from/f /from-index
COPY --from=bt/copysrc /in-image /from-image
COPY --chown=1234:5678 a.txt /owned
COPY --chown=1234:5678 dir /owneddir/
USER 1234
COPY a.txt /afteruser
`,
		"a.txt":         "a",
		"b.txt":         "b",
		"c.md":          "c",
		"dir/top.txt":   "top",
		"dir/sub/d.txt": "d",
		"exec.sh":       "#!/bin/sh\n",
	})
	if err := os.Chmod(filepath.Join(ctx, "exec.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(ctx, "a.txt"), 4321, 4321); err != nil {
		t.Fatal(err)
	}
	d.mustBuild(t, ctx, "-t", "bt/copy")
	got := d.runIn(t, "bt/copy", "sh", "-c", `for f in $(find /globbed /dircontents /two -type f | sort) /exec.sh /owned /owneddir /owneddir/sub /owneddir/sub/d.txt /afteruser; do stat -c '%n %u:%g %a' $f; done; cat /from-stage /from-index /from-image`)
	equal(t, "copied files", got, strings.Join([]string{
		"/dircontents/sub/d.txt 0:0 644",
		"/dircontents/top.txt 0:0 644",
		"/globbed/a.txt 0:0 644",
		"/globbed/b.txt 0:0 644",
		"/two/d.txt 0:0 644",
		"/two/top.txt 0:0 644",
		"/exec.sh 0:0 755",
		"/owned 1234:5678 644",
		"/owneddir 1234:5678 755",
		"/owneddir/sub 1234:5678 755",
		"/owneddir/sub/d.txt 1234:5678 644",
		"/afteruser 0:0 644",
		"from-stage",
		"from-stage",
		"in-image",
	}, "\n"))
}

// testCopyChmod pins COPY --chmod (Docker 20.10's classic builder does not know it; BuildKit
// and newer classic builders do): the mode of the copied files, and of a copied directory's
// files and subdirectories.
func testCopyChmod(t *testing.T, d *daemon) {
	ctx := writeContext(t, map[string]string{
		"Dockerfile":    "FROM busybox\nCOPY --chmod=0741 a.txt /moded\nCOPY --chmod=700 dir /modeddir/\n",
		"a.txt":         "a",
		"dir/sub/d.txt": "d",
	})
	r := d.build(t, nil, ctx, "-t", "bt/chmod")
	if r.code != 0 && d.name == "dockerd" && strings.Contains(r.stderr, "requires BuildKit") {
		t.Skip("dockerd 20.10's classic builder has no COPY --chmod: " + strings.TrimSpace(r.stderr))
	}
	if r.code != 0 {
		t.Fatalf("%v\n%s", r, d.logTail())
	}
	got := d.runIn(t, "bt/chmod", "stat", "-c", "%n %a", "/moded", "/modeddir/sub", "/modeddir/sub/d.txt")
	equal(t, "modes", got, "/moded 741\n/modeddir/sub 700\n/modeddir/sub/d.txt 700")
}

// tarGz is a gzip-compressed tarball of the directory x and its file x/y.
func tarGz(t *testing.T, y string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "x/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "x/y", Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(y))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(y))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testAdd pins ADD: a local tar.gz is extracted into the destination (COPY of the same file
// is not); a plain file and globs are copied as with COPY.
func testAdd(t *testing.T, d *daemon) {
	ctx := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox
ADD archive.tar.gz /extract/
COPY archive.tar.gz /notextracted/
ADD plain.txt /added.txt
ADD *.txt /addglob/
`,
		"plain.txt": "plain",
	})
	if err := os.WriteFile(filepath.Join(ctx, "archive.tar.gz"), tarGz(t, "from the tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.mustBuild(t, ctx, "-t", "bt/add")
	equal(t, "a file of the extracted tar", d.cat(t, "bt/add", "/extract/x/y"), "from the tar")
	equal(t, "COPY of the tar.gz (not extracted)", d.runIn(t, "bt/add", "sh", "-c", "ls /notextracted; head -c 2 /notextracted/archive.tar.gz | od -An -tx1"), "archive.tar.gz\n 1f 8b")
	equal(t, "ADD of a plain file", d.cat(t, "bt/add", "/added.txt"), "plain")
	equal(t, "ADD of a glob", d.runIn(t, "bt/add", "ls", "/addglob"), "plain.txt")
}

// testVolume pins VOLUME: the JSON and the plain forms, several paths, in the config; what
// the image has at that path before the VOLUME stays.
func testVolume(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox
RUN mkdir /v1 && echo before > /v1/f
VOLUME /v1 /v2
VOLUME ["/v3"]
RUN echo after > /v1/g
`)
	d.mustBuild(t, ctx, "-t", "bt/volume")
	equal(t, "Config.Volumes", d.inspect(t, "bt/volume", "{{json .Config.Volumes}}"), `{"/v1":{},"/v2":{},"/v3":{}}`)
	equal(t, "a file written before VOLUME", d.cat(t, "bt/volume", "/v1/f"), "before")
	// Docker's classic builder drops what a later step writes into a declared volume
	// (BuildKit keeps it): not asserted, logged.
	t.Logf("a file written after VOLUME: %s", d.runIn(t, "bt/volume", "sh", "-c", "cat /v1/g 2>&1 || true"))
}

// testStopSignal pins STOPSIGNAL (with ENV expansion) in the config.
func testStopSignal(t *testing.T, d *daemon) {
	ctx := dockerfile(t, "FROM busybox\nENV SIG=SIGUSR1\nSTOPSIGNAL $SIG\n")
	d.mustBuild(t, ctx, "-t", "bt/stopsignal")
	equal(t, "Config.StopSignal", d.inspect(t, "bt/stopsignal", "{{.Config.StopSignal}}"), "SIGUSR1")
}

// testHealthcheck pins HEALTHCHECK in the config: the shell form (CMD-SHELL) with its
// options; the exec form (CMD), which replaces the inherited command but, as Docker's commit
// merges a new config with its parent's, keeps the inherited options it does not set; NONE.
func testHealthcheck(t *testing.T, d *daemon) {
	ctx := dockerfile(t, `FROM busybox AS shell
HEALTHCHECK --interval=5s --timeout=3s --start-period=2s --retries=4 CMD wget -q -O /dev/null http://localhost/ || exit 1
FROM shell AS exec
HEALTHCHECK CMD ["/bin/true"]
FROM exec AS none
HEALTHCHECK NONE
`)
	format := "{{json .Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}} {{.Config.Healthcheck.Timeout}} {{.Config.Healthcheck.StartPeriod}} {{.Config.Healthcheck.Retries}}"
	d.mustBuild(t, ctx, "-t", "bt/hc-shell", "--target", "shell")
	equal(t, "Config.Healthcheck", d.inspect(t, "bt/hc-shell", format), `["CMD-SHELL","wget -q -O /dev/null http://localhost/ || exit 1"] 5s 3s 2s 4`)
	d.mustBuild(t, ctx, "-t", "bt/hc-exec", "--target", "exec")
	equal(t, "Config.Healthcheck", d.inspect(t, "bt/hc-exec", format), `["CMD","/bin/true"] 5s 3s 2s 4`)
	d.mustBuild(t, ctx, "-t", "bt/hc-none")
	equal(t, "Config.Healthcheck.Test", d.inspect(t, "bt/hc-none", "{{json .Config.Healthcheck.Test}}"), `["NONE"]`)
}

// testOnbuild pins ONBUILD: the triggers are kept in the parent's config and not run there;
// a build FROM the parent runs them first (RUN and COPY from the child's context), and the
// child does not keep them.
func testOnbuild(t *testing.T, d *daemon) {
	parent := dockerfile(t, `FROM busybox
ONBUILD RUN echo triggered > /onbuild
ONBUILD COPY trig.txt /trig.txt
`)
	d.mustBuild(t, parent, "-t", "bt/onbuild-parent")
	equal(t, "Config.OnBuild", d.inspect(t, "bt/onbuild-parent", "{{range .Config.OnBuild}}{{println .}}{{end}}"),
		"RUN echo triggered > /onbuild\nCOPY trig.txt /trig.txt")
	equal(t, "the parent ran no trigger", d.runIn(t, "bt/onbuild-parent", "sh", "-c", "test -e /onbuild && echo ran || echo not-run"), "not-run")

	child := writeContext(t, map[string]string{
		"Dockerfile": "FROM bt/onbuild-parent\nRUN cat /onbuild /trig.txt > /both\n",
		"trig.txt":   "from the child's context",
	})
	d.mustBuild(t, child, "-t", "bt/onbuild-child")
	equal(t, "the child after the triggers", d.cat(t, "bt/onbuild-child", "/both"), "triggered\nfrom the child's context")
	equal(t, "the child's Config.OnBuild", d.inspect(t, "bt/onbuild-child", "{{range .Config.OnBuild}}{{println .}}{{end}}"), "")
}
