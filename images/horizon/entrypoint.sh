#!/bin/bash
# Horizon 2.x reads its database URL from DATABASE_URL or --db-url only (no file option:
# services/horizon/internal/flags.go in stellar/go). The role mounts the URL as a 0600 file and names it in
# DATABASE_URL_FILE; it is exported here, just before exec, so the password shows in neither `docker inspect`
# nor `ps` (only in /proc/<pid>/environ, which root and the horizon user can read).
#
# Captive core runs `new-db` on every start and logs "Root account seed: S..." (stellar-core 19.14, see
# ../shared/reference/); Horizon copies captive core's log into its own. The output goes through sed, which
# blanks that seed, so `docker logs` never holds it. Horizon stays the exec'd process (signals reach it);
# sed ends when Horizon's output does.
set -euo pipefail
if [ -n "${DATABASE_URL_FILE:-}" ]; then
  DATABASE_URL=$(cat "$DATABASE_URL_FILE")
  export DATABASE_URL
  unset DATABASE_URL_FILE
fi
exec > >(exec sed -u -e '/Root account seed/s/S[A-Z2-7]\{55,\}/[seed redacted by dlnet]/g') 2>&1
exec stellar-horizon "$@"
