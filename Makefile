# berth: see README.md.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
# Static, cgo-free binaries: a runtime starts 3-4 times per container, and dynamic linking costs
# start-up time (docs/runtime-design.md).
export CGO_ENABLED := 0

GO ?= go
# Runtimes compared by `make validate` (paths or names in $PATH).
RUNTIMES ?= $(CURDIR)/bin/berth-runtime runc crun
# `make bench` suites: runtime (lifecycle and run of berth-runtime vs runc vs crun), images
# (load and save of a 630 MB Debian image, berth vs podman vs dockerd vs tar), engine
# (docker run/exec and idle shim memory, berthd vs dockerd vs podman), network (HTTP
# requests/s and iperf3 throughput through published ports, berthd vs dockerd with docker-proxy
# vs the direct path), build (full and no-change builds of a multi-stage Dockerfile that
# compiles C, berthd vs dockerd's classic builder vs podman build) and registry (docker push and
# pull of the images suite's image through a loopback registry, berthd with berth registry serve
# vs dockerd with Debian's docker-registry) and cri (critest's benchmark operations on pods and
# containers through the CRI, berthd vs Debian's containerd 1.6; docs/benchmarks.md).
BENCH_SUITES ?= runtime images engine network build registry cri
# `make bench` (cri) measured iterations (each runs the pod lifecycle, the container lifecycle
# and the from-scratch start once per engine), and flags (`_output/bench-cri -h`); berthd is
# built as for the engine suite. Needs containerd and containernetworking-plugins.
CRI_BENCH_N ?= 20
CRI_BENCH_FLAGS ?=
# `make bench` iterations per runtime and lifecycle, and binaries.
BENCH_N ?= 50
BENCH_FLAGS ?=
# `make bench` (images) iterations per tool, and flags (`_output/bench-images -h`).
IMAGES_BENCH_N ?= 5
IMAGES_BENCH_FLAGS ?=
# `make bench` (engine) iterations of run and of exec per engine, and flags
# (`_output/bench-engine -h`); berthd and its helpers are built from this tree into _output.
ENGINE_BENCH_N ?= 20
ENGINE_BENCH_FLAGS ?=
# `make bench` (network) measured rounds (every path of every engine once each), and flags
# (`_output/bench-network -h`); berthd is built as for the engine suite. Needs iperf3 (and wrk,
# else a Go load loop is used): apt-get install -y iperf3 wrk. 11 rounds (about 9 minutes): with
# 5 a run's published/direct ratio swings by +-5% on a shared 2-CPU machine.
NETWORK_BENCH_N ?= 11
NETWORK_BENCH_FLAGS ?=
# `make bench` (build) measured rounds (a full and a no-change build per engine each), and flags
# (`_output/bench-build -h`); berthd is built as for the engine suite. The toolchain image is the
# host's gcc (build-essential).
BUILD_BENCH_N ?= 5
BUILD_BENCH_FLAGS ?=
# `make bench` (registry) measured iterations (a push and a pull per engine each), and flags
# (`_output/bench-registry -h`); berthd and berth are built as for the engine suite, the image is
# the images suite's (built once if it is not cached). Needs docker-registry (hack/install-deps.sh
# installs it).
REGISTRY_BENCH_N ?= 5
REGISTRY_BENCH_FLAGS ?=
BERTH ?= $(CURDIR)/bin/berth-runtime
RUNC ?= runc
CRUN ?= crun

.PHONY: all build test validate conformance critest bench main-job runtime-tools clean

all: build

## build: bin/berth-runtime (and every other command under cmd/)
build:
	$(GO) build -trimpath -ldflags "-s -w" -o bin/ ./cmd/...

## test: the project's test command (needs root)
test:
	hack/test.sh

## validate: OCI runtime-tools validation suite, table for $(RUNTIMES) (needs root)
validate: runtime-tools
	hack/validate.sh $(RUNTIMES)

runtime-tools:
	hack/build-runtime-tools.sh

## conformance: OCI distribution-spec conformance suite (pinned, fetched from the Go module
## proxy, built in _output/conformance) against `bin/berth registry serve`
conformance: build
	hack/conformance.sh

## bench: lifecycle and run latency of berth-runtime vs runc vs crun, image load/save of
## berth vs podman vs dockerd vs tar, docker run/exec latency and idle shim memory of
## berthd vs dockerd vs podman, and HTTP requests/s and TCP throughput through published
## ports of berthd vs dockerd vs the direct path, and Dockerfile builds of berthd vs dockerd
## vs podman, and docker push/pull through a registry of berthd vs dockerd, and CRI pod and
## container operations of berthd vs containerd (needs root;
## BENCH_SUITES=images, engine, network, build, registry or cri runs one of them)
bench:
	@mkdir -p _output
ifneq ($(filter runtime,$(BENCH_SUITES)),)
	$(GO) build -o _output/bench ./test/bench
	_output/bench -n $(BENCH_N) -berth "$(BERTH)" -runc "$(RUNC)" -crun "$(CRUN)" $(BENCH_FLAGS)
