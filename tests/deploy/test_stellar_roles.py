"""The stellar_core and horizon roles' own behaviour, run for real on the stellar-core test double.

What is checked here is the roles' work (first start exactly once and in order, secrets kept out of
output, where ports listen, waiting for Synced!, restart decisions, refusing foreign ledgers), not
stellar-core's: that needs the real binary (test_stellar.py). With real artifacts supplied, these
tests skip because the double's call log does not exist.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import testinfra
import yaml

from tests.conftest import ROOT
from tests.deploy.conftest import ENV, STATE, Deployment, containers, recap, wait_for

VALIDATORS = yaml.safe_load((ROOT / "inventories" / "local" / "hosts.yml").read_text())["all"]["children"][
    "stellar_core"
]["hosts"]
DATA = Path(f"/var/lib/dlnet/{ENV}/stellar-core")


@pytest.fixture(scope="module")
def double(deployment: Deployment) -> Deployment:
    if not deployment.double:
        pytest.skip("real stellar-core/Horizon artifacts supplied: the role checks run in test_stellar.py instead")
    return deployment


def calls(name: str) -> list[list[str]]:
    """Commands the double ran for this validator, in order (argv after the binary)."""
    log = DATA / name / "double-calls.log"
    return [line.split()[1:] for line in log.read_text().splitlines()]


def info(name: str) -> dict:
    port = VALIDATORS[name]["stellar_core_http_port"]
    return httpx.get(f"http://127.0.0.1:{port}/info", timeout=5).json()["info"]


def test_validators_synced_and_closing(double: Deployment) -> None:
    before = {n: info(n)["ledger"]["num"] for n in VALIDATORS}
    assert all(info(n)["state"] == "Synced!" for n in VALIDATORS)
    assert wait_for(lambda: all(info(n)["ledger"]["num"] > before[n] for n in VALIDATORS), timeout=20)


def test_first_start_ran_once_new_db_before_new_hist(double: Deployment) -> None:
    for name in VALIDATORS:
        firsts = [c[0] for c in calls(name) if c[0] in ("new-db", "new-hist")]
        assert firsts == ["new-db", "new-hist"], f"{name}: {firsts}"


def test_root_seed_from_new_db_never_reaches_output(double: Deployment) -> None:
    logs = " ".join(r.stdout + r.stderr for r in double.runs)
    docker_logs = " ".join(
        subprocess.run(["docker", "logs", n], capture_output=True, text=True, check=False).stdout
        + subprocess.run(["docker", "logs", n], capture_output=True, text=True, check=False).stderr
        for n in containers()
    )
    assert "DOUBLE-ROOT-SEED" not in logs and "DOUBLE-ROOT-SEED" not in docker_logs


def test_config_holds_the_seed_for_the_container_user_only(double: Deployment) -> None:
    host = testinfra.get_host("local://")
    for name in VALIDATORS:
        cfg = host.file(str(DATA / name / "config" / "stellar-core.cfg"))
        assert cfg.mode == 0o600 and cfg.uid == 950
        assert "NODE_SEED=" in cfg.content_string


def test_admin_port_loopback_only(double: Deployment) -> None:
    host = testinfra.get_host("local://")
    for v in VALIDATORS.values():
        assert host.socket(f"tcp://127.0.0.1:{v['stellar_core_http_port']}").is_listening
        assert not host.socket(f"tcp://0.0.0.0:{v['stellar_core_http_port']}").is_listening
        assert host.socket(f"tcp://0.0.0.0:{v['stellar_core_peer_port']}").is_listening


def test_each_archive_is_served_to_the_others(double: Deployment) -> None:
    for v in VALIDATORS.values():
        r = httpx.get(f"http://127.0.0.1:{v['stellar_core_history_port']}/.well-known/stellar-history.json", timeout=5)
        assert r.status_code == 200 and "currentLedger" in r.json()


def test_horizon_reached_its_database_and_serves_ledgers(double: Deployment) -> None:
    r = httpx.get("http://127.0.0.1:8000/ledgers", params={"order": "desc", "limit": 1}, timeout=5)
    assert r.json()["_embedded"]["records"]


def test_foreign_ledgers_are_refused_on_the_host(double: Deployment) -> None:
    """Even when the controller lost its record, the marker beside the ledgers stops a new passphrase."""
    record = STATE / ENV / "network.json"
    saved = record.read_bytes()
    record.unlink()
    try:
        proc = double.playbook("site.yml", "-e", "dlnet_network_passphrase=another network", log="site-foreign.log")
    finally:
        record.write_bytes(saved)
    assert proc.returncode != 0
    assert "holds ledgers of another network passphrase" in proc.stdout
    assert all(info(n)["network"] != "another network" for n in VALIDATORS)
    assert all(calls(n).count(["new-db", "--conf", "/etc/stellar/stellar-core.cfg"]) == 1 for n in VALIDATORS)


def _lcl(name: str) -> int:
    return json.loads((DATA / name / "stellar.db").read_text())["ledger"]


def test_restart_resumes_the_chain_and_waits_where_behind(double: Deployment) -> None:
    # v3 stops first, so it is behind when the whole network comes back.
    subprocess.run(["docker", "stop", f"dlnet-{ENV}-core-v3"], check=True, capture_output=True)
    time.sleep(3)
    stopped = double.playbook("stop-network.yml", log="stop-restart.log")
    assert stopped.returncode == 0
    lcl = {n: _lcl(n) for n in VALIDATORS}
    assert lcl["v3"] < max(lcl.values())
    runs_before = {n: len([c for c in calls(n) if c[0] == "run"]) for n in VALIDATORS}
    up = double.playbook("site.yml", log="site-restart.log")
    assert up.returncode == 0, up.stdout[-3000:]
    for name in VALIDATORS:
        runs = [c for c in calls(name) if c[0] == "run"]
        assert len(runs) == runs_before[name] + 1
        waited = "--wait-for-consensus" in runs[-1]
        assert waited == (lcl[name] < max(lcl.values())), f"{name} at {lcl[name]} of {max(lcl.values())}: {runs[-1]}"
        # Same chain: no new genesis, the ledger carries on from where it stopped.
        assert info(name)["ledger"]["num"] >= lcl[name]
    assert not [c for n in VALIDATORS for c in calls(n)[-3:] if c[0] in ("new-db", "new-hist")]
    again = double.playbook("site.yml", log="site-restart-2.log")
    assert not {h: r["changed"] for h, r in recap(again.stdout).items() if r["changed"]}


def test_double_never_leaves_the_test_tag() -> None:
    # The double's images carry their own tag, so `make up` can never deploy them as the real thing.
    out = subprocess.run(
        ["docker", "images", "dlnet/stellar-core", "--format", "{{.Tag}}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "test-double" in out or not shutil.which("go")
    for tag in out:
        if tag != "test-double":
            inspect = subprocess.run(
                ["docker", "run", "--rm", f"dlnet/stellar-core:{tag}", "version"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            assert "test-double" not in inspect
