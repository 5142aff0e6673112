#!/bin/bash
# hack/critest-images/build.sh REG [NAME...]
# hack/critest-images/build.sh --fetch
#
# Builds offline stand-ins for the images critest (cri-tools v1.36.0) uses, with
# `berth build` on a running berthd, and pushes each to the registry REG
# (host:port, e.g. 127.0.0.1:5000) under its original registry host and path:
#   REG/registry.k8s.io/e2e-test-images/busybox:1.29-2, REG/k8s.gcr.io/pause:3.9,
#   REG/gcr.io/k8s-staging-cri-tools/test-image-latest:latest, ...
# so that a berthd whose daemon.json maps each upstream host to
# http://REG/v2/<host> ("registry-hosts") pulls them by their real names.
# The files come from the host's Debian packages (busybox, unpacked from its .deb
# since it conflicts with busybox-static; nginx; apache2-bin; procps; util-linux)
# and from two small static Go programs (pause, nonewprivs); README.md lists the
# images. NAME... builds only those stand-ins (and what they are based on):
# busybox nginx hostnet-nginx httpd nonewprivs pause test-images user-images.
#
# --fetch only fetches Debian's busybox .deb (the one file not installed on the host)
# into the cache, for a later build without network (hack/critest.sh runs it before
# entering its private network namespace).
#
# The daemon is found as the CLI finds it (DOCKER_HOST or BERTH_HOST). Environment:
#   CRITEST_IMAGES_CLI    the CLI: bin/berth (default) or docker (classic builder)
#   CRITEST_IMAGES_CACHE  where Debian's busybox .deb is kept (default
#                         _output/critest-images; fetched once with apt-get download
#                         unless /var/cache/apt/archives has it)
#   CRITEST_IMAGES_KEEP=1 keep the built images in the daemon's store (by default their
#                         REG/... tags are removed once pushed: a later pull through
#                         the mirror must not find the same image with extra tags)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export PATH=/usr/local/go/bin:$PATH

CLI=${CRITEST_IMAGES_CLI:-$ROOT/bin/berth}
CACHE=${CRITEST_IMAGES_CACHE:-$ROOT/_output/critest-images}

# Debian's dynamically linked busybox: unpacked from its .deb, not installed (it
# conflicts with busybox-static, which berth's tests use).
busybox_deb() {
	local deb
	deb=$(ls "$CACHE"/busybox_*.deb /var/cache/apt/archives/busybox_*.deb 2>/dev/null | head -n 1 || true)
	if [ -z "$deb" ]; then
		mkdir -p "$CACHE"
		echo "critest-images: apt-get download busybox (into $CACHE)" >&2
		(cd "$CACHE" && apt-get -qq -o APT::Sandbox::User=root download busybox) >&2 || true
		deb=$(ls "$CACHE"/busybox_*.deb 2>/dev/null | head -n 1 || true)
		if [ -z "$deb" ]; then
			echo "critest-images: cannot fetch Debian's busybox package (offline? run $0 --fetch first)" >&2
			return 1
		fi
	fi
	echo "$deb"
}

if [ "${1:-}" = --fetch ]; then
	busybox_deb >/dev/null
	exit
