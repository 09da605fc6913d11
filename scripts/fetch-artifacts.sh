#!/usr/bin/env bash
# Fetch SDF's official stellar-core and Horizon into artifacts/ (internet-connected hosts only).
# The packages come from SDF's signed apt repository (Ubuntu jammy builds, which run on Debian
# bookworm); they are downloaded and unpacked inside a throwaway container from dlnet/base.
# Versions: STELLAR_CORE_VERSION / HORIZON_VERSION, default those of inventories/$ENV.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV="${ENV:-local}"
vars="inventories/$ENV/group_vars/all/versions.yml"
core="${STELLAR_CORE_VERSION:-$(sed -n 's/^stellar_core_version: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' "$vars")}"
horizon="${HORIZON_VERSION:-$(sed -n 's/^horizon_version: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' "$vars")}"
suite="${SDF_APT_SUITE:-jammy}"
base="dlnet/base:$(sed -n 's/^DEBIAN_SUITE=//p' versions.env)"
mkdir -p artifacts
docker image inspect "$base" >/dev/null 2>&1 || .venv/bin/python scripts/build_images.py base
echo ">> stellar-core $core and Horizon $horizon from apt.stellar.org ($suite)"
docker run --rm --network host -v "$PWD/artifacts:/out" \
  -e CORE="$core" -e HORIZON="$horizon" -e SUITE="$suite" "$base" bash -euo pipefail -c '
    apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates curl gnupg >/dev/null
    curl -fsSL https://apt.stellar.org/SDF.asc | gpg --dearmor > /usr/share/keyrings/sdf.gpg
    echo "deb [signed-by=/usr/share/keyrings/sdf.gpg] https://apt.stellar.org $SUITE stable" > /etc/apt/sources.list.d/sdf.list
    apt-get update -qq
    pick() { apt-cache madison "$1" | awk -v v="$2" '"'"'index($3, v) == 1 {print $3; exit}'"'"'; }
    cv=$(pick stellar-core "$CORE"); hv=$(pick stellar-horizon "$HORIZON")
    [ -n "$cv" ] || { echo "error: stellar-core $CORE not in apt.stellar.org $SUITE stable" >&2; exit 1; }
    [ -n "$hv" ] || { echo "error: stellar-horizon $HORIZON not in apt.stellar.org $SUITE stable" >&2; exit 1; }
    cd /tmp && apt-get download -qq "stellar-core=$cv" "stellar-horizon=$hv"
    for deb in stellar-core_*.deb stellar-horizon_*.deb; do dpkg-deb -x "$deb" /tmp/x; done
    install -m 0755 /tmp/x/usr/bin/stellar-core /tmp/x/usr/bin/stellar-horizon /out/
    echo "fetched stellar-core $cv, stellar-horizon $hv"'
artifacts/stellar-core version | head -1
