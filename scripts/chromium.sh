#!/usr/bin/env bash
# chromium.sh — make Debian's headless-capable Chromium available for the
# real-browser tests (internal/browser), and print its path.
#
# Usage: scripts/chromium.sh
#
#   Installs the Debian package `chromium` with apt-get (after apt-get update,
#   non-interactive) only when /usr/bin/chromium is missing, then prints
#   /usr/bin/chromium (stdout) and its version (stderr). Idempotent: a second
#   run does nothing but print. The browser comes from Debian only; nothing
#   here or in the tests downloads a browser build of its own.
#
#   Recommended packages are left out (upower, udev, mesa, a printer
#   applet...), except fonts-liberation, installed as well when missing, so
#   that pages and screenshots render with the same metric-compatible fonts
#   (Arial/Times/Courier equivalents) on every machine.
#
# Installing needs root (or passwordless sudo); the tests run Chromium
# headless with --no-sandbox, which works as root.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
FONTS=/usr/share/fonts/truetype/liberation

log() { printf 'chromium.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# missing lists the Debian packages this script provides that are absent.
missing() {
	[[ -x $CHROMIUM ]] || echo chromium
	[[ -d $FONTS ]] || echo fonts-liberation
}

install() {
	local pkgs=("$@") sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "${pkgs[*]} missing and installing needs root (apt-get install ${pkgs[*]})"
		sudo=(sudo -n)
	fi
	command -v apt-get >/dev/null || die "${pkgs[*]} missing and there is no apt-get to install it"
	# apt-get serialises itself on the dpkg lock; wait for it rather than fail
	# when another caller is installing at the same time.
	local apt=(apt-get -o DPkg::Lock::Timeout=300 -y -q)
	log "installing ${pkgs[*]} from Debian (first run only)"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >&2 ||
		die "apt-get update failed"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "${pkgs[@]}" >&2 ||
		die "apt-get install ${pkgs[*]} failed"
	[[ -x $CHROMIUM ]] || die "apt-get install finished but $CHROMIUM is missing"
}

mapfile -t pkgs < <(missing)
if ((${#pkgs[@]} > 0)); then
	install "${pkgs[@]}"
fi
log "$("$CHROMIUM" --version 2>/dev/null || echo "version unknown")"
printf '%s\n' "$CHROMIUM"
