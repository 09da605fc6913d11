"""The market end to end on the real network the deployment tests stand up (stellar-core 19.14, Horizon
2.26.1, the kubo private swarm): `dlnet market demo`, then everything checked back through Horizon and
the swarm. Skips with one line without the stellar-core and Horizon binaries.

Run it holding the network lock: flock /tmp/dlnet-network.lock .venv/bin/pytest tests/market/test_market_real.py
"""

from __future__ import annotations

import base64
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from dlnet import day2
from dlnet.chain import Horizon
from dlnet.cli import main
from dlnet.market import penalties
from dlnet.market.checkpoint import cid_of, memo_to_cid
from tests.conftest import skip_or_fail
from tests.network import ENV, INVENTORY, STATE, Deployment, stellar_artifacts

SKIP = ("needs stellar-core and Horizon: put the binaries in artifacts/ (stellar-core, stellar-horizon) or set"
        " STELLAR_CORE_BIN/HORIZON_BIN, then make test")

if not stellar_artifacts():
    skip_or_fail(SKIP, module=True)

pytestmark = pytest.mark.stellar
EXTRA = ["-e", f"dlnet_env={ENV}"]


@pytest.fixture(scope="module")
def report(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    if deployment.double:
        pytest.skip(SKIP)
    mp = pytest.MonkeyPatch()
    mp.setenv("DLNET_STATE_DIR", str(STATE))  # the network's own key store (dlnet seed's DLC issuer, if seeded)
    net, _ = day2.load(INVENTORY, [f"dlnet_env={ENV}"])
    with Horizon(day2.horizon_url(net)) as h:
        protocol = int(h.root().get("current_protocol_version") or 0)
    plot = tmp_path_factory.mktemp("market") / "demo.png"
    out, err = io.StringIO(), io.StringIO()
    try:
        if protocol < 19:  # a fresh deployment is at protocol 0 until the day-2 upgrade
            with redirect_stdout(io.StringIO()), redirect_stderr(err):
                assert main(["upgrade", "--to-latest", "-i", str(INVENTORY), *EXTRA]) == 0, err.getvalue()[-3000:]
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["market", "demo", "-i", str(INVENTORY), *EXTRA, "--json", "--plot", str(plot),
                         "--partners", "3", "--malicious", "1", "--validators", "2", "--rounds", "3"])
    finally:
        mp.undo()
    assert code == 0, err.getvalue()[-3000:]
    rep = json.loads(out.getvalue())
    rep["_url"] = day2.horizon_url(net)
    rep["_ipfs"] = [f"http://{n.address}:{n.api_port}" for n in net.ipfs]
    return rep


def test_fused_model_beats_the_start_and_every_honest_partner_alone(report) -> None:  # type: ignore[no-untyped-def]
    assert report["final_accuracy"] > report["initial_accuracy"]
    assert report["final_accuracy"] > max(report["local_only_accuracy"].values()), report["local_only_accuracy"]
    assert Path(report["plot"]).stat().st_size > 10_000


def test_malicious_partner_refused_by_both_unpaid_and_its_stake_rises(report) -> None:  # type: ignore[no-untyped-def]
    [bad] = report["malicious"]
    stakes = []
    for r in report["rounds"]:
        mine = [d for d in r["decisions"] if d["partner"] == bad]
        assert {d["validator"] for d in mine} == set(report["validators"]) and not any(d["accepted"] for d in mine)
        stakes.append(Decimal(r["required_stake"][bad]))
    assert stakes == sorted(stakes) and len(set(stakes)) == len(stakes)
    assert report["paid_xlm"][bad] == "0.0000000"
    with Horizon(report["_url"]) as h:
        assert penalties.strikes_of([h.account(v) for v in report["validators"]], bad) == len(report["rounds"])
        got = [p for p in h.records(f"/accounts/{bad}/payments") if p.get("asset_type") == "native"
               and p.get("from") in report["validators"]]
        assert got == []


def test_everything_is_checkable_through_horizon_and_the_swarm(report) -> None:  # type: ignore[no-untyped-def]
    with Horizon(report["_url"]) as h:
        # the validators' decisions crossed the initiator's offers: trades exist for the initiator
        trades = list(h.records(f"/accounts/{report['initiator']}/trades"))
        honest = [p for p in report["partners"] if p not in report["malicious"]]
        assert len(trades) >= 2 * len(report["validators"]) * len(honest) * len(report["rounds"])
        # every payment from a validator to a partner is one of the validators' accept decisions
        decisions = {(d["tx_hash"]) for r in report["rounds"] for d in r["decisions"] if d["accepted"]}
        for p in report["partners"]:
            paid = [x for x in h.records(f"/accounts/{p}/payments")
                    if x.get("asset_type") == "native" and x.get("from") in report["validators"]]
            assert {x["transaction_hash"] for x in paid} <= decisions
            assert sum(Decimal(x["amount"]) for x in paid) == Decimal(report["paid_xlm"][p])
        # every CID in a memo (initiator's checkpoints, partners' updates) resolves to bytes hashing to it
        memo_cids = set()
        for acc in [report["initiator"], *report["partners"]]:
            for t in h.records(f"/accounts/{acc}/transactions"):
                if t.get("memo_type") == "hash":
                    memo_cids.add(memo_to_cid(base64.b64decode(t["memo"])))
        expected = {r["checkpoint"] for r in report["rounds"]}
        expected |= {s["cid"] for r in report["rounds"] for s in r["submissions"]}
        assert expected <= memo_cids
    for cid in sorted(memo_cids):
        r = httpx.post(f"{report['_ipfs'][-1]}/api/v0/cat", params={"arg": cid}, timeout=30)
        assert r.status_code == 200, (cid, r.text[:200])
        assert cid_of(r.content) == cid
