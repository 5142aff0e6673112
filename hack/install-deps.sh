#!/bin/bash
# Installs what berth needs on Debian 12 (run as root), skipping what is
# already installed. Go >= the version in go.mod must be at /usr/local/go
# (Debian 12's golang package is 1.19, far too old); this script does not
# download Go, it tells you how.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

PKGS=(build-essential pkg-config busybox-static runc crun
	podman docker.io docker-compose docker-registry skopeo umoci curl iproute2 nftables util-linux ca-certificates git
	bzip2 xz-utils zstd
	# `make bench` images: the image is built with debootstrap; the tools write to a loop ext4.
	debootstrap e2fsprogs
	# `make bench` network: bulk TCP throughput and HTTP load.
	iperf3 wrk
	# CRI pod networking: the CNI plugins (bridge, host-local, portmap, loopback) in /usr/lib/cni.
	containernetworking-plugins
	# `make critest`: files of critest's image stand-ins (hack/critest-images): nginx, httpd, pgrep.
	nginx apache2-bin procps)

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: run as root" >&2
	exit 1
fi
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: apt-get install ${missing[*]}" >&2
	# Another apt run (e.g. unattended-upgrades) holds the lock: wait for it.
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi

want=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$ROOT/go.mod")
GO=/usr/local/go/bin/go
if [ ! -x "$GO" ]; then
	cat >&2 <<MSG
install-deps: Go $want or newer is required at /usr/local/go (Debian 12's golang
package is 1.19, too old). Install it with:
  curl -fsSL https://go.dev/dl/go$want.linux-$(dpkg --print-architecture).tar.gz | tar -C /usr/local -xz
MSG
	exit 1
fi
have=$("$GO" env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]; then
	echo "install-deps: /usr/local/go is go$have; go.mod needs go$want or newer" >&2
	exit 1
fi
