#!/usr/bin/env bash
# axe.sh — provide a pinned axe-core (the accessibility rules engine) for the
# real-browser tests, which inject it into pages they scan, and print the
# path of its axe.min.js.
#
# Usage: scripts/axe.sh
#
#   Installs axe-core ${AXE_VERSION} from the npm registry into the cache,
#   only when it is missing or another version (serialised with a lock, so
#   concurrent callers install once), then prints the absolute path of
#   axe.min.js on stdout. Idempotent: a second run only prints.
#
# Environment:
#   MEDPROV_CACHE   cache root (default $HOME/.cache/medprov); axe-core lives
#                   in $MEDPROV_CACHE/npm, beside the OpenAPI linters
set -euo pipefail

AXE_VERSION=4.14.1
MEDPROV_CACHE=${MEDPROV_CACHE:-$HOME/.cache/medprov}
NPM_DIR=$MEDPROV_CACHE/npm
AXE_JS=$NPM_DIR/node_modules/axe-core/axe.min.js

export NO_UPDATE_NOTIFIER=1

log() { printf 'axe.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# have_axe succeeds when axe-core@$AXE_VERSION and its axe.min.js are in $NPM_DIR.
have_axe() {
	local pj=$NPM_DIR/node_modules/axe-core/package.json
	[[ -f $pj && -s $AXE_JS ]] &&
		[[ "$(node -p "require(process.argv[1]).version" "$pj" 2>/dev/null)" == "$AXE_VERSION" ]]
}

install() {
	if have_axe; then
		return 0
	fi
	command -v npm >/dev/null || die "npm is required (apt-get install nodejs npm)"
	mkdir -p "$NPM_DIR"
	# The same lock as scripts/openapi-lint.sh: both install into $NPM_DIR.
	exec 9>"$NPM_DIR/install.lock"
	flock 9
	# Another caller may have finished the install while we waited.
	if have_axe; then
		return 0
	fi
	log "installing axe-core@$AXE_VERSION into $NPM_DIR"
	npm install --prefix "$NPM_DIR" --no-audit --no-fund --save-exact --loglevel=error \
		"axe-core@$AXE_VERSION" >&2 ||
		die "npm install failed (see the npm output above)"
	have_axe || die "npm install finished but axe-core@$AXE_VERSION is not in $NPM_DIR"
}

install
printf '%s\n' "$AXE_JS"
