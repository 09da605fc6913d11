#!/usr/bin/env bash
# Install the Debian packages the tests need, listed one per line in deps/apt-*.txt.
set -euo pipefail
mapfile -t pkgs < <(cat deps/apt-*.txt 2>/dev/null | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
[ "${#pkgs[@]}" -gt 0 ] || exit 0
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
[ "${#missing[@]}" -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ]; then
  echo "error: missing Debian packages: ${missing[*]} — install them (apt-get install ${missing[*]}) or run as root" >&2
  exit 1
fi
printf '>> installing Debian packages: %s\n' "${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
