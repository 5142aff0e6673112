// Command mkbundle writes an OCI bundle (busybox rootfs + runc-spec-like
// config.json) with berth/test/bundle, for scripts and manual testing.
//
//	go run ./hack/mkbundle -dir /var/tmp/b -no-netns -- /bin/httpd -f -p 127.0.0.1:8080
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/test/bundle"
)

type fileFlag []string

func (f *fileFlag) String() string     { return strings.Join(*f, ",") }
func (f *fileFlag) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	dir := flag.String("dir", "", "bundle directory (required)")
	id := flag.String("id", "", "bundle ID (default random); the default cgroupsPath is berth-test/<id>")
	cg := flag.String("cgroups-path", "-", `linux.cgroupsPath ("-": berth-test/<id>, "": none)`)
	terminal := flag.Bool("terminal", false, "process.terminal")
	rw := flag.Bool("rw", false, "writable rootfs")
	noNet := flag.Bool("no-netns", false, "no network namespace: share the host's")
	var files fileFlag
	flag.Var(&files, "file", "PATH=CONTENT to write into the rootfs (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: mkbundle -dir DIR [flags] [-- ARGS...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *dir == "" {
		flag.Usage()
		os.Exit(2)
	}
	opts := []bundle.Option{bundle.WithTerminal(*terminal), bundle.WithReadonlyRootfs(!*rw)}
	if *id != "" {
		opts = append(opts, bundle.WithID(*id))
	}
	if *cg != "-" {
		opts = append(opts, bundle.WithCgroupsPath(*cg))
	}
	if *noNet {
		opts = append(opts, bundle.WithoutNamespace(specs.NetworkNamespace))
	}
	if flag.NArg() > 0 {
		opts = append(opts, bundle.WithArgs(flag.Args()...))
	}
	for _, f := range files {
		p, content, ok := strings.Cut(f, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "mkbundle: -file %q: want PATH=CONTENT\n", f)
			os.Exit(2)
		}
		opts = append(opts, bundle.WithFile(p, content))
	}
	b, err := bundle.Create(*dir, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkbundle:", err)
		os.Exit(1)
	}
	fmt.Println(b.ID)
}
