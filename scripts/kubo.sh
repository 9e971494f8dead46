#!/usr/bin/env bash
# kubo.sh — build and run an offline, loopback-only kubo (IPFS) daemon for medprov.
#
# Usage: scripts/kubo.sh build|init|start|stop|status|path
#
#   build   build kubo ${KUBO_VERSION} from the Go module proxy into the cache,
#           only when the binary is missing (serialised with a lock, so
#           concurrent callers build once)
#   init    create (if missing) and configure the repo at IPFS_PATH: no
#           bootstrap peers, no autoconf, no mDNS, API and gateway on
#           127.0.0.1 only, swarm on loopback only (the daemon runs --offline)
#   start   build + init if needed, start the daemon, wait until the API answers
#   stop    stop the daemon this script started (pid file) and wait for it
#   status  exit 0 and print the API address if the daemon answers
#   path    print the path of the kubo binary
#
# Environment:
#   MEDPROV_CACHE              cache root (default $HOME/.cache/medprov)
#   IPFS_PATH                  repo dir (default $MEDPROV_CACHE/kubo-repo)
#   MEDPROV_KUBO_API_PORT      RPC API port on 127.0.0.1 (default 5001)
#   MEDPROV_KUBO_GATEWAY_PORT  gateway port on 127.0.0.1 (default 8090, so that
#                              it does not collide with medprov serve's 8080)
#   MEDPROV_KUBO_START_TIMEOUT seconds to wait for the API (default 60)
#   MEDPROV_KUBO_PROFILE       datastore profile for a new repo: pebbleds
#                              (default) or flatfs (kubo's own default: a
#                              file and an fsync per block; on Fabric it cost
#                              ~880 µs of CPU per reading against ~70 for
#                              pebbleds). Both are durable when an import
#                              returns: kubo flushes the pin set with a
#                              datastore Sync, which for pebbleds syncs the
#                              one write-ahead log the blocks went to first.
set -euo pipefail

KUBO_VERSION=v0.42.0
MEDPROV_CACHE=${MEDPROV_CACHE:-$HOME/.cache/medprov}
KUBO_DIR=$MEDPROV_CACHE/kubo/$KUBO_VERSION
KUBO_BIN=$KUBO_DIR/bin/ipfs
export IPFS_PATH=${IPFS_PATH:-$MEDPROV_CACHE/kubo-repo}
API_PORT=${MEDPROV_KUBO_API_PORT:-5001}
GATEWAY_PORT=${MEDPROV_KUBO_GATEWAY_PORT:-8090}
START_TIMEOUT=${MEDPROV_KUBO_START_TIMEOUT:-60}
PROFILE=${MEDPROV_KUBO_PROFILE:-pebbleds}
PID_FILE=$IPFS_PATH/medprov-kubo.pid
LOG_FILE=$IPFS_PATH/medprov-kubo.log

log() { printf 'kubo.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

case $PROFILE in
pebbleds | flatfs) ;;
*) die "MEDPROV_KUBO_PROFILE must be pebbleds or flatfs, not '$PROFILE'" ;;
esac

build() {
	if [[ -x $KUBO_BIN ]]; then
		return 0
	fi
	mkdir -p "$KUBO_DIR"
	exec 9>"$KUBO_DIR/build.lock"
	flock 9
	# Another caller may have finished the build while we waited for the lock.
	if [[ -x $KUBO_BIN ]]; then
		return 0
	fi
	log "building kubo $KUBO_VERSION into $KUBO_DIR (first run only, takes minutes)"
	local src=$KUBO_DIR/src
	rm -rf "$src"
	mkdir -p "$src"
	cat >"$src/go.mod" <<GOMOD
module medprov.local/kubo-build

go 1.26

require github.com/ipfs/kubo $KUBO_VERSION
GOMOD
	cat >"$src/tools.go" <<'GOSRC'
//go:build tools

// Package tools pins the kubo command for building.
package tools

import _ "github.com/ipfs/kubo/cmd/ipfs"
GOSRC
	(
		cd "$src"
		export GOWORK=off GOFLAGS=-mod=mod
		go mod tidy
		go build -trimpath -o "$KUBO_BIN.tmp" github.com/ipfs/kubo/cmd/ipfs
	) || die "building kubo $KUBO_VERSION failed (see the go output above)"
	mv "$KUBO_BIN.tmp" "$KUBO_BIN"
	log "built $("$KUBO_BIN" version)"
}

init_repo() {
	build
	if [[ ! -f $IPFS_PATH/config ]]; then
		mkdir -p "$IPFS_PATH"
		# The test profile empties Bootstrap, disables mDNS and binds to loopback.
		"$KUBO_BIN" init --empty-repo --profile="test,$PROFILE" >/dev/null
	fi
	local k=$KUBO_BIN
	"$k" config --json AutoConf.Enabled false
	"$k" config --json Bootstrap '[]'
	"$k" config --json Discovery.MDNS.Enabled false
	"$k" config --json Routing.Type '"none"'
	"$k" config --json Addresses.Swarm '["/ip4/127.0.0.1/tcp/0"]'
	"$k" config --json Addresses.Announce '[]'
	"$k" config --json Addresses.NoAnnounce '[]'
	"$k" config Addresses.API "/ip4/127.0.0.1/tcp/$API_PORT"
	"$k" config Addresses.Gateway "/ip4/127.0.0.1/tcp/$GATEWAY_PORT"
}

api_up() {
	curl -fsS -m 2 -X POST "http://127.0.0.1:$API_PORT/api/v0/version" >/dev/null 2>&1
}

running_pid() {
	[[ -f $PID_FILE ]] || return 1
	local pid
	pid=$(<"$PID_FILE")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
	return 1
}

start() {
	if running_pid >/dev/null; then
		die "a daemon started by this script is already running for $IPFS_PATH (pid $(<"$PID_FILE"))"
	fi
	init_repo
	mkdir -p "$IPFS_PATH"
	# --offline: no libp2p networking at all; only the loopback API and gateway listen.
	nohup "$KUBO_BIN" daemon --offline >"$LOG_FILE" 2>&1 </dev/null &
	local pid=$!
	echo "$pid" >"$PID_FILE"
	local deadline=$((SECONDS + START_TIMEOUT))
	until api_up; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PID_FILE"
			cat "$LOG_FILE" >&2 || true
			die "kubo daemon exited before its API answered"
		fi
		if ((SECONDS >= deadline)); then
			stop
			cat "$LOG_FILE" >&2 || true
			die "kubo API did not answer on 127.0.0.1:$API_PORT within ${START_TIMEOUT}s"
		fi
		sleep 0.2
	done
	log "kubo running (pid $pid) with API 127.0.0.1:$API_PORT, repo $IPFS_PATH"
}

stop() {
	local pid
	if ! pid=$(running_pid); then
		rm -f "$PID_FILE"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 20))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "kubo (pid $pid) ignored SIGTERM for 20s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.1
	done
	rm -f "$PID_FILE"
}

status() {
	if api_up; then
		echo "127.0.0.1:$API_PORT"
		return 0
	fi
	log "no kubo API on 127.0.0.1:$API_PORT"
	return 1
}

case ${1:-} in
build) build ;;
init) init_repo ;;
start) start ;;
stop) stop ;;
status) status ;;
path) echo "$KUBO_BIN" ;;
*)
	sed -n '2,27p' "$0" >&2
	exit 2
	;;
esac
