#!/usr/bin/env bash
# openapi-lint.sh — lint the gateway's OpenAPI document with two independent
# linters, so that the contract served at /openapi.yaml stays a valid,
# complete OpenAPI 3 document that code generators and validators accept.
#
# Usage: scripts/openapi-lint.sh [SPEC]   (relative to the repository root;
#                                         default gateway/openapi.yaml)
#
#   1. installs, only when missing, pinned versions of @redocly/cli and
#      @stoplight/spectral-cli from the npm registry into the cache
#      (serialised with a lock, so concurrent callers install once);
#   2. runs `redocly lint` with its recommended ruleset (redocly.yaml);
#   3. runs `spectral lint` with spectral:oas (.spectral.yaml), failing on
#      errors.
# It exits non-zero if either linter reports an error; warnings are printed
# but do not fail the run.
#
# Environment:
#   MEDPROV_CACHE   cache root (default $HOME/.cache/medprov); the linters
#                   live in $MEDPROV_CACHE/npm
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REDOCLY_VERSION=2.77.0
SPECTRAL_VERSION=6.16.3
MEDPROV_CACHE=${MEDPROV_CACHE:-$HOME/.cache/medprov}
NPM_DIR=$MEDPROV_CACHE/npm
SPEC=${1:-gateway/openapi.yaml}

# Neither linter may phone home from CI: no telemetry, no update checks.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1

log() { printf 'openapi-lint.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# installed PKG VERSION succeeds when PKG@VERSION is in $NPM_DIR.
installed() {
	local pj=$NPM_DIR/node_modules/$1/package.json
	[[ -f $pj ]] && [[ "$(node -p "require(process.argv[1]).version" "$pj" 2>/dev/null)" == "$2" ]]
}

have_linters() {
	installed @redocly/cli "$REDOCLY_VERSION" && installed @stoplight/spectral-cli "$SPECTRAL_VERSION" &&
		[[ -x $NPM_DIR/node_modules/.bin/redocly && -x $NPM_DIR/node_modules/.bin/spectral ]]
}

install() {
	command -v npm >/dev/null || die "npm is required (apt-get install nodejs npm)"
	if have_linters; then
		return 0
	fi
	mkdir -p "$NPM_DIR"
	exec 9>"$NPM_DIR/install.lock"
	flock 9
	# Another caller may have finished the install while we waited.
	if have_linters; then
		return 0
	fi
	log "installing @redocly/cli@$REDOCLY_VERSION and @stoplight/spectral-cli@$SPECTRAL_VERSION into $NPM_DIR"
	npm install --prefix "$NPM_DIR" --no-audit --no-fund --save-exact --loglevel=error \
		"@redocly/cli@$REDOCLY_VERSION" "@stoplight/spectral-cli@$SPECTRAL_VERSION" >&2 ||
		die "npm install failed (see the npm output above)"
	have_linters || die "npm install finished but the pinned linters are not in $NPM_DIR"
}

[[ -f $SPEC ]] || die "no such file: $SPEC"
install
bin=$NPM_DIR/node_modules/.bin
status=0

printf '=== redocly lint %s (redocly.yaml: recommended)\n' "$SPEC"
"$bin/redocly" lint --config redocly.yaml "$SPEC" || status=1

printf '\n=== spectral lint %s (.spectral.yaml: spectral:oas)\n' "$SPEC"
"$bin/spectral" lint --ruleset .spectral.yaml --fail-severity error "$SPEC" || status=1

if ((status != 0)); then
	die "$SPEC has lint errors"
fi
log "$SPEC: no lint errors"
