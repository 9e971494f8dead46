#!/usr/bin/env bash
# fabric.sh builds the Hyperledger Fabric v3.1.1 command-line binaries
# (peer, orderer, configtxgen, cryptogen, osnadmin) from the Go module proxy
# into a cache directory, only when they are missing.
#
# Usage: scripts/fabric.sh [bin-dir|sampleconfig-dir|check]
#   (no argument)      build when missing, then print the bin directory
#   bin-dir            print the bin directory (no build)
#   sampleconfig-dir   print the Fabric module's sampleconfig directory
#   check              exit 0 when every binary is present, 1 otherwise
#
# Environment:
#   MEDPROV_CACHE   cache root (default $HOME/.cache/medprov)
#
# The wrapper module lives in the cache, never in the repository. Fabric's
# v2/v3 tags are not valid Go module versions, so the pseudo-version for
# v3.1.1 (see TOOLCHAIN.md) is pinned here.
set -euo pipefail

FABRIC_VERSION=v3.1.1
FABRIC_MODULE=github.com/hyperledger/fabric
FABRIC_PSEUDO=v1.4.0-rc1.0.20250510200036-435a7f1a780a
FABRIC_COMMIT=435a7f1a780a
TOOLS=(peer orderer configtxgen cryptogen osnadmin)

cache="${MEDPROV_CACHE:-$HOME/.cache/medprov}"
root="$cache/fabric-$FABRIC_VERSION"
bin="$root/bin"
wrap="$root/wrapper"

have_all() {
	local t
	for t in "${TOOLS[@]}"; do
		[[ -x "$bin/$t" ]] || return 1
	done
}

sampleconfig_dir() {
	local dir
	dir="$(go env GOMODCACHE)/$FABRIC_MODULE@$FABRIC_PSEUDO/sampleconfig"
	if [[ ! -f "$dir/core.yaml" ]]; then
		# Outside any module, an exact version downloads the source alone.
		(cd / && GO111MODULE=on go mod download "$FABRIC_MODULE@$FABRIC_PSEUDO") >&2
	fi
	echo "$dir"
}

build() {
	mkdir -p "$wrap" "$bin"
	cat >"$wrap/go.mod" <<GOMOD
module medprov.local/fabric-tools

go 1.26

require $FABRIC_MODULE $FABRIC_PSEUDO
GOMOD
	{
		echo "//go:build tools"
		echo
		echo "package tools"
		echo
		echo "import ("
		local t
		for t in "${TOOLS[@]}"; do
			echo "	_ \"$FABRIC_MODULE/cmd/$t\""
		done
		echo ")"
	} >"$wrap/tools.go"
	local pkgs=()
	for t in "${TOOLS[@]}"; do
		pkgs+=("$FABRIC_MODULE/cmd/$t")
	done
	echo "fabric.sh: building ${TOOLS[*]} ($FABRIC_VERSION) into $bin" >&2
	(
		cd "$wrap"
		export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
		go mod tidy
		go build -trimpath -o "$bin/" \
			-ldflags "-X $FABRIC_MODULE/common/metadata.Version=${FABRIC_VERSION#v} -X $FABRIC_MODULE/common/metadata.CommitSHA=$FABRIC_COMMIT" \
			"${pkgs[@]}"
	)
	have_all || { echo "fabric.sh: build finished but binaries are missing in $bin" >&2; exit 1; }
}

case "${1:-}" in
"")
	if ! have_all; then
		# Parallel test packages may all find the binaries missing: one builds,
		# the others wait for it and then find them.
		mkdir -p "$root"
		exec 9>"$root/.build.lock"
		flock 9
		have_all || build
	fi
	echo "$bin"
	;;
bin-dir) echo "$bin" ;;
sampleconfig-dir) sampleconfig_dir ;;
check) have_all ;;
*) echo "usage: $0 [bin-dir|sampleconfig-dir|check]" >&2; exit 2 ;;
esac
