#!/bin/sh
# Horizon 2.x reads its database URL from DATABASE_URL or --db-url only (no file option:
# services/horizon/internal/flags.go in stellar/go). The role mounts the URL as a 0600 file and names it in
# DATABASE_URL_FILE; it is exported here, just before exec, so the password shows in neither `docker inspect`
# nor `ps` (only in /proc/<pid>/environ, which root and the horizon user can read).
set -eu
if [ -n "${DATABASE_URL_FILE:-}" ]; then
  DATABASE_URL=$(cat "$DATABASE_URL_FILE")
  export DATABASE_URL
  unset DATABASE_URL_FILE
fi
exec stellar-horizon "$@"
