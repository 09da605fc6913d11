"""`dlnet tune` against a real 3-validator network with normal 5 s ledgers (issue 10).

The shared `test` network (inventories/local) closes a ledger every second; tuning needs the production
timing. So this module deploys its own validators-only environment `tune` (dlnet/testnet.py: its own ports,
no Horizon, IPFS, Prometheus or services) with deploy/site.yml, upgrades it to the binary's protocol, runs
`dlnet tune` as an operator would (short windows of three ledgers, few steps, a deadline) and checks the
outcome on every validator's /info; then it removes the environment. It needs the real stellar-core
(artifacts/ or STELLAR_CORE_BIN) and skips with one line without it. Run it under the network lock:
  flock /tmp/dlnet-network.lock .venv/bin/pytest tests/deploy/test_tune_network.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from dlnet import day2
from dlnet.core_admin import CoreAdmin
from dlnet.testnet import Deployment, build_images, real_stellar_core, validators_inventory
from tests.conftest import ROOT, skip_or_fail
from tests.network import run_cli

ENV = "tune"
NEEDS = "needs the real stellar-core: put it in artifacts/stellar-core or set STELLAR_CORE_BIN, then make test"
DEADLINE = 240  # seconds for the whole tune run
SLO = 0.25  # close-time p50/p95 within 25 % of idle (see the run below)

if real_stellar_core() is None:
    skip_or_fail(NEEDS, module=True)

pytestmark = pytest.mark.stellar


def dlnet(dep: Deployment, *args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess[str], float]:
    """The CLI with --json, and how long it took."""
    start = time.monotonic()
    proc = run_cli(dep, *args, "--json", timeout=timeout)
    return proc, time.monotonic() - start


@pytest.fixture(scope="module")
def tune_env() -> Iterator[Deployment]:
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("no Docker engine answers: run `make engine` (make test does) or start dockerd")
    dep = validators_inventory(ROOT / "build" / ENV, ENV, upgrade_lead_seconds=4)
    build_images(dep.logs, ["base", "stellar-core", "tools"])
    dep.playbook("remove-network.yml", log="remove-before.log")  # whatever an earlier run left
    shutil.rmtree(dep.state, ignore_errors=True)
    try:
        site = dep.playbook("site.yml")
        assert site.returncode == 0, f"deploy failed ({dep.logs}/site.log):\n{site.stdout[-3000:]}"
        # Genesis is protocol 0, which refuses every transaction: upgrade as an operator would.
        up, _ = dlnet(dep, "upgrade", "--to-latest")
        assert up.returncode == 0, up.stderr[-2000:]
        yield dep
    finally:
        if os.environ.get("DLNET_KEEP_TEST_NETWORK") != "1":
            dep.playbook("remove-network.yml", log="remove-after.log")


def test_tune_applies_the_largest_size_within_the_slo_on_every_validator(tune_env: Deployment) -> None:
    net, _ = day2.load(tune_env.inventory)
    admins = [CoreAdmin(v.name, day2.admin_url(v.address, v.http_port), timeout=5) for v in net.validators]
    before = {a.name: a.info() for a in admins}
    assert all(i.ledger.version >= 19 for i in before.values()), before
    applied_before = sum(int(a.metrics()["ledger.transaction.count"]["sum"]) for a in admins[:1])
    proc, took = dlnet(
        tune_env,
        "tune",
        # Close times of a 5 s network jitter between 5 and 6 s at idle (shared/reference normal-5s: mean 5.19 s,
        # gaps up to 6 s), and a three-ledger window's p95 is its slowest ledger: at the 5 % default a window
        # measures that jitter, not the load (this test failed so in 1 of 4 real runs). The test checks what
        # tune decides and applies at an SLO three ledgers can resolve; `make bench` runs the 5 % default.
        "--slo", str(SLO),
        "--idle-window", "15",  # three 5 s ledgers: the shortest window tune accepts
        "--window", "15",
        # A range this machine can offer while other sessions share its 2 cores: the test checks what tune
        # decides and applies, not how fast the network is (scripts/bench_tune.py measures that).
        "--min-rate", "10",
        "--max-rate", "160",
        "--steps", "3",
        "--deadline", str(DEADLINE),
        timeout=DEADLINE + 120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    (tune_env.logs / "tune.json").write_text(json.dumps(out, indent=2))
    # Within its deadline, with every step's window at least three ledgers long.
    assert took <= DEADLINE + 60, f"tune took {took:.0f}s for a {DEADLINE}s deadline"
    assert out["steps"] and all(s["ledgers"] >= 3 for s in out["steps"]), out["steps"]
    # Why close times moved, read from the real node's own metrics: timed-out nomination rounds per window.
    idle = out["idle"]
    assert isinstance(idle["timeouts"], int) and 0 <= idle["timeouts"] <= 10 * idle["ledgers"], idle
    assert all(isinstance(s["timeouts"], int) and s["timeouts"] >= 0 for s in out["steps"]), out["steps"]
    chosen, nxt, limits = out["chosen"], out["next_larger"], out["limits"]
    assert chosen is not None, f"no step within the SLO: {out['steps']}"
    # The chosen size is in force on every validator, read from each one's /info.
    assert out["size_applied"] == chosen["size"]
    for a in admins:
        info = a.info()
        assert (a.name, info.ledger.max_tx_set_size) == (a.name, chosen["size"])
        assert a.upgrades_get().empty, f"{a.name} still has an armed upgrade"
    # The chosen step stayed within the SLO of idle; the next larger step tried did not, or the report says
    # the generator could not offer more (its own ceiling) or that the top of the range passed.
    assert chosen["p50"] <= limits["p50"] and chosen["p95"] <= limits["p95"]
    assert limits["p95"] == pytest.approx(max(idle["p95"], idle["slowest"]) * (1 + SLO))
    if nxt is not None:
        assert not nxt["ok"] and nxt["size"] > chosen["size"], nxt
    else:
        assert out["generator_ceiling"] or out["stopped"] == "top of range", out["stopped"]
    # The load was real: the validators applied what the chosen step offered.
    applied_after = sum(int(a.metrics()["ledger.transaction.count"]["sum"]) for a in admins[:1])
    assert applied_after - applied_before >= sum(int(s["offered_tps"] * 15 * 0.9) for s in out["steps"] if s["ok"])
    # The operator finds the run again: record and plot beside each other in the environment's state.
    rec = json.loads((tune_env.state / ENV / "tune" / "latest.json").read_text())
    assert rec["size_applied"] == chosen["size"] and os.path.getsize(out["plot"]) > 1000
    status, _ = dlnet(tune_env, "status")
    tuned = json.loads(status.stdout)["tuned"]
    assert tuned["size"] == chosen["size"] and tuned["line"].startswith(f"max tx set size {chosen['size']} (tuned on ")