fi
if [ $# -lt 1 ] || [[ $1 == -* ]]; then
	sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi
REG=$1
shift
export DOCKER_BUILDKIT=0 # the stock docker CLI: the classic builder, which berthd serves

E2E=registry.k8s.io/e2e-test-images
CRI=gcr.io/k8s-staging-cri-tools
BUSYBOX=$REG/$E2E/busybox:1.29-2
NGINX=$REG/$E2E/nginx:1.14-2

all=(busybox nginx hostnet-nginx httpd nonewprivs pause test-images user-images)
want=("$@")
if [ ${#want[@]} = 0 ]; then
	want=("${all[@]}")
fi
for w in "${want[@]}"; do
	if [[ " ${all[*]} " != *" $w "* ]]; then
		echo "critest-images: no stand-in named $w (they are: ${all[*]})" >&2
		exit 2
	fi
done
wanted() {
	local w
	for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
	return 1
}
# What each stand-in is built on.
if wanted hostnet-nginx; then want+=(nginx); fi
for n in nginx httpd nonewprivs test-images user-images; do
	if wanted "$n"; then want+=(busybox); fi
done

work=$(mktemp -d /var/tmp/critest-images.XXXXXX)
built=()
cleanup() {
	local i
	if [ "${CRITEST_IMAGES_KEEP:-}" != 1 ]; then
		# Last built first: an image before the ones built on it.
		for ((i = ${#built[@]} - 1; i >= 0; i--)); do
			"$CLI" rmi "${built[i]}" >/dev/null 2>&1 || true
		done
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# put SRC DEST ROOTFS: copies the file SRC to ROOTFS/DEST, and every shared library it
# needs (ldd, the dynamic loader included) to the same path under ROOTFS.
put() {
	local src=$1 dest=$2 rootfs=$3 lib
	mkdir -p "$rootfs$(dirname "$dest")"
	cp -L "$src" "$rootfs$dest"
	# ldd fails on static binaries ("not a dynamic executable"): nothing more to copy.
	{ ldd "$src" 2>/dev/null || true; } | sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p' |
		while read -r lib; do
			if [ ! -e "$rootfs$lib" ]; then
				mkdir -p "$rootfs$(dirname "$lib")"
				cp -L "$lib" "$rootfs$lib"
			fi
		done
}

# context NAME: a copy of the stand-in's directory to add generated files to.
context() {
	mkdir -p "$work/$1"
	cp -a "$HERE/$1/." "$work/$1/"
	rm -f "$work/$1"/*.go
	echo "$work/$1"
}

# build CONTEXT TAG... [-- BUILD-FLAGS...]: builds and pushes.
build() {
	local ctx=$1 tags=() flags=() t log
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do tags+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	flags=("$@")
	log=$work/build.log
	for t in "${tags[@]}"; do flags+=(-t "$t"); done
	if ! "$CLI" build --network none "${flags[@]}" "$ctx" >"$log" 2>&1; then
		cat "$log" >&2
		echo "critest-images: building ${tags[0]} failed" >&2
		exit 1
	fi
	built+=("${tags[@]}")
	for t in "${tags[@]}"; do
		if ! "$CLI" push "$t" >"$log" 2>&1; then
			cat "$log" >&2
			echo "critest-images: pushing $t failed" >&2
			exit 1
		fi
		echo "critest-images: $t"
	done
}

host_file() {
	if [ ! -e "$1" ]; then
		echo "critest-images: $1 is missing: run hack/install-deps.sh (it installs $2)" >&2
		exit 1
	fi
}

if wanted busybox; then
	ctx=$(context busybox)
	rootfs=$ctx/rootfs
	deb=$(busybox_deb)
	dpkg-deb -x "$deb" "$work/busybox-deb"
	if ! ldd "$work/busybox-deb/bin/busybox" >/dev/null 2>&1; then
		echo "critest-images: $deb is not a dynamically linked busybox" >&2
		exit 1
	fi
	put "$work/busybox-deb/bin/busybox" /bin/busybox "$rootfs"
	# Applets critest runs that Debian's busybox does not have.
	host_file /usr/bin/pgrep procps
	host_file /usr/bin/ipcs util-linux
	put /usr/bin/pgrep /usr/bin/pgrep "$rootfs"
	put /usr/bin/ipcs /usr/bin/ipcs "$rootfs"
	mkdir -p "$rootfs/etc"
	mv "$ctx/passwd" "$ctx/group" "$ctx/nsswitch.conf" "$rootfs/etc/"
	build "$ctx" "$BUSYBOX"
fi

if wanted nginx; then
	ctx=$(context nginx)
	host_file /usr/sbin/nginx nginx
	put /usr/sbin/nginx /usr/sbin/nginx "$ctx/rootfs"
	put /etc/nginx/mime.types /etc/nginx/mime.types "$ctx/rootfs"
	put /usr/share/nginx/html/index.html /usr/share/nginx/html/index.html "$ctx/rootfs"
	build "$ctx" "$NGINX" -- --build-arg "BASE=$BUSYBOX"
fi

if wanted hostnet-nginx; then
	build "$(context hostnet-nginx)" "$REG/$CRI/hostnet-nginx-amd64:latest" -- --build-arg "BASE=$NGINX"
fi

if wanted httpd; then
	ctx=$(context httpd)
	host_file /usr/sbin/apache2 apache2-bin
	put /usr/sbin/apache2 /usr/local/apache2/bin/httpd "$ctx/rootfs"
	for m in mpm_event authz_core mime dir; do
		put "/usr/lib/apache2/modules/mod_$m.so" "/usr/local/apache2/modules/mod_$m.so" "$ctx/rootfs"
	done
	# glibc loads libgcc_s when a thread exits (pthread_exit unwinds): Apache's workers.
	lib=$(ldconfig -p | sed -n 's/.*libgcc_s.so.1 (libc6,x86-64) => //p' | head -n 1)
	put "$lib" "$lib" "$ctx/rootfs"
	build "$ctx" "$REG/$E2E/httpd:2.4.39-4" -- --build-arg "BASE=$BUSYBOX"
fi

if wanted nonewprivs; then
	ctx=$(context nonewprivs)
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ctx/nnp" ./hack/critest-images/nonewprivs)
	build "$ctx" "$REG/$E2E/nonewprivs:1.3" -- --build-arg "BASE=$BUSYBOX"
fi

if wanted pause; then
	ctx=$(context pause)
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ctx/pause" ./hack/critest-images/pause)
	# One image, two names: critest checks that removing one removes both.
	build "$ctx" "$REG/registry.k8s.io/pause:3.9" "$REG/k8s.gcr.io/pause:3.9"
fi

if wanted test-images; then
	# As cri-tools' images/build: each image adds one empty file named after it, so
	# test-image-1/2/3, -latest, -digest, tag:test and tag:all differ, and
	# test-image-tags:1/2/3 are one image. (test-image-digest cannot have the digest
	# critest pulls it by: that spec is skipped.)
	for name in test-image-1 test-image-2 test-image-3 test-image-latest test-image-digest; do
		ctx=$(context test-image)
		: >"$ctx/$name"
		build "$ctx" "$REG/$CRI/$name:latest" -- --build-arg "BASE=$BUSYBOX" --build-arg "TEST=$name"
		rm -rf "$ctx"
	done
	ctx=$(context test-image)
	: >"$ctx/same-image"
	build "$ctx" "$REG/$CRI/test-image-tags:1" "$REG/$CRI/test-image-tags:2" "$REG/$CRI/test-image-tags:3" -- \
		--build-arg "BASE=$BUSYBOX" --build-arg "TEST=same-image"
	rm -rf "$ctx"
	for tag in test all; do
		ctx=$(context test-image)
		: >"$ctx/$tag"
		build "$ctx" "$REG/$CRI/test-image-tag:$tag" -- --build-arg "BASE=$BUSYBOX" --build-arg "TEST=$tag"
		rm -rf "$ctx"
	done
fi

if wanted user-images; then
	for pair in test-image-user-uid=1002 test-image-user-username=www-data \
		test-image-user-uid-group=1003:1004 test-image-user-username-group=www-data:1004; do
		build "$(context image-user)" "$REG/$CRI/${pair%%=*}:latest" -- --build-arg "BASE=$BUSYBOX" --build-arg "USER=${pair#*=}"
		rm -rf "$work/image-user"
	done
	build "$(context image-predefined-group)" "$REG/$CRI/test-image-predefined-group:latest" -- --build-arg "BASE=$BUSYBOX"
fi
