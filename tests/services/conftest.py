"""Fixtures for the service tests: a real PostgreSQL cluster, a real kubo private swarm, live servers."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from dlnet.services.settings import DatabaseSettings
from tests.services import pg


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pg.Cluster]:
    if pg.pg_bindir() is None:
        pytest.skip("needs PostgreSQL (initdb): apt-get install postgresql, see deps/apt-services.txt")
    with pg.cluster() as c:
        yield c


@pytest.fixture
def database(pg_cluster: pg.Cluster) -> DatabaseSettings:
    """A fresh, empty database for one test."""
    name = pg_cluster.new_database()
    return DatabaseSettings(dsn=pg_cluster.dsn(name), password_file=pg_cluster.password_file)


@pytest.fixture
def secret_file(tmp_path: Path):
    def make(name: str, value: str) -> Path:
        p = tmp_path / name
        p.write_text(value + "\n")
        p.chmod(0o600)
        return p
    return make


@contextlib.contextmanager
def live_server(make_app) -> Iterator[str]:
    """Serve `make_app(base_url)` on 127.0.0.1:<ephemeral>; yield the base URL."""
    port = pg.free_port()
    app = make_app(f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("server failed to start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def kubo_swarm() -> Iterator[list[str]]:
    from tests.services import kubo

    if kubo.kubo_bin() is None:
        pytest.skip("needs kubo: run `make kubo` (builds build/bin/ipfs) or set IPFS_BIN")
    with kubo.swarm(2) as urls:
        yield urls
