"""Validator key rotation on the real ops_network (three validators of one organisation).

No restart order rotates a key there without a temporary extra validator: the proof (dlnet/rotation.py)
refuses, and this checks that deploy/rotate-key.yml stops before touching any validator, that the live
quorum sets still name the old key, and that with the request dropped a run changes nothing. The first
attempt of this test, before the rejoin condition was part of the proof, is why: v2 restarted naming v1's
new key sat in "Joining SCP" (its quorum set waited for a key that did not run) while v1 and v3 went on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.deploy.watch import VALIDATORS, admin_port, all_synced_same_ledger, container_ids
from tests.network import OPS_ENV, Deployment, recap
from tests.network import ROOT as KIT

pytestmark = pytest.mark.stellar


def _keys_in(node: object) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(_keys_in(v) for v in node.get("v", [])))
    return set()


def live_quorum(name: str) -> tuple[str, set[str]]:
    body = httpx.get(f"http://127.0.0.1:{admin_port(name)}/quorum", params={"fullkeys": "true"}, timeout=5).json()
    return body["node"], _keys_in(body["qset"]["value"])


def dlnet(ops_network: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DLNET_STATE_DIR": str(ops_network.state)}
    cmd = [sys.executable, "-m", "dlnet", *args, "-i", str(ops_network.inventory)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=KIT, env=env, check=False)


def test_rotation_of_three_validators_is_refused_before_anything_changes(ops_network: Deployment) -> None:
    all_synced_same_ledger()
    secrets = ops_network.state / OPS_ENV / "secrets"
    old = (secrets / "v1.pub").read_text().strip()
    ask = dlnet(ops_network, "keys", "rotate", "v1", "--json")
    assert ask.returncode == 0, ask.stderr
    new = json.loads(ask.stdout)["new_public_key"]
    new_seed = (secrets / "v1.next.seed").read_text().strip()
    assert new_seed not in ask.stdout + ask.stderr
    before = container_ids()
    try:
        proc = ops_network.playbook("rotate-key.yml", log="rotate-key-refused.log")
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-3000:]
        assert "v2 could not rejoin: v1, v3 do not block its new quorum set" in out, out[-3000:]
        assert new_seed not in out
        # Nothing was touched: same containers, every live quorum set names the old key, none the new.
        assert container_ids() == before
        for v in VALIDATORS:
            node, named = live_quorum(v)
            assert new not in named and node != new and (node == old if v == "v1" else old in named), (v, node)
    finally:
        cancel = dlnet(ops_network, "keys", "rotate", "v1", "--cancel")
        assert cancel.returncode == 0, cancel.stderr
    # Nothing pending: a run changes nothing.
    again = ops_network.playbook("rotate-key.yml", log="rotate-key-none.log")
    assert again.returncode == 0, again.stdout[-3000:]
    assert all(r.get("changed", 0) == 0 for r in recap(again.stdout).values()), again.stdout[-3000:]
    assert (secrets / "v1.pub").read_text().strip() == old and not list(secrets.glob("v1.retired-*"))
    all_synced_same_ledger()