endif
ifneq ($(filter images,$(BENCH_SUITES)),)
	$(GO) build -o _output/bench-images ./test/bench/images
	_output/bench-images -n $(IMAGES_BENCH_N) $(IMAGES_BENCH_FLAGS)
endif
ifneq ($(filter engine,$(BENCH_SUITES)),)
	$(GO) build -trimpath -ldflags "-s -w" -o _output/bench-engine-bin/ ./cmd/berthd ./cmd/berth-shim ./cmd/berth-runtime ./cmd/berth-init
	$(GO) build -o _output/bench-engine ./test/bench/engine
	_output/bench-engine -n $(ENGINE_BENCH_N) -bin $(CURDIR)/_output/bench-engine-bin $(ENGINE_BENCH_FLAGS)
endif
ifneq ($(filter network,$(BENCH_SUITES)),)
	$(GO) build -trimpath -ldflags "-s -w" -o _output/bench-engine-bin/ ./cmd/berthd ./cmd/berth-shim ./cmd/berth-runtime ./cmd/berth-init
	$(GO) build -o _output/bench-network ./test/bench/network
	_output/bench-network -n $(NETWORK_BENCH_N) -bin $(CURDIR)/_output/bench-engine-bin $(NETWORK_BENCH_FLAGS)
endif
ifneq ($(filter build,$(BENCH_SUITES)),)
	$(GO) build -trimpath -ldflags "-s -w" -o _output/bench-engine-bin/ ./cmd/berthd ./cmd/berth-shim ./cmd/berth-runtime ./cmd/berth-init
	$(GO) build -o _output/bench-build ./test/bench/build
	_output/bench-build -n $(BUILD_BENCH_N) -bin $(CURDIR)/_output/bench-engine-bin $(BUILD_BENCH_FLAGS)
endif
ifneq ($(filter registry,$(BENCH_SUITES)),)
	$(GO) build -trimpath -ldflags "-s -w" -o _output/bench-engine-bin/ ./cmd/berthd ./cmd/berth-shim ./cmd/berth-runtime ./cmd/berth-init ./cmd/berth
	$(GO) build -o _output/bench-images ./test/bench/images
	$(GO) build -o _output/bench-registry ./test/bench/registry
	_output/bench-registry -n $(REGISTRY_BENCH_N) -bin $(CURDIR)/_output/bench-engine-bin -images-bin $(CURDIR)/_output/bench-images $(REGISTRY_BENCH_FLAGS)
endif
ifneq ($(filter cri,$(BENCH_SUITES)),)
	$(GO) build -trimpath -ldflags "-s -w" -o _output/bench-engine-bin/ ./cmd/berthd ./cmd/berth-shim ./cmd/berth-runtime ./cmd/berth-init
	$(GO) build -o _output/bench-cri ./test/bench/cri
	_output/bench-cri -n $(CRI_BENCH_N) -bin $(CURDIR)/_output/bench-engine-bin $(CRI_BENCH_FLAGS)
endif

## critest: the CRI validation suite (critest, cri-tools v1.36.0) against berthd, offline: stand-ins of
## its images built from Debian packages and pushed to a loopback `berth registry serve` that berthd
## mirrors registry.k8s.io, k8s.gcr.io and gcr.io to, in a private network namespace (hack/critest.sh;
## CRITEST_FLAGS adds critest flags, e.g. CRITEST_FLAGS=-ginkgo.focus=Streaming; needs root)
critest:
	hack/critest.sh $(CRITEST_FLAGS)

## kubelet-test: a real kubelet (k8s.io/kubernetes v1.36.3 from the Go module proxy, built into
## _output/kubelet by hack/build-kubelet.sh, about 4 minutes cold) runs a two-container static pod
## standalone on berthd's CRI endpoint with CNI networking, and removes it (test/integration/kubelet;
## needs root; kubelet's log is kept in _output/kubelet/kubelet-test.log)
.PHONY: kubelet-test
kubelet-test:
	@[ "$$(id -u)" = 0 ] || { echo "kubelet-test: run as root" >&2; exit 1; }
	hack/build-kubelet.sh
	@# The test's berthd puts its cgroups under a parent of this run's own, removed afterwards.
	parent=berth-kubelet-test-$$$$; \
	BERTH_TEST_CGROUP_PARENT=$$parent BERTH_KUBELET=$(CURDIR)/_output/kubelet/bin/kubelet \
		BERTH_KUBELET_LOG=$(CURDIR)/_output/kubelet/kubelet-test.log \
		$(GO) test -v -count=1 -timeout 15m ./test/integration/kubelet/; status=$$?; \
	hack/remove-cgroup-parent.sh $$parent kubelet-test || status=1; exit $$status

## main-job: busybox httpd in a berth-runtime container, shown with curl
main-job:
	hack/main-job.sh

clean:
	rm -rf bin _output
