"""The stellar_core and horizon roles' own behaviour on the deployed test network.

What is checked here is the roles' work (first start exactly once and in order, secrets kept out of
output and files, where ports listen, restart decisions, refusing foreign ledgers), read from what both
the real binaries and the test double leave behind: the playbook's output, the containers' commands,
the files on the host, the validators' own answers. CI runs it on the real stellar-core and Horizon.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import testinfra
import yaml
from stellar_sdk import Keypair

from dlnet import preflight
from tests.conftest import ROOT
from tests.network import ENV, STATE, Deployment, containers, recap, wait_for

HOSTS = yaml.safe_load((ROOT / "inventories" / "local" / "hosts.yml").read_text())["all"]["children"]
VALIDATORS = HOSTS["stellar_core"]["hosts"]
HORIZON_PORT = HOSTS["horizon"]["hosts"]["horizon1"]["horizon_port"]
PASSPHRASE = yaml.safe_load((ROOT / "inventories/local/group_vars/all/network.yml").read_text())[
    "dlnet_network_passphrase"]
DATA = Path(f"/var/lib/dlnet/{ENV}/stellar-core")
INIT_TASK = "stellar_core : initialise | Create the genesis ledger and the history archive"


@pytest.fixture(scope="module")
def network(deployment: Deployment) -> Deployment:
    if not deployment.stellar:
        pytest.fail("the test deployment left stellar-core out")
    return deployment


def info(name: str) -> dict:
    port = VALIDATORS[name]["stellar_core_http_port"]
    return httpx.get(f"http://127.0.0.1:{port}/info", timeout=5).json()["info"]


def task_results(output: str, task: str) -> dict[str, str]:
    """host -> ok/changed/skipping/failed for one task of a playbook run's output."""
    section = output.split(f"TASK [{task}]", 1)
    if len(section) < 2:
        return {}
    body = re.split(r"\n(?:TASK|RUNNING HANDLER|PLAY) \[", section[1], maxsplit=1)[0]
    found = re.finditer(r"^(ok|changed|skipping|failed|fatal): \[([^\]]+)\]", body, re.M)
    return {m.group(2): m.group(1) for m in found}


def root_seed() -> str:
    """The root account's seed: sha256 of the passphrase, which stellar-core logs at new-db."""
    return Keypair.from_raw_ed25519_seed(hashlib.sha256(PASSPHRASE.encode()).digest()).secret


def offline_lcl(name: str) -> int:
    """Last closed ledger of a stopped validator, read as the role reads it (offline-info)."""
    d = DATA / name
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network=none", "-v", f"{d}:/var/lib/stellar", "-v",
         f"{d}/config:/etc/stellar:ro", image_of(name), "offline-info", "--conf", "/etc/stellar/stellar-core.cfg"],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-1000:]
    return int(json.loads(proc.stdout)["info"]["ledger"]["num"])


def inspect(container: str) -> dict:
    out = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def image_of(name: str) -> str:
    return inspect(f"dlnet-{ENV}-core-{name}")["Config"]["Image"]


def test_validators_synced_and_closing(network: Deployment) -> None:
    before = {n: info(n)["ledger"]["num"] for n in VALIDATORS}
    assert all(info(n)["state"] == "Synced!" for n in VALIDATORS)
    assert wait_for(lambda: all(info(n)["ledger"]["num"] > before[n] for n in VALIDATORS), timeout=30)


def test_first_start_ran_once_and_left_ledger_and_archive(network: Deployment) -> None:
    first = task_results(network.runs[0].stdout, INIT_TASK)
    assert first == {n: "changed" for n in VALIDATORS}, first
    # new-db made the ledger, new-hist the archive (19.14 refuses new-hist before new-db: order proven by success).
    for name in VALIDATORS:
        assert (DATA / name / "archive" / ".well-known" / "stellar-history.json").is_file(), name
        marker = DATA / name / ".dlnet-network"
        # The marker names the passphrase by a prefixed digest, never by sha256(passphrase): that is the root seed.
        assert marker.read_text().strip() == preflight.passphrase_digest(PASSPHRASE)
        assert marker.stat().st_mode & 0o077 == 0
    if len(network.runs) < 2:
        again = network.playbook("site.yml", log="site-roles-rerun.log")
        assert again.returncode == 0, again.stdout[-3000:]
    for run in network.runs[1:]:
        later = task_results(run.stdout, INIT_TASK)
        assert later and all(r in ("ok", "skipping") for r in later.values()), later


def test_root_seed_from_new_db_never_reaches_output_or_readable_files(network: Deployment) -> None:
    seed = root_seed()
    logs = " ".join(r.stdout + r.stderr for r in network.runs)
    assert seed not in logs
    for name in containers():
        proc = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
        assert seed not in proc.stdout + proc.stderr, f"root seed in docker logs of {name}"
    for path in DATA.rglob("*"):
        if not path.is_file() or path.stat().st_size > 50_000_000 or path.suffix in (".xdr", ".gz", ".db"):
            continue
        if seed.encode() in path.read_bytes():
            raise AssertionError(f"root seed written to {path} (mode {path.stat().st_mode & 0o777:o})")


