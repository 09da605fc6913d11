"""`make up` with stellar-core and Horizon artifacts: validators in consensus, Horizon ingesting.

Skipped, with one line saying what to supply, when the binaries are not there.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
import testinfra
import yaml

from dlnet import compat, preflight
from dlnet.config import load_network
from dlnet.preflight import Artifacts
from tests.conftest import ROOT, skip_or_fail
from tests.network import NEEDS_STELLAR, Deployment, stellar_artifacts, wait_for

if not stellar_artifacts():
    skip_or_fail(NEEDS_STELLAR, module=True)

HOSTS = yaml.safe_load((ROOT / "inventories" / "local" / "hosts.yml").read_text())["all"]["children"]
VALIDATORS = HOSTS["stellar_core"]["hosts"]
HORIZON = "http://127.0.0.1:{}".format(HOSTS["horizon"]["hosts"]["horizon1"]["horizon_port"])


@pytest.fixture(scope="module")
def network(deployment: Deployment) -> Deployment:
    assert deployment.stellar, "artifacts present but the deployment left stellar-core out"
    return deployment


def info(name: str) -> dict:
    port = VALIDATORS[name]["stellar_core_http_port"]
    return httpx.get(f"http://127.0.0.1:{port}/info", timeout=5).json()["info"]


def test_validators_are_synced_and_closing_ledgers(network: Deployment) -> None:
    before = {n: info(n)["ledger"]["num"] for n in VALIDATORS}
    assert all(info(n)["state"] == "Synced!" for n in VALIDATORS)
    assert wait_for(lambda: all(info(n)["ledger"]["num"] > before[n] + 2 for n in VALIDATORS), timeout=60)
    assert all(info(n)["quorum"]["transitive"]["intersection"] for n in VALIDATORS)


def test_admin_port_is_loopback_only_and_peer_port_is_open(network: Deployment) -> None:
    host = testinfra.get_host("local://")
    for v in VALIDATORS.values():
        assert host.socket(f"tcp://127.0.0.1:{v['stellar_core_http_port']}").is_listening
        assert not host.socket(f"tcp://0.0.0.0:{v['stellar_core_http_port']}").is_listening
        assert host.socket(f"tcp://0.0.0.0:{v['stellar_core_peer_port']}").is_listening


def test_history_archives_are_published_and_served(network: Deployment) -> None:
    for v in VALIDATORS.values():
        r = httpx.get(f"http://127.0.0.1:{v['stellar_core_history_port']}/.well-known/stellar-history.json", timeout=5)
        assert r.status_code == 200 and "currentLedger" in r.json()


def test_horizon_serves_ledgers(network: Deployment) -> None:
    records = wait_for(
        lambda: httpx.get(f"{HORIZON}/ledgers", params={"order": "desc", "limit": 1}, timeout=5).json()["_embedded"][
            "records"
        ],
        timeout=120,
    )
    assert records and records[0]["sequence"] > 1


def test_live_quorum_sets_are_the_ones_preflight_proved_safe(network: Deployment) -> None:
    net = load_network(ROOT / "inventories" / "local")
    expected = preflight.qsets_for(net)
    for name, v in VALIDATORS.items():
        # Shape recorded in shared/reference: {"node", "qset": {"value": {"t", "v"}, "fail_at", ...}}.
        live = httpx.get(f"http://127.0.0.1:{v['stellar_core_http_port']}/quorum", timeout=5).json()["qset"]
        others = {m for m in live["value"]["v"] if isinstance(m, str) and m in VALIDATORS}
        assert live["value"]["t"] == expected[name].threshold
        assert others == expected[name].members() - {name}


def test_stellar_core_agrees_on_quorum_intersection(network: Deployment) -> None:
    art = Artifacts.resolve(ROOT / "artifacts")
    port = VALIDATORS["v1"]["stellar_core_http_port"]
    version = load_network(ROOT / "inventories" / "local").stellar_core_version
    if not compat.core_has_command(version, "check-quorum-intersection"):
        # 19.x has no such command ("Unknown command"): its own live verdict is /info's transitive quorum.
        proc = subprocess.run([str(art.stellar_core), "check-quorum-intersection", "/dev/null"],
                              capture_output=True, text=True, check=False)
        assert proc.returncode != 0, "compat.yml says this version lacks check-quorum-intersection, yet it ran"
        for name in VALIDATORS:
            assert info(name)["quorum"]["transitive"]["intersection"] is True, name
        return
    transitive = httpx.get(f"http://127.0.0.1:{port}/quorum", params={"transitive": "true"}, timeout=5).json()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(transitive, fh)
    proc = subprocess.run(
        [str(art.stellar_core), "check-quorum-intersection", fh.name], capture_output=True, text=True, check=False
    )
    Path(fh.name).unlink()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
