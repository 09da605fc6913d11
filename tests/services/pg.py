"""A throwaway PostgreSQL cluster for the service tests (Debian's postgresql, any major)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bindir() -> Path | None:
    env = os.environ.get("PG_BINDIR")
    if env and Path(env, "initdb").exists():
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


@dataclass
class Cluster:
    host: str
    port: int
    user: str
    password: str
    password_file: Path

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} dbname={dbname} user={self.user}"

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"{self.dsn(dbname)} password={self.password}"

    def new_database(self) -> str:
        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.conninfo(), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return name


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    bindir = pg_bindir()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="dlnet-pg-"))
    os.chmod(root, 0o755)
    data, run = root / "data", root / "run"
    data.mkdir(mode=0o700)
    run.mkdir(mode=0o755)
    password = secrets.token_urlsafe(18)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    # PostgreSQL refuses to run as root: run it as `nobody` when we are root.
    prefix: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for p in (data, run, pwfile):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        prefix = ["runuser", "-u", "nobody", "--"]
    port = free_port()
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "dlnet", "--auth=scram-sha-256",
                    f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
    log = root / "log"
    if os.geteuid() == 0:
        log.touch()
        os.chown(log, pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={run} -c fsync=off " \
           "-c max_connections=200 -c full_page_writes=off"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"],
                   check=True, capture_output=True)
    c = Cluster("127.0.0.1", port, "dlnet", password, pwfile)
    try:
        for _ in range(100):
            try:
                psycopg.connect(c.conninfo(), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        yield c
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