def test_config_holds_the_seed_for_the_container_user_only(network: Deployment) -> None:
    host = testinfra.get_host("local://")
    for name in VALIDATORS:
        cfg = host.file(str(DATA / name / "config" / "stellar-core.cfg"))
        assert cfg.mode == 0o600 and cfg.uid == 950
        assert "NODE_SEED=" in cfg.content_string


def test_admin_port_loopback_only(network: Deployment) -> None:
    host = testinfra.get_host("local://")
    for v in VALIDATORS.values():
        assert host.socket(f"tcp://127.0.0.1:{v['stellar_core_http_port']}").is_listening
        assert not host.socket(f"tcp://0.0.0.0:{v['stellar_core_http_port']}").is_listening
        assert host.socket(f"tcp://0.0.0.0:{v['stellar_core_peer_port']}").is_listening


def test_each_archive_is_served_to_the_others(network: Deployment) -> None:
    for v in VALIDATORS.values():
        r = httpx.get(f"http://127.0.0.1:{v['stellar_core_history_port']}/.well-known/stellar-history.json", timeout=5)
        assert r.status_code == 200 and "currentLedger" in r.json()


def test_horizon_ingests_from_the_validators(network: Deployment) -> None:
    # Horizon's captive core is let in by the validators (PREFERRED_PEERS), so it follows the tip.
    def ingested() -> bool:
        root = httpx.get(f"http://127.0.0.1:{HORIZON_PORT}/", timeout=5).json()
        return root.get("ingest_latest_ledger", 0) >= info("v1")["ledger"]["num"] - 5 > 0

    assert wait_for(ingested, timeout=180, every=2)


def test_foreign_ledgers_are_refused_on_the_host(network: Deployment) -> None:
    """Even when the controller lost its record, the marker beside the ledgers stops a new passphrase."""
    record = STATE / ENV / "network.json"
    saved = record.read_bytes()
    markers = {n: (DATA / n / ".dlnet-network").read_text() for n in VALIDATORS}
    before = {n: info(n)["ledger"]["num"] for n in VALIDATORS}
    record.unlink()
    try:
        proc = network.playbook("site.yml", "-e", "dlnet_network_passphrase=another network", log="site-foreign.log")
    finally:
        record.write_bytes(saved)
        record.chmod(0o600)  # as the kit writes it (it derives from the passphrase)
    assert proc.returncode != 0
    assert "holds ledgers of another network passphrase" in proc.stdout
    assert all(info(n)["network"] == PASSPHRASE for n in VALIDATORS)
    assert {n: (DATA / n / ".dlnet-network").read_text() for n in VALIDATORS} == markers
    assert all(info(n)["ledger"]["num"] >= before[n] for n in VALIDATORS), "a validator lost its chain"


def test_restart_resumes_the_chain_and_waits_where_behind(network: Deployment) -> None:
    # v3 stops first, so it is behind when the whole network comes back.
    subprocess.run(["docker", "stop", f"dlnet-{ENV}-core-v3"], check=True, capture_output=True)
    time.sleep(3)
    stopped = network.playbook("stop-network.yml", log="stop-restart.log")
    assert stopped.returncode == 0, stopped.stdout[-3000:]
    lcl = {n: offline_lcl(n) for n in VALIDATORS}
    assert lcl["v3"] < max(lcl.values()), lcl
    started = {n: inspect(f"dlnet-{ENV}-core-{n}")["State"]["StartedAt"] for n in VALIDATORS}
    up = network.playbook("site.yml", log="site-restart.log")
    assert up.returncode == 0, up.stdout[-3000:]
    for name in VALIDATORS:
        c = inspect(f"dlnet-{ENV}-core-{name}")
        assert c["State"]["Running"] and c["State"]["StartedAt"] != started[name], f"{name} not restarted"
        waited = "--wait-for-consensus" in c["Config"]["Cmd"]
        behind = lcl[name] < max(lcl.values())
        assert waited == behind, f"{name} at {lcl[name]} of {max(lcl.values())}: {c['Config']['Cmd']}"
        # Same chain: no new genesis, the ledger carries on from where it stopped.
        assert info(name)["ledger"]["num"] >= lcl[name]
    assert task_results(up.stdout, INIT_TASK) and "changed" not in task_results(up.stdout, INIT_TASK).values()
    again = network.playbook("site.yml", log="site-restart-2.log")
    assert again.returncode == 0
    assert not {h: r["changed"] for h, r in recap(again.stdout).items() if r["changed"]}


def test_double_never_leaves_the_test_tag(network: Deployment) -> None:
    # The double's images carry their own tag, so `make up` can never deploy them as the real thing.
    out = subprocess.run(
        ["docker", "images", "dlnet/stellar-core", "--format", "{{.Tag}}"], capture_output=True, text=True, check=True
    ).stdout.split()
    if network.double:
        assert "test-double" in out
    for tag in out:
        if tag != "test-double":
            version = subprocess.run(
                ["docker", "run", "--rm", f"dlnet/stellar-core:{tag}", "version"],
                capture_output=True, text=True, check=False,
            ).stdout
            assert "test-double" not in version, f"dlnet/stellar-core:{tag} is the test double"
    assert os.environ.get("IMAGE_TAG") != "test-double" or network.double
