"""Validator key rotation on the real ops_network (three validators of one organisation).

No restart order of the three rotates a key (the target first halts the network at the next restart; a
validator naming the new key before it runs cannot rejoin: seen here as "Joining SCP"), so
deploy/rotate-key.yml goes through a temporary successor: the new key in its own container beside v1,
every step proven by dlnet/rotation.py and gated live. A watcher samples every validator's /info every
0.3 s: ledgers keep closing, at most one of v1..v3 is away at a time; at the end every live quorum set
names the new key only, v1 runs as the new key, and a second run changes nothing."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.deploy.watch import VALIDATORS, Watcher, admin_port, all_synced_same_ledger, running
from tests.network import OPS_ENV, Deployment, recap, run_cli

pytestmark = pytest.mark.stellar

# Longest time the network may close no ledger: 1 s ledgers, ~2.5 s with one validator of three away
# (as test_rolling.py), plus a restarted validator's catch-up on this shared 2-core machine.
MAX_GAP_SECONDS = 8.0


def _keys_in(node: object) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(_keys_in(v) for v in node.get("v", [])))
    return set()


def live_quorum(name: str) -> tuple[str, set[str]]:
    body = httpx.get(f"http://127.0.0.1:{admin_port(name)}/quorum", params={"fullkeys": "true"}, timeout=5).json()
    return body["node"], _keys_in(body["qset"]["value"])


def short_node_id(name: str) -> str:
    """/info's quorum.node: the node's own key, shortened (19.14: its first five characters)."""
    return httpx.get(f"http://127.0.0.1:{admin_port(name)}/info", timeout=5).json()["info"]["quorum"]["node"]


def successor_containers() -> list[str]:
    proc = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=dlnet.environment={OPS_ENV}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [n for n in proc.stdout.split() if n.endswith("-next")]


def test_rotating_v1_through_a_successor_keeps_ledgers_closing(ops_network: Deployment) -> None:
    all_synced_same_ledger()
    secrets = ops_network.state / OPS_ENV / "secrets"
    old = (secrets / "v1.pub").read_text().strip()
    ask = run_cli(ops_network, "keys", "rotate", "v1", "--json")
    assert ask.returncode == 0, ask.stderr
    new = json.loads(ask.stdout)["new_public_key"]
    new_seed = (secrets / "v1.next.seed").read_text().strip()
    assert new_seed not in ask.stdout + ask.stderr
    assert (secrets / "v1.next.seed").stat().st_mode & 0o777 == 0o600
    start = time.monotonic()
    with Watcher() as watch:
        proc = ops_network.playbook("rotate-key.yml", log="rotate-key.log")
        took = time.monotonic() - start
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-5000:]
        final = all_synced_same_ledger(timeout=90)
        time.sleep(2)  # a couple of closes after the last step
    assert new_seed not in out and (secrets / "v1.seed").read_text().strip() == new_seed
    # Every live quorum set names the new key and not the old; v1 runs as the new key.
    for v in VALIDATORS:
        node, named = live_quorum(v)
        if v == "v1":
            assert node == new, (v, node)
        else:
            assert new in named and old not in named, (v, sorted(named))
    shown = short_node_id("v1")
    assert new.startswith(shown) and not old.startswith(shown), (shown, new[:5], old[:5])
    assert (secrets / "v1.seed").stat().st_mode & 0o777 == 0o600
    assert len(list(secrets.glob("v1.retired-*.seed"))) == 1
    assert successor_containers() == [], "the successor's container was left behind"
    assert watch.most_down <= 1, f"more than one of v1..v3 away at once: {watch.overlaps()[:10]}"
    gap = watch.longest_gap()
    assert gap <= MAX_GAP_SECONDS, f"no ledger closed for {gap:.1f} s during the rotation"
    # The gate spoke around the successor and every validator.
    assert "rolling-gate v1+new: back" in out and "rolling-gate v1: back" in out, out[-3000:]
    numbers = {
        "total_seconds": round(took, 1),
        "longest_ledger_gap_seconds": round(gap, 2),
        "downtime_seconds": {v: round(watch.downtime(v), 1) for v in VALIDATORS},
        "samples": len(watch.samples),
        "samples_with_a_slow_answer": watch.slow_samples,
        "final_ledger": next(iter(final.values()))[0],
    }
    (ops_network.logs / "rotate-numbers.json").write_text(json.dumps(numbers, indent=2))
    print(f"key rotation: {numbers}")
    # Nothing pending: a second run changes nothing.
    again = ops_network.playbook("rotate-key.yml", log="rotate-key-again.log")
    assert again.returncode == 0, again.stdout[-3000:]
    assert all(r.get("changed", 0) == 0 for r in recap(again.stdout).values()), again.stdout[-3000:]
    # site.yml (make up) writes every configuration exactly as the rotation left it: nothing restarts.
    site = ops_network.playbook("site.yml", log="site-after-rotation.log")
    assert site.returncode == 0, site.stdout[-3000:]
    assert all(recap(site.stdout)[v].get("changed", 1) == 0 for v in VALIDATORS), site.stdout[-3000:]
    assert running() == dict.fromkeys(VALIDATORS, True)
    all_synced_same_ledger()
