#!/bin/bash
# hack/fetch-module.sh MODULE@VERSION DST: a writable copy of a module from the
# Go module proxy at DST (replacing what is there), for the hack/build-*
# scripts that build other projects' tools outside berth's module. The
# caller's environment (GOFLAGS, GONOSUMDB, GOTOOLCHAIN) applies to the
# download. Exit status 1, with a message, when it cannot be downloaded.
set -euo pipefail
mod=$1
dst=$2
tmpmod=$(mktemp -d /var/tmp/berth-fetchmod.XXXXXX)
trap 'rm -rf "$tmpmod"' EXIT
dir=$(cd "$tmpmod" && go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "fetch-module: cannot download $mod" >&2; exit 1; }
rm -rf "$dst"
mkdir -p "$(dirname "$dst")"
cp -r "$dir" "$dst"
chmod -R u+w "$dst"
