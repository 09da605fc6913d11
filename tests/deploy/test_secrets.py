"""Secrets stay secret on the network `make up` deploys from inventories/local as shipped (issue 9).

- every file the kit writes that holds a secret (or the root seed) is closed to group and others, on the
  controller (build/test-state) and in the environment's data directory (/var/lib/dlnet/test);
- no secret appears in `docker inspect` or `docker logs` of any dlnet-test-* container, in `ps`, or in the
  playbook output (build/test-logs/*.log);
- the root account, whose seed anyone can compute from the committed passphrase, is locked (master weight
  0, checked through Horizon) and holds next to nothing: no usable key is derivable from the repository.
"""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import urllib.parse
from pathlib import Path

import httpx
import pytest
from stellar_sdk import Keypair

from dlnet import day2
from tests.conftest import skip_or_fail
from tests.network import ENV, INVENTORY, LOGS, STATE, Deployment, containers

SECRETS = STATE / ENV / "secrets"
DATA = Path("/var/lib/dlnet") / ENV
MAX_SCAN = 64 * 1024 * 1024  # ledgers, TSDB blocks and bucket files above this hold no generated secret


def _passphrase() -> str:
    net, _ = day2.load(INVENTORY, [f"dlnet_env={ENV}"])
    return net.passphrase


def _root(passphrase: str) -> Keypair:
    return Keypair.from_raw_ed25519_seed(hashlib.sha256(passphrase.encode()).digest())


@pytest.fixture(scope="module")
def secret_values(deployment: Deployment) -> dict[str, str]:
    """Every secret the kit generated, plus what derives from the passphrase and unlocks the root."""
    values: dict[str, str] = {}
    for f in sorted(SECRETS.iterdir()):
        if f.suffix == ".pub" or not f.is_file():
            continue
        lines = [line.strip() for line in f.read_text().splitlines() if line.strip() and not line.startswith("/")]
        for i, line in enumerate(lines):
            values[f"{f.name}[{i}]"] = line
            if f.name.endswith(".password"):
                values[f"{f.name}[{i}] urlencoded"] = urllib.parse.quote(line, safe="")
    passphrase = _passphrase()
    values["root seed"] = _root(passphrase).secret
    values["root seed (hex)"] = hashlib.sha256(passphrase.encode()).hexdigest()
    assert any(k.startswith("postgres.password") for k in values) and any(k.startswith("v1.seed") for k in values)
    return values


def _leaks(text: str, values: dict[str, str]) -> list[str]:
    """The names (never the values) of the secrets found in `text`."""
    return [name for name, value in values.items() if value in text]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


@pytest.mark.parametrize("root", [STATE, DATA], ids=["controller-state", "host-data"])
def test_files_holding_secrets_are_closed_to_group_and_others(
    deployment: Deployment, secret_values: dict[str, str], root: Path
) -> None:
    assert root.is_dir(), f"{root} missing: was the network deployed?"
    holding, open_ = [], []
    for path in _files(root):
        # stellar-core creates and deletes temporary bucket snapshots while the scan runs: a file gone
        # between the listing and the read held nothing to check.
        try:
            st = path.stat()
            if st.st_size > MAX_SCAN:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        found = [name for name, value in secret_values.items() if value.encode() in data]
        if found:
            holding.append(path)
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                open_.append(f"{path} ({oct(mode)}): {', '.join(found)}")
    assert holding, f"no file under {root} holds a secret: the scan found nothing to check"
    assert not open_, "files holding secrets readable by group or others:\n" + "\n".join(open_)


def test_controller_state_directory_is_private(deployment: Deployment) -> None:
    for d in (STATE / ENV, SECRETS):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    record = STATE / ENV / "network.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert "passphrase_sha256" not in json.loads(record.read_text())


def test_no_secret_in_docker_inspect_or_logs(deployment: Deployment, secret_values: dict[str, str]) -> None:
    names = list(containers(all_=True))
    assert names
    for name in names:
        inspect = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout
        leaked = _leaks(inspect, secret_values)  # names only: a failing test must not print the values
        assert not leaked, f"docker inspect {name} shows {leaked}"
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
        leaked = _leaks(logs.stdout + logs.stderr, secret_values)
        assert not leaked, f"docker logs {name} shows {leaked}"


def test_no_secret_in_any_process_command_line(deployment: Deployment, secret_values: dict[str, str]) -> None:
    ps = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True, check=True).stdout
    assert f"dlnet-{ENV}" in ps or "stellar-core" in ps or "postgres" in ps  # the network's processes are listed
    leaked = _leaks(ps, secret_values)
    assert not leaked, f"ps shows {leaked}"


def test_no_secret_in_the_playbook_output(deployment: Deployment, secret_values: dict[str, str]) -> None:
    logs = sorted(LOGS.glob("*.log"))
    assert any(p.name.startswith("site") for p in logs), logs
    for log in logs:
        leaked = _leaks(log.read_text(errors="replace"), secret_values)
        assert not leaked, f"{log} shows {leaked}"


def test_root_account_is_locked_and_holds_next_to_nothing(deployment: Deployment) -> None:
    if deployment.double:
        skip_or_fail("the stellar-core/Horizon double applies no transactions: needs the real binaries")
    net, _ = day2.load(INVENTORY, [f"dlnet_env={ENV}"])
    root = _root(net.passphrase)
    acc = httpx.get(f"{day2.horizon_url(net)}/accounts/{root.public_key}", timeout=10).json()
    weights = {s["key"]: s["weight"] for s in acc["signers"]}
    assert weights == {root.public_key: 0}, weights
    native = next(float(b["balance"]) for b in acc["balances"] if b["asset_type"] == "native")
    assert native < 100, f"the locked root still holds {native} XLM"
    funder_seed = SECRETS / "funder.seed"
    assert stat.S_IMODE(funder_seed.stat().st_mode) == 0o600
    funder = Keypair.from_secret(funder_seed.read_text().strip())
    got = httpx.get(f"{day2.horizon_url(net)}/accounts/{funder.public_key}", timeout=10).json()
    assert float(next(b["balance"] for b in got["balances"] if b["asset_type"] == "native")) > 1e9


def test_prometheus_has_no_lifecycle_api(deployment: Deployment) -> None:
    """/-/quit and /-/reload are unauthenticated: with them, anyone who reaches the port stops Prometheus."""
    port = 9090
    assert httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=10).status_code == 200
    for path in ("/-/reload", "/-/quit"):
        r = httpx.post(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert r.status_code == 403 and "Lifecycle API is not enabled" in r.text, (path, r.status_code, r.text)
    assert httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=10).status_code == 200
