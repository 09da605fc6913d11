"""The market end to end on the real network the deployment tests stand up (stellar-core 19.14, Horizon
2.26.1, the kubo private swarm), through the kit's participant services: the compliance service (KYC, the
approval of every stake offer; DLC regulated: AUTH_REQUIRED + AUTH_REVOCABLE, partners' trustlines
authorized only to maintain liabilities) and the bridge (the validators' payments). Both run in-process
(as tests/services/test_real_network.py runs them) against the real Horizon, on a throwaway PostgreSQL;
the inventory keeps them switched off because their seeds exist only after `dlnet seed`. Then everything
is checked back through Horizon and the swarm. Skips with one line without the stellar-core and Horizon
binaries.

Run it holding the network lock: flock /tmp/dlnet-net-test.lock .venv/bin/pytest tests/market/test_market_real.py
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import time
from contextlib import closing, redirect_stderr, redirect_stdout
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from stellar_sdk import Keypair
from stellar_sdk.memo import HashMemo
from stellar_sdk.operation import ManageSellOffer

from dlnet import day2
from dlnet import seed as sd
from dlnet.chain import Horizon, InputError, SubmitFailed, Transactor, balance
from dlnet.cli import main
from dlnet.ipfs import Ipfs
from dlnet.market import checkpoint as ck
from dlnet.market import demo, penalties
from dlnet.market.checkpoint import cid_of, memo_to_cid
from dlnet.market.gateways import BridgePayer, Compliance
from dlnet.market.partner import stake_price
from dlnet.services import bridge, compliance
from dlnet.services.settings import BridgeSettings, ComplianceSettings, DatabaseSettings
from tests.conftest import skip_or_fail
from tests.network import ENV, INVENTORY, STATE, Deployment, stellar_artifacts
from tests.services.conftest import live_server

SKIP = ("needs stellar-core and Horizon: put the binaries in artifacts/ (stellar-core, stellar-horizon) or set"
        " STELLAR_CORE_BIN/HORIZON_BIN, then make test")
TOKEN = "market-real-token-0123456789abcdef"
CLI_MODEL = "digits-cli"

if not stellar_artifacts():
    skip_or_fail(SKIP, module=True)

pytestmark = pytest.mark.stellar
EXTRA = ["-e", f"dlnet_env={ENV}"]


def _secret(d: Path, name: str, value: str) -> Path:
    p = d / name
    p.write_text(value + "\n")
    p.chmod(0o600)
    return p


@pytest.fixture(scope="module")
def report(deployment: Deployment, pg_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    if deployment.double:
        pytest.skip(SKIP)
    mp = pytest.MonkeyPatch()
    mp.setenv("DLNET_STATE_DIR", str(STATE))  # the network's own key store (its funder)
    net, _ = day2.load(INVENTORY, [f"dlnet_env={ENV}"])
    url = day2.horizon_url(net)
    ipfs = [f"http://{n.address}:{n.api_port}" for n in net.ipfs]
    with Horizon(url) as h:
        protocol = int(h.root().get("current_protocol_version") or 0)
    d = tmp_path_factory.mktemp("market")
    err = io.StringIO()
    try:
        if protocol < 19:  # a fresh deployment is at protocol 0 until the day-2 upgrade
            with redirect_stdout(io.StringIO()), redirect_stderr(err):
                assert main(["upgrade", "--to-latest", "-i", str(INVENTORY), *EXTRA]) == 0, err.getvalue()[-3000:]
        funder, _ = sd.funder_keypair(net, None)
    finally:
        mp.undo()
    dlc_issuer = Keypair.random()  # a regulated DLC for this run (the demo creates it: flags 1|2|8)
    validators = [Keypair.random() for _ in range(2)]
    # the CLI round's key store: its own, with the network's funder (`make up` locked the root)
    state = d / "state"
    (state / ENV / "secrets").mkdir(parents=True, mode=0o700)
    _secret(state / ENV / "secrets", "funder.seed", (STATE / ENV / "secrets" / "funder.seed").read_text().strip())
    mp.setenv("DLNET_STATE_DIR", str(state))
    cli_validator = sd.keypair(ENV, f"market-{CLI_MODEL}-validator-v1")

    def db() -> DatabaseSettings:
        return DatabaseSettings(dsn=pg_cluster.dsn(pg_cluster.new_database()), password_file=pg_cluster.password_file)

    cs = ComplianceSettings(
        network_passphrase=net.passphrase, database=db(), home_domain="org1.dlnet.local",
        web_auth_domain="compliance.org1.dlnet.local", horizon_url=url, ipfs_api_url=ipfs[0],
        dlc={"issuer": dlc_issuer.public_key, "approve_to": "maintain_liabilities"},
        signing_key_file=_secret(d, "sk", Keypair.random().secret),
        jwt_secret_file=_secret(d, "jwt", secrets.token_hex(32)), kyc_kek_file=_secret(d, "kek", secrets.token_hex(32)),
        issuer_seed_file=_secret(d, "iss", dlc_issuer.secret), rate_limit_per_minute=0)
    bs = BridgeSettings(network_passphrase=net.passphrase, database=db(), horizon_url=url, follow=False,
                        accounts=[{"name": f"validator{i}", "seed_file": _secret(d, f"v{i}", v.secret)}
                                  for i, v in enumerate([*validators, cli_validator])],
                        webhook_secret_file=_secret(d, "hook", "h" * 32), rate_limit_per_minute=0)
    try:
        with (live_server(lambda _u: compliance.create_app(cs, admin_token=TOKEN)) as comp_url,
              live_server(lambda _u: bridge.create_app(bs, api_token=TOKEN)) as bridge_url,
              Horizon(url) as h, closing(Ipfs(ipfs[0])) as up, closing(Ipfs(ipfs[-1])) as down,
              closing(Compliance(comp_url, net.passphrase)) as comp):
            svc = demo.Services(comp, TOKEN, lambda kp: BridgePayer(bridge_url, TOKEN, kp.public_key), validators)
            tx = Transactor(h, net.passphrase)
            opts = demo.Options(partners=3, malicious=1, validators=2, rounds=3, unapproved=1)
            keys: list[Keypair] = []
            t0 = time.monotonic()
            rep = demo.run(tx, (up, down), funder, opts, dlc_issuer, services=svc, keys=keys)
            rep["_keys"] = keys
            rep["plot"] = str(demo.plot(rep, d / "demo.png"))
            t1 = time.monotonic()
            rep["_ipfs_down"] = ipfs[-1]
            refusals = _refusals(rep, tx, comp)
            t2 = time.monotonic()
            rep["_cli"] = _cli_round(tx, comp, comp_url, bridge_url, _secret(d, "bridge-token", TOKEN), dlc_issuer)
            rep["_timing"] = {"demo": t1 - t0, "refusals": t2 - t1, "cli_round": time.monotonic() - t2}
    finally:
        mp.undo()
    rep["_url"], rep["_ipfs"], rep["_refusals"] = url, ipfs, refusals
    if os.environ.get("DLNET_MARKET_REPORT"):  # the measured numbers, for the notes (public keys only)
        keep = {k: v for k, v in rep.items() if k != "_cli"}
        Path(os.environ["DLNET_MARKET_REPORT"]).write_text(json.dumps(keep, default=str, indent=1))
    return rep


def cli(*args: str) -> tuple[int, Any, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*args, "-i", str(INVENTORY), *EXTRA])
    text = out.getvalue()
    return code, json.loads(text) if code == 0 and text.startswith("{") else text, err.getvalue().strip()


def _cli_round(tx: Transactor, comp: Compliance, comp_url: str, bridge_url: str, token_file: Path,
               dlc_issuer: Keypair) -> dict[str, Any]:
    """One round role by role through `dlnet market ...` (the key store holds every party's key), and the
    issue's bad input, each refused in one line with nothing changed."""
    from stellar_sdk import Asset
    from stellar_sdk.operation import Payment, SetTrustLineFlags

    from dlnet.chain import AUTHORIZED, MAINTAIN

    h, got = tx.h, {}
    dlc = Asset("DLC", dlc_issuer.public_key)
    code, reg, err = cli("model", "register", CLI_MODEL, "--starting-balance", "300", "--json")
    assert code == 0, err
    ini = reg["initiator"]
    code, v, err = cli("market", "join", "validator", "--name", "v1", "--initiator", ini, "--json")
    assert code == 0, err
    setup = ["market", "initiator", "setup", "--model", CLI_MODEL, "--validator", v["account"],
             "--dlc", f"DLC:{dlc_issuer.public_key}"]
    got["too_many_decimals"] = cli(*setup, "--reward", "1.00000001")
    assert cli(*setup, "--json")[0] == 0
    got["unknown_model_setup"] = cli(*setup[:4], "nope", *setup[5:])
    parts = {}
    for name in ("p1", "p2"):
        code, p, err = cli("market", "join", "partner", "--name", name, "--initiator", ini, "--json")
        assert code == 0, err
        parts[name] = p["account"]
    p1 = sd.keypair(ENV, f"market-{CLI_MODEL}-partner-p1")
    comp.submit_kyc(p1, {"first_name": "p1"})
    comp.operator_approve(p1.public_key, TOKEN)
    code, pub, err = cli("market", "initiator", "publish", "--model", CLI_MODEL, "--partners", "1", "--json")
    assert code == 0, err
    submit = ["market", "partner", "submit", "--initiator", ini, "--compliance", comp_url, "--json"]
    before = {a: (h.account(a) or {}).get("sequence") for a in parts.values()}
    got["no_stake"] = cli(*submit, "--name", "p1")
    got["no_kyc"] = cli(*submit, "--name", "p2")
    got["unknown_model"] = cli(*submit, "--name", "p1", "--model", "nope")
    got["not_a_cid"] = cli("market", "fetch", "QmNotACid", "--out", str(token_file.parent / "x"))
    got["unchanged"] = before == {a: (h.account(a) or {}).get("sequence") for a in parts.values()} and not any(
        h.offers(a) for a in parts.values())
    # DLC for p1: the issuer's own transfer, authorized for its transaction only
    tx.run(dlc_issuer, [SetTrustLineFlags(p1.public_key, dlc, clear_flags=MAINTAIN, set_flags=AUTHORIZED),
                        Payment(p1.public_key, dlc, "100"),
                        SetTrustLineFlags(p1.public_key, dlc, clear_flags=AUTHORIZED, set_flags=MAINTAIN)])
    # an offer on an asset the model did not issue: the approval server refuses it, nothing is submitted
    foreign = Asset("VLM", Keypair.random().public_key)
    seq = h.account(p1.public_key)["sequence"]  # type: ignore[index]
    try:
        comp.approve(tx.build(p1, [ManageSellOffer(dlc, foreign, "10", stake_price(1, Decimal(10)))]), dlc)
        got["foreign_asset"] = "approved"
    except InputError as exc:
        got["foreign_asset"] = str(exc)
    got["foreign_unchanged"] = h.account(p1.public_key)["sequence"] == seq  # type: ignore[index]
    code, sub, err = cli(*submit, "--name", "p1", "--shard", "0", "--of", "3")
    assert code == 0, err
    code, rev, err = cli("market", "validator", "review", "--initiator", ini, "--name", "v1", "--bridge", bridge_url,
                         "--bridge-token-file", str(token_file), "--json")
    assert code == 0, err
    out = token_file.parent / "fused.safetensors"
    code, fused, err = cli("market", "initiator", "fuse", "--model", CLI_MODEL, "--since-ledger",
                           str(pub["ledger"]), "--out", str(out), "--json")
    assert code == 0, err
    got.update(initiator=ini, validator=v["account"], partner=p1.public_key, published=pub, submitted=sub,
               decisions=rev["decisions"], fused=fused, fused_bytes=out.read_bytes())
    return got


def _refusals(rep: dict[str, Any], tx: Transactor, comp: Compliance) -> dict[str, Any]:
    """After the rounds: what the ledger and the compliance service refuse (each tried for real)."""
    from dlnet.market.protocol import Market

    h = tx.h
    m = Market.from_chain(h, rep["initiator"])
    keys = {k.public_key: k for k in rep.pop("_keys")}
    [bad] = rep["malicious"]
    honest = next(p for p in rep["partners"] if p != bad)
    cid = rep["rounds"][-1]["checkpoint"]
    offer = lambda kp, amount: tx.build(keys[kp], [ManageSellOffer(m.dlc, m.vlm, amount,  # noqa: E731
                                                                   stake_price(2, Decimal(amount)))],
                                        memo=HashMemo(ck.cid_to_memo(cid)))
    found: dict[str, Any] = {"lines": {p: balance(h.account(p), m.dlc) for p in rep["partners"]}}
    seq = h.account(honest)["sequence"]  # type: ignore[index]
    try:  # the stake offer straight to the network, without the compliance service's approval
        tx.submit(offer(honest, "10"))
        found["direct"] = "applied"
    except SubmitFailed as exc:
        found["direct"] = exc.codes
    found["direct_seq"] = (seq, h.account(honest)["sequence"])  # type: ignore[index]
    for who, acc, amount in (("understaked", bad, "10"), ("unapproved", rep["unapproved"][0], "10")):
        try:
            comp.approve(offer(acc, amount), m.dlc)
            found[who] = "approved"
        except InputError as exc:
            found[who] = str(exc)
    found["strikes"] = m.strikes(h, bad)
    found.update(_forgeries(rep, tx, cid))
    return found


def _forgeries(rep: dict[str, Any], tx: Transactor, cid: str) -> dict[str, Any]:
    """What a partner or validator does with forged or tampered evidence, on the real chain and swarm: the
    initiator's real memo transaction (control), the same envelope re-signed by another key, a real memo
    transaction of another account presented as the initiator's, and the checkpoint's real bytes altered
    after its CID went on chain. Each refusal's text is kept for the assertions."""
    from stellar_sdk import TransactionEnvelope

    from dlnet.market.protocol import ForgedError, memo_cid, verify_envelope

    h, out = tx.h, {}
    mine = [t for t in h.records(f"/accounts/{rep['initiator']}/transactions") if memo_cid(t) == cid]
    theirs = next(t for p in rep["malicious"] for t in h.records(f"/accounts/{p}/transactions") if memo_cid(t))
    real = mine[-1]
    out["authentic"] = verify_envelope(real["envelope_xdr"], tx.passphrase, rep["initiator"], real["hash"]).hash_hex()
    out["authentic_hash"] = real["hash"]
    resigned = TransactionEnvelope.from_xdr(real["envelope_xdr"], tx.passphrase)
    resigned.signatures = []
    resigned.sign(Keypair.random())
    for case, xdr, tx_hash in (("resigned", resigned.to_xdr(), None), ("foreign", theirs["envelope_xdr"], None)):
        try:
            verify_envelope(xdr, tx.passphrase, rep["initiator"], tx_hash)
            out[case] = "accepted"
        except ForgedError as exc:
            out[case] = str(exc)
    with closing(Ipfs(rep["_ipfs_down"])) as down:
        data = down.cat(cid)
    out["served_ok"] = cid_of(data) == cid
    try:
        ck.verify(data[:-1] + bytes([data[-1] ^ 1]), cid)  # one bit changed after the CID was recorded
        out["tampered"] = "accepted"
    except ck.CheckpointError as exc:
        out["tampered"] = str(exc)
    return out


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


def test_stake_is_enforced_by_the_ledger_and_the_compliance_service(report) -> None:  # type: ignore[no-untyped-def]
    r = report["_refusals"]
    # KYC-approved partners' DLC trustlines are authorized only to maintain liabilities
    for p, line in r["lines"].items():
        assert line["is_authorized"] is False and line["is_authorized_to_maintain_liabilities"] is True, (p, line)
    # without the approval server's authorize -> offer -> maintain sandwich, the ledger itself refuses it
    assert r["direct"] == {"transaction": "tx_failed", "operations": ["sell_not_authorized"]}, r["direct"]
    assert r["direct_seq"][1] == str(int(r["direct_seq"][0]) + 1)  # it reached the ledger (fee and sequence used)
    # after 3 strikes recorded on chain, the old stake is refused by compliance with the reason
    assert r["strikes"] == 3
    assert "stake offer of 10 DLC too small" in r["understaked"] and "3 strike(s)" in r["understaked"], r
    assert "at least 80.0000000" in r["understaked"], r["understaked"]
    assert "not KYC-approved" in r["unapproved"], r["unapproved"]


def test_forged_memo_transactions_and_tampered_checkpoints_are_refused_with_the_reason(report) -> None:  # type: ignore[no-untyped-def]
    r = report["_refusals"]
    assert r["authentic"] == r["authentic_hash"]  # the initiator's real memo transaction passes
    assert "not signed by" in r["resigned"] and report["initiator"] in r["resigned"], r["resigned"]
    assert "expected " + report["initiator"] in r["foreign"] and "refused" in r["foreign"], r["foreign"]
    assert r["served_ok"]  # the swarm served the bytes the memo names ...
    assert "tampered" in r["tampered"] and "expected " + report["rounds"][-1]["checkpoint"] in r["tampered"]


def test_validators_paid_through_the_bridge(report) -> None:  # type: ignore[no-untyped-def]
    accepted = [d for rnd in report["rounds"] for d in rnd["decisions"] if d["accepted"]]
    assert accepted and all(d["extra"]["via"] == "bridge" for d in accepted)
    with Horizon(report["_url"]) as h:
        for d in accepted:
            xlm_tx, vlm_tx = d["extra"]["transactions"]
            [op] = list(h.records(f"/transactions/{xlm_tx}/operations"))
            assert op["type"] == "path_payment_strict_receive" and op["to"] == d["partner"], op
            assert op["from"] == d["validator"] and Decimal(op["amount"]) == Decimal(d["paid_xlm"])
            assert op["source_asset_code"] == "VLM" and [p["asset_code"] for p in op["path"]] == ["DLM"]
            [vop] = list(h.records(f"/transactions/{vlm_tx}/operations"))
            assert vop["type"] == "payment" and vop["asset_code"] == "VLM" and vop["to"] == d["partner"]
            t = h.transaction(xlm_tx)
            assert t is not None and memo_to_cid(base64.b64decode(t["memo"])) == d["cid"]


def test_one_round_role_by_role_through_the_cli(report) -> None:  # type: ignore[no-untyped-def]
    c = report["_cli"]
    [d] = c["decisions"]
    assert d["accepted"] and d["partner"] == c["partner"] and d["cid"] == c["submitted"]["cid"], d
    assert d["extra"]["via"] == "bridge"
    assert c["fused"]["accepted"] == [c["submitted"]["cid"]]
    assert cid_of(c["fused_bytes"]) != c["published"]["cid"]  # a new checkpoint
    with Horizon(report["_url"]) as h:
        paid = [p for p in h.records(f"/accounts/{c['partner']}/payments")
                if p.get("asset_type") == "native" and p.get("from") == c["validator"]]
        assert [Decimal(p["amount"]) for p in paid] == [Decimal("2")], paid


@pytest.mark.parametrize(("case", "needle"), [
    ("too_many_decimals", "more than 7 decimals"),
    ("unknown_model_setup", "unknown model 'nope'"),
    ("unknown_model", "unknown model 'nope'"),
    ("not_a_cid", "is not"),
    ("no_stake", "get more DLC"),
    ("no_kyc", "is not KYC-approved"),
])
def test_bad_input_refused_in_one_line(report, case: str, needle: str) -> None:  # type: ignore[no-untyped-def]
    code, _out, err = report["_cli"][case]
    assert code == 1 and needle in err and len(err.splitlines()) == 1, (case, err)


def test_nothing_changed_by_refused_input(report) -> None:  # type: ignore[no-untyped-def]
    c = report["_cli"]
    assert c["unchanged"] and c["foreign_unchanged"]
    assert "an asset of no model's market" in c["foreign_asset"], c["foreign_asset"]
