"""Deploy inventories/local for real, once per session, as `make up` does.

The network runs as environment `test` (containers dlnet-test-*, data /var/lib/dlnet/test, secrets
under build/test-state) so it never touches an operator's `local` network. Without stellar-core and
Horizon artifacts the stellar_core and horizon roles still run, on a test double of both binaries
(tests/doubles/stellar_binaries, images tagged `test-double`); the tests that need the real
binaries skip with one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from dlnet.preflight import Artifacts
from tests.conftest import ROOT

ENV = "test"
INVENTORY = ROOT / "inventories" / "local"
STATE = ROOT / "build" / "test-state"
LOGS = ROOT / "build" / "test-logs"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
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
    return {"STELLAR_CORE_BIN": str(DOUBLES / "stellar-core"), "HORIZON_BIN": str(horizon), "IMAGE_TAG": "test-double"}


@dataclass
class Deployment:
    extra_vars: dict[str, object]
    env: dict[str, str] = field(default_factory=dict)
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def stellar(self) -> bool:
        return bool(self.extra_vars.get("dlnet_components", {}).get("stellar_core", True))  # type: ignore[union-attr]

    @property
    def double(self) -> bool:
        """stellar-core and Horizon are the test double, not the real binaries."""
        return "STELLAR_CORE_BIN" in self.env

    def playbook(self, name: str, *args: str, log: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = LOGS / "extra-vars.json"
        extra.write_text(json.dumps(self.extra_vars))
        env = {
            **os.environ,
            **self.env,
            "DLNET_STATE_DIR": str(STATE),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
        start = time.monotonic()
        proc = subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", str(INVENTORY), str(ROOT / "deploy" / name), "-e", f"@{extra}", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=False,
        )
        took = time.monotonic() - start
        (LOGS / (log or name.replace(".yml", ".log"))).write_text(proc.stdout + proc.stderr)
        if name == "site.yml" and "--check" not in args:
            self.runs.append(proc)
            self.seconds.append(took)
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
    build = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_images.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, **env},
    )
    (LOGS / "images.log").write_text(build.stdout + build.stderr)
    assert build.returncode == 0, f"image build failed (build/test-logs/images.log):\n{build.stderr[-2000:]}"
    dep = Deployment(extra, env)
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
