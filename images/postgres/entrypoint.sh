#!/bin/sh
# First start: initialise the cluster with the superuser password read from a file (never from env
# or argv, so it shows in neither `docker inspect` nor `ps`). Later starts: just run.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE must name a file holding the superuser password}"
  initdb --pgdata="$PGDATA" --username=postgres --pwfile="$POSTGRES_PASSWORD_FILE" \
         --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "dlnet-postgres: initialised $PGDATA"
fi
exec postgres -D "$PGDATA" -c listen_addresses="$POSTGRES_LISTEN" -c port="$POSTGRES_PORT" \
  -c unix_socket_directories=/run/postgresql
