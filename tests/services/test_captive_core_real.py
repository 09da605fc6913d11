"""The real Horizon accepts the captive-core file the kit renders for its version.

Horizon reads its database before it parses the captive-core file, so each run gets a throwaway
PostgreSQL (tests/services/pg.py). A file with a key that version refuses is the control: it must make
the same Horizon stop with "these fields are not supported by captive core".
"""

from __future__ import annotations

import os
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from dlnet.preflight import Artifacts
from tests.conftest import ROOT, skip_or_fail
from tests.render import _render
from tests.services import pg

ACCEPTED = "Ingestion system state machine transition"  # captive core configured, ingestion started
REFUSED = "Invalid captive core toml"


def _horizon_on(cfg: Path, cluster: pg.Cluster, core: Path, horizon: Path, storage: Path, timeout: float = 60) -> str:
    db = cluster.new_database()
    storage.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{cluster.user}:{cluster.password}@{cluster.host}:{cluster.port}/{db}?sslmode=disable",
        "NETWORK_PASSPHRASE": tomllib.loads(cfg.read_text())["NETWORK_PASSPHRASE"],
        "HISTORY_ARCHIVE_URLS": "http://127.0.0.1:1",  # nothing there: the run ends before it matters
        "CAPTIVE_CORE_CONFIG_PATH": str(cfg), "CAPTIVE_CORE_STORAGE_PATH": str(storage),
        "STELLAR_CORE_BINARY_PATH": str(core), "INGEST": "true", "APPLY_MIGRATIONS": "true",
        "PORT": str(pg.free_port()), "ADMIN_PORT": "0",
    }
    proc = subprocess.Popen([str(horizon)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            seen.append(line)
            if ACCEPTED in line or REFUSED in line or time.monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait(10)
    return "".join(seen)


def test_real_horizon_accepts_the_rendered_captive_core_file(tmp_path: Path, pg_cluster: pg.Cluster) -> None:
    art = Artifacts.resolve(ROOT / "artifacts")
    if not (art.stellar_core.is_file() and art.horizon.is_file()):
        skip_or_fail("needs the real stellar-core and Horizon (artifacts/ or STELLAR_CORE_BIN/HORIZON_BIN)")
    version = subprocess.run([str(art.horizon), "version"], capture_output=True, text=True, check=True).stdout
    if "test-double" in version:
        pytest.skip("the Horizon artifact is the test double")
    want = version.split()[0].removeprefix("horizon-v")
    proc = _render(tmp_path, "accelerated-1s", "19.14.0", playbook="render-captive-core.yml",
                   horizon={"horizon1": {"horizon_version": want}})
    assert proc.returncode == 0, proc.stdout[-3000:]
    cfg = tmp_path / "data" / "horizon1-captive-core.cfg"
    out = _horizon_on(cfg, pg_cluster, art.stellar_core, art.horizon, tmp_path / "storage")
    assert ACCEPTED in out and REFUSED not in out, out[-3000:]
    # Control: the key 2.26 refuses, in the same file, stops the same Horizon.
    bad = tmp_path / "bad.cfg"
    bad.write_text(cfg.read_text().replace("PEER_PORT=", "PREFERRED_PEERS_ONLY=true\nPEER_PORT=", 1))
    out = _horizon_on(bad, pg_cluster, art.stellar_core, art.horizon, tmp_path / "storage-bad")
    if want.startswith("2."):
        assert REFUSED in out and "PREFERRED_PEERS_ONLY" in out, out[-3000:]
