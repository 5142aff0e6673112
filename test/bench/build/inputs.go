package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"berth/test/imagetest"
)

// inputs are what every engine builds from: the base images' tars and the build context.
type inputs struct {
	toolchainTar, busyboxTar string
	toolchainSize            int64
	context                  string // the build context directory (Dockerfile, src/)
	files                    int    // files in the context
	// want is the start of what the built image prints (`run --rm appImage`).
	want string
}

// dockerfile is the bench's Dockerfile: stage 1 compiles the C sources statically with the
// toolchain image, stage 2 is busybox with the program and a few metadata instructions.
const dockerfile = `# berth build bench (test/bench/build)
FROM ` + toolchainImage + ` AS build
WORKDIR /src
COPY src/ /src/
RUN mkdir -p /out && gcc -static -O2 -Wall -Werror -o /out/bench-app main.c crc32.c sieve.c text.c && /out/bench-app > /out/selftest.txt

FROM ` + busyboxImage + `
ENV APP_HOME=/app APP_MODE=bench
LABEL org.opencontainers.image.title="berth build bench" bench.suite=build
WORKDIR /app
COPY --from=build /out/bench-app /app/bench-app
RUN /app/bench-app --version > /app/VERSION && chmod 0444 /app/VERSION
CMD ["/app/bench-app"]
`

// sources is the C source tree (src/ in the context).
var sources = map[string]string{
	"bench.h": `#ifndef BENCH_H
#define BENCH_H
#include <stddef.h>
#include <stdint.h>

uint32_t crc32(const unsigned char *p, size_t n);
int count_primes(int limit);
size_t fill_text(char *buf, size_t n, unsigned seed);
#endif
`,
	"main.c": `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

#define VERSION "1.0"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("bench-app %s\n", VERSION);
		return 0;
	}
	static char buf[1 << 16];
	size_t n = fill_text(buf, sizeof buf, 42);
	printf("bench-app: primes=%d crc=%08x bytes=%zu\n", count_primes(100000), crc32((unsigned char *)buf, n), n);
	return 0;
}
`,
	"crc32.c": `#include "bench.h"

static uint32_t table[256];

static void init_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		table[i] = c;
	}
}

uint32_t crc32(const unsigned char *p, size_t n)
{
	if (table[1] == 0)
		init_table();
	uint32_t c = 0xFFFFFFFFu;
	while (n--)
		c = table[(c ^ *p++) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}
`,
	"sieve.c": `#include <stdlib.h>
#include <string.h>
#include "bench.h"

int count_primes(int limit)
{
	char *composite = calloc((size_t)limit + 1, 1);
	int count = 0;
	if (composite == NULL)
		return -1;
	for (int i = 2; i <= limit; i++) {
		if (composite[i])
			continue;
		count++;
		for (long j = (long)i * i; j <= limit; j += i)
			composite[j] = 1;
	}
	free(composite);
	return count;
}
`,
	"text.c": `#include <stdio.h>
#include <string.h>
#include "bench.h"

static const char *words[] = {"berth", "build", "layer", "cache", "stage", "image", "gcc", "static"};

size_t fill_text(char *buf, size_t n, unsigned seed)
{
	size_t used = 0;
	while (used + 16 < n) {
		seed = seed * 1103515245u + 12345u;
		const char *w = words[(seed >> 16) % (sizeof words / sizeof words[0])];
		int k = snprintf(buf + used, n - used, "%s ", w);
		if (k < 0)
			break;
		used += (size_t)k;
	}
	return used;
}
`,
}

// writeInputs writes the base images' tars and the build context into dir.
func writeInputs(dir string) (*inputs, error) {
	in := &inputs{
		toolchainTar: filepath.Join(dir, "toolchain.tar"),
		busyboxTar:   filepath.Join(dir, "busybox.tar"),
		context:      filepath.Join(dir, "context"),
		want:         "bench-app: primes=9592 crc=",
	}
	for _, t := range []struct {
		path  string
		write func(f *os.File) error
	}{
		{in.toolchainTar, func(f *os.File) error { return imagetest.WriteToolchainTar(f) }},
		{in.busyboxTar, func(f *os.File) error { return imagetest.WriteBusyboxTar(f) }},
	} {
		f, err := os.Create(t.path)
		if err != nil {
			return nil, err
		}
		err = t.write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(t.path), err)
		}
	}
	if fi, err := os.Stat(in.toolchainTar); err == nil {
		in.toolchainSize = fi.Size()
	}
	src := filepath.Join(in.context, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(in.context, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return nil, err
	}
	in.files = 1
	for name, text := range sources {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			return nil, err
		}
		in.files++
	}
	return in, nil
}

// instructions is the number of instructions in the Dockerfile.
func instructions() int {
	n := 0
	for _, l := range strings.Split(dockerfile, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}
