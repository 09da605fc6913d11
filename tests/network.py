"""Deploy inventories/local for real, once per session, as `make up` does.

The network runs as environment `test` (containers dlnet-test-*, data /var/lib/dlnet/test, secrets
under build/test-state) so it never touches an operator's `local` network. Without stellar-core and
Horizon artifacts the stellar_core and horizon roles still run, on a test double of both binaries
(tests/doubles/stellar_binaries, images tagged `test-double`); the tests that need the real
binaries skip with one line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from dlnet.preflight import Artifacts
from dlnet.testnet import ANSIBLE_PLAYBOOK, Deployment, Ports, build_images, real_stellar_core, validators_inventory
from tests.conftest import ROOT, skip_or_fail

__all__ = ["ANSIBLE_PLAYBOOK", "Deployment"]  # the deployment tests import them from here

ENV = "test"
INVENTORY = ROOT / "inventories" / "local"
STATE = ROOT / "build" / "test-state"
LOGS = ROOT / "build" / "test-logs"
NEEDS_STELLAR = (
    "needs stellar-core and Horizon: put the binaries in artifacts/ (stellar-core, stellar-horizon) "
    "or set STELLAR_CORE_BIN/HORIZON_BIN, then make test"
)


def stellar_artifacts() -> bool:
    art = Artifacts.resolve(ROOT / "artifacts")
    return art.stellar_core.is_file() and art.horizon.is_file()


DOUBLES = ROOT / "build" / "doubles"


def build_double() -> dict[str, str]:
    """Build the stellar-core/Horizon double; return the environment that makes it the artifact."""
    DOUBLES.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["go", "build", "-o", str(DOUBLES / "stellar-core"), "."],
        cwd=ROOT / "tests" / "doubles" / "stellar_binaries",
        capture_output=True,
        text=True,
        env={**os.environ, "CGO_ENABLED": "0"},
        check=False,
    )
    assert proc.returncode == 0, f"building the stellar-core test double failed: {proc.stderr[-2000:]}"
    horizon = DOUBLES / "stellar-horizon"
    if not horizon.is_symlink():
        horizon.unlink(missing_ok=True)
        horizon.symlink_to("stellar-core")
    return {
        "STELLAR_CORE_BIN": str(DOUBLES / "stellar-core"),
        "HORIZON_BIN": str(horizon),
        "IMAGE_TAG": "test-double",
        # The double applies no transactions: the root account cannot be locked on it.
        "ANSIBLE_SKIP_TAGS": "root_lock",
    }


def run_cli(dep: Deployment, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`dlnet <args> -i <dep's inventory>` in a subprocess, as an operator runs it, with dep's state directory;
    its stderr (progress) is kept in dep.logs/dlnet-<verb>-<time>.log."""
    proc = subprocess.run(
        [sys.executable, "-m", "dlnet", *args, "-i", str(dep.inventory)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DLNET_STATE_DIR": str(dep.state)},
        timeout=timeout,
        check=False,
    )
    dep.logs.mkdir(parents=True, exist_ok=True)
    (dep.logs / f"dlnet-{args[0]}-{time.time():.0f}.log").write_text(proc.stderr)
    return proc


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines as {host: {ok, changed, failed, ...}}."""
    out = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if m:
            out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def containers(env: str = ENV, all_: bool = False) -> dict[str, str]:
    """Name -> status of the environment's containers."""
    cmd = ["docker", "ps", "--filter", f"label=dlnet.environment={env}", "--format", "{{.Names}}\t{{.Status}}"]
    if all_:
        cmd.insert(2, "-a")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if line)


def _engine_ready() -> None:
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("no Docker engine answers: run `make engine` (make test does) or start dockerd")
    busy = {n: s for n, s in containers("local").items() if s.startswith("Up")}
    if busy:
        pytest.fail(f"a `local` network is running on the ports the test uses ({', '.join(busy)}): `make down` first")


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    _engine_ready()
    LOGS.mkdir(parents=True, exist_ok=True)
    if not (ROOT / "build" / "bin" / "ipfs").is_file():
        pytest.fail("build/bin/ipfs missing: run `make kubo` (make test does)")
    extra: dict[str, object] = {"dlnet_env": ENV}
    env: dict[str, str] = {}
    if not stellar_artifacts():
        env = build_double()
        extra["dlnet_image_tag"] = env["IMAGE_TAG"]
        # The Horizon double has no admin port (no captured Horizon /metrics to model one on).
        extra["prometheus_horizon_admin_port"] = 0
    build_images(LOGS, env=env)
    dep = Deployment(extra, INVENTORY, STATE, LOGS, env)
    # A clean start: whatever an earlier session left of the test network goes first.
    dep.playbook("remove-network.yml", log="remove-before.log")
    shutil.rmtree(STATE, ignore_errors=True)
    first = dep.playbook("site.yml", log="site-1.log")
    assert first.returncode == 0, f"make up failed (build/test-logs/site-1.log):\n{first.stdout[-4000:]}"
    yield dep
    if os.environ.get("DLNET_KEEP_TEST_NETWORK") != "1":
        dep.playbook("remove-network.yml", log="remove-after.log")


def api(port: int, path: str, **params: object) -> httpx.Response:
    """kubo RPC: POST only."""
    return httpx.post(f"http://127.0.0.1:{port}/api/v0/{path}", params=params, timeout=30)


def wait_for(predicate, timeout: float = 60, every: float = 1.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    return last


# A second real network for destructive day-2 tests (faults, rolling restarts, key rotation, backup and
# restore): 3 validators (1 s ledgers) + PostgreSQL + Horizon, deployed with the kit's own playbooks from
# an inventory dlnet/testnet.py generates, on ports clear of the shared `test` network. One per session,
# shared by every test that asks for `ops_network`; each test leaves it healthy. Developers running such
# tests side by side give each run its own slot: DLNET_OPS_ENV=name DLNET_OPS_SLOT=1..4 (ports move).
OPS_ENV = os.environ.get("DLNET_OPS_ENV", "ops")
OPS_SLOT = int(os.environ.get("DLNET_OPS_SLOT", "0"))


def ops_ports(slot: int = OPS_SLOT) -> Ports:
    return Ports(
        peer=12025 + 100 * slot,
        history=11680 + 10 * slot,
        horizon=8020 + slot,
        horizon_admin=6071 + slot,
        captive_core_peer=11750 + 2 * slot,
        captive_core_http=11751 + 2 * slot,
        postgres=15452 + slot,
    )


@pytest.fixture(scope="session")
def ops_network() -> Iterator[Deployment]:
    if real_stellar_core() is None:
        skip_or_fail(NEEDS_STELLAR)
    _engine_ready()
    dep = validators_inventory(ROOT / "build" / OPS_ENV, OPS_ENV, ports=ops_ports(), accelerate=True, horizon=True)
    build_images(dep.logs, ["base", "stellar-core", "horizon", "postgres", "tools"])
    dep.playbook("remove-network.yml", log="remove-before.log")  # whatever an earlier run left
    shutil.rmtree(dep.state, ignore_errors=True)
    try:
        # site.yml locks the root (upgrading to the latest protocol first), as `make up` does.
        site = dep.playbook("site.yml")
        assert site.returncode == 0, f"deploy of {OPS_ENV} failed ({dep.logs}/site.log):\n{site.stdout[-3000:]}"
        yield dep
    finally:
        if os.environ.get("DLNET_KEEP_TEST_NETWORK") != "1":
            dep.playbook("remove-network.yml", log="remove-after.log")
