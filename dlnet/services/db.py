"""PostgreSQL access: one connection pool per service and forward-only SQL migrations.

Each service owns one schema (federation, compliance, bridge). Migrations are the files
`migrations/<service>/NNN_name.sql`, applied in order inside one transaction each, recorded in
`<schema>.schema_migrations`, under an advisory lock so two replicas starting together never race.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import resources

import psycopg
from psycopg_pool import ConnectionPool

from dlnet.errors import DlnetError
from dlnet.services.settings import DatabaseSettings
from dlnet.services.web import log


def migrations(service: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration of a service, in order."""
    root = resources.files("dlnet.services") / "migrations" / service
    out = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text()))
    return out


def migrate(conninfo: str, service: str) -> list[str]:
    """Apply pending migrations of `service`; return the names applied (empty when up to date)."""
    lock = int.from_bytes(hashlib.sha256(f"dlnet-migrate-{service}".encode()).digest()[:8], "big", signed=True)
    applied: list[str] = []
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (lock,))
            try:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {service}")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {service}.schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {r[0] for r in conn.execute(f"SELECT version FROM {service}.schema_migrations")}
                for version, name, sql in migrations(service):
                    if version in done:
                        continue
                    with conn.transaction():
                        conn.execute(sql)  # type: ignore[arg-type]  # our own files, not user input
                        conn.execute(
                            f"INSERT INTO {service}.schema_migrations (version, name) VALUES (%s, %s)",
                            (version, name),
                        )
                    applied.append(name)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))
    except psycopg.OperationalError as exc:
        raise DlnetError(f"cannot reach PostgreSQL for {service} migrations: {_first_line(exc)}") from None
    return applied


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or ["no detail"])[0]


def open_pool(db: DatabaseSettings, service: str) -> ConnectionPool:
    conninfo = db.conninfo()
    pool = ConnectionPool(
        conninfo,
        min_size=db.pool_min,
        max_size=db.pool_max,
        kwargs={"autocommit": True, "options": f"-c search_path={service}"},
        open=False,
        name=service,
    )
    pool.open(wait=False)
    return pool


def migrate_and_open(db: DatabaseSettings, service: str, logger: logging.Logger) -> ConnectionPool:
    """A service's start: apply its pending migrations (logged), then open its pool."""
    applied = migrate(db.conninfo(), service)
    if applied:
        log(logger, logging.INFO, "migrations applied", applied=applied)
    return open_pool(db, service)
