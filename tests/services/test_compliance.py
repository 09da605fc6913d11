"""Compliance: SEP-10, encrypted KYC on the real kubo swarm, operator decisions with on-chain effects
(checked on the Horizon + ledger double), the SEP-8 style approval rules and the append-only audit log."""

from __future__ import annotations

import io
import secrets
import subprocess
import time
from decimal import Decimal
from unittest import mock

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from stellar_sdk import Asset, Keypair, TransactionBuilder, TransactionEnvelope
from stellar_sdk.sep import stellar_web_authentication as sep10

from dlnet.services.compliance import create_app
from dlnet.services.settings import ComplianceSettings
from tests.services import pg
from tests.services.ledger_setup import Net

TOKEN = "operator-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
HOME = "org1.dlnet.test"


@pytest.fixture
def world(database, kubo_swarm, horizon_double, secret_file):
    net = Net(horizon_double.url, horizon_double.passphrase)
    issuer, dlc = net.regulated_asset()
    alice, bob, carol, stake = (Keypair.random() for _ in range(4))
    net.fund(alice, bob, carol, stake)
    for k in (alice, bob, stake):
        net.trust(k, dlc)
    signing = Keypair.random()
    s = ComplianceSettings(
        network_passphrase=horizon_double.passphrase, database=database, home_domain=HOME,
        web_auth_domain="compliance.org1.dlnet.test", horizon_url=horizon_double.url, ipfs_api_url=kubo_swarm[0],
        dlc={"issuer": issuer.public_key, "max_amount": "500", "stake_account": stake.public_key,
             "stake_base": "100", "penalty_factor": "2"},
        signing_key_file=secret_file("signing", signing.secret),
        jwt_secret_file=secret_file("jwt", secrets.token_hex(32)),
        kyc_kek_file=secret_file("kek", secrets.token_hex(32)), issuer_seed_file=secret_file("issuer", issuer.secret),
        rate_limit_per_minute=0)
    logs = io.StringIO()
    with TestClient(create_app(s, admin_token=TOKEN, log_stream=logs)) as client:
        yield {"net": net, "issuer": issuer, "dlc": dlc, "alice": alice, "bob": bob, "carol": carol, "stake": stake,
               "signing": signing, "settings": s, "client": client, "logs": logs, "database": database,
               "passphrase": horizon_double.passphrase}


def login(w, kp: Keypair, passphrase: str | None = None) -> httpx.Response:
    c = w["client"]
    r = c.get("/auth", params={"account": kp.public_key})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["network_passphrase"] == w["passphrase"]
    # The wallet side: stellar-sdk's SEP-10 client code checks the server's challenge, then signs it.
    sep10.read_challenge_transaction(body["transaction"], w["signing"].public_key, HOME,
                                     "compliance.org1.dlnet.test", w["passphrase"])
    env = TransactionEnvelope.from_xdr(body["transaction"], passphrase or w["passphrase"])
    env.sign(kp)
    return c.post("/auth", json={"transaction": env.to_xdr()})


def bearer(w, kp: Keypair) -> dict[str, str]:
    r = login(w, kp)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def decide(w, kp: Keypair, what: str, **extra) -> httpx.Response:
    return w["client"].post(f"/admin/kyc/{kp.public_key}/{what}", json={"operator": "op1", "reason": "test"} | extra,
                            headers=ADMIN)


def submit(w, kp: Keypair, fields: dict[str, str]) -> httpx.Response:
    return w["client"].post("/kyc", json={"fields": fields}, headers=bearer(w, kp))


def test_sep10_login_and_bad_challenges(world):
    w, c = world, world["client"]
    assert login(w, w["alice"]).status_code == 200
    # Wrong network passphrase when signing: the signature does not verify.
    r = login(w, w["alice"], passphrase="some other network")
    assert r.status_code == 401 and "not signed" in r.json()["error"]
    # Signed by someone else.
    ch = c.get("/auth", params={"account": w["alice"].public_key}).json()["transaction"]
    env = TransactionEnvelope.from_xdr(ch, w["passphrase"])
    env.sign(w["bob"])
    assert c.post("/auth", json={"transaction": env.to_xdr()}).status_code == 401
    # Unsigned by the client.
    assert c.post("/auth", json={"transaction": ch}).status_code == 401
    # Expired challenge (built by the server's key with a past deadline).
    with mock.patch("time.time", return_value=time.time() - 3600):
        old = sep10.build_challenge_transaction(w["signing"].secret, w["alice"].public_key, HOME,
                                                "compliance.org1.dlnet.test", w["passphrase"], timeout=300)
    env = TransactionEnvelope.from_xdr(old, w["passphrase"])
    env.sign(w["alice"])
    r = c.post("/auth", json={"transaction": env.to_xdr()})
    assert r.status_code == 400 and "invalid challenge" in r.json()["error"], r.text
    # A challenge from another server key.
    forged = sep10.build_challenge_transaction(Keypair.random().secret, w["alice"].public_key, HOME,
                                               "compliance.org1.dlnet.test", w["passphrase"])
    assert c.post("/auth", json={"transaction": forged}).status_code == 400
    assert c.post("/auth", json={"transaction": "garbage!"}).status_code == 400
    assert c.get("/auth", params={"account": "GABC"}).status_code == 400
    assert c.get("/auth", params={"account": w["alice"].public_key, "home_domain": "evil.example"}).status_code == 400
    assert c.post("/auth", content=b"x" * 100_000, headers={"content-type": "application/json"}).status_code == 413
    assert c.get("/kyc").status_code == 401
    assert c.get("/kyc", headers={"Authorization": "Bearer not.a.jwt"}).status_code == 401


def test_kyc_plaintext_never_stored_or_logged(world, kubo_swarm, pg_cluster, capfd):
    w = world
    marker = "Zqx" + secrets.token_hex(12)
    r = submit(w, w["alice"], {"first_name": marker, "email_address": f"{marker}@example.org"})
    assert r.status_code == 202, r.text
    cid = r.json()["record_cid"]
    assert cid.startswith("Qm") and r.json()["status"] == "pending"
    # PostgreSQL: a full dump of the database holds no plaintext.
    dbname = w["database"].dsn.split("dbname=")[1].split()[0]
    bindir = pg.pg_bindir()
    dump = subprocess.run([str(bindir / "pg_dump"), "-h", "127.0.0.1", "-p", str(pg_cluster.port), "-U", "dlnet",
                           dbname], capture_output=True, env={"PGPASSWORD": pg_cluster.password}, check=True).stdout
    assert cid.encode() in dump  # the dump is real and holds the reference
    assert marker.encode() not in dump
    # IPFS: every block on both nodes.
    for url in kubo_swarm:
        refs = httpx.post(f"{url}/api/v0/refs/local", timeout=30).text.split()
        blocks = [httpx.post(f"{url}/api/v0/block/get", params={"arg": x, "offline": "true"}, timeout=30).content
                  for x in {__import__("json").loads(line)["Ref"] for line in refs if line.startswith("{")}]
        assert all(marker.encode() not in b for b in blocks)
    stored = httpx.post(f"{kubo_swarm[1]}/api/v0/cat", params={"arg": cid}, timeout=30).content
    assert b"AES-256-GCM" in stored and marker.encode() not in stored
    # The operator can still read it (the record is intact and decryptable).
    r = w["client"].get(f"/admin/kyc/{w['alice'].public_key}/record", params={"operator": "op1"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["fields"]["first_name"] == marker
    # Logs: neither the service log nor anything else written to the terminal.
    out, err = capfd.readouterr()
    assert w["logs"].getvalue() and marker not in w["logs"].getvalue()
    assert marker not in out and marker not in err


def test_approval_authorizes_and_revocation_deauthorizes_on_chain(world):
    w, net, dlc, issuer = world, world["net"], world["dlc"], world["issuer"]
    alice, carol = w["alice"], w["carol"]

    def pay(to: Keypair, amount: str = "50"):
        return net.try_tx(issuer, lambda b: b.append_payment_op(to.public_key, dlc, amount))

    assert submit(w, alice, {"first_name": "Alice"}).status_code == 202
    # Not yet approved: the trustline is unauthorized, DLC cannot arrive.
    assert pay(alice)["operations"] == ["op_not_authorized"]
    assert decide(w, alice, "revoke").status_code == 409  # not approved yet
    r = decide(w, alice, "approve")
    assert r.status_code == 200, r.text
    assert net.line(alice.public_key, dlc)["is_authorized"] is True
    assert "ok" in pay(alice, "80")
    # Carol has no trustline: approval is refused with what to do.
    assert submit(w, carol, {"first_name": "Carol"}).status_code == 202
    r = decide(w, carol, "approve")
    assert r.status_code == 409 and "no DLC trustline" in r.json()["error"]
    # Revocation with clawback: balance gone, trustline deauthorized, payments refused again.
    r = decide(w, alice, "revoke", clawback=True)
    assert r.status_code == 200, r.text
    line = net.line(alice.public_key, dlc)
    assert line["is_authorized"] is False and line["balance"] == "0.0000000"
    assert pay(alice)["operations"] == ["op_not_authorized"]
    # Audit log: every decision, append-only.
    log = w["client"].get("/admin/audit", params={"account": alice.public_key}, headers=ADMIN).json()
    assert [e["action"] for e in reversed(log)] == ["kyc_submitted", "approve", "revoke"]
    assert log[0]["detail"]["clawed_back"] == "80.0000000"
    with psycopg.connect(w["database"].conninfo()) as conn:
        for stmt in ("UPDATE compliance.audit_log SET actor = 'x'", "DELETE FROM compliance.audit_log",
                     "TRUNCATE compliance.audit_log"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(stmt)
            conn.rollback()


def test_reject_and_state_rules(world):
    w = world
    assert decide(w, w["bob"], "approve").status_code == 409  # never submitted
    assert submit(w, w["bob"], {"first_name": "Bob"}).status_code == 202
    assert decide(w, w["bob"], "reject").status_code == 200
    assert decide(w, w["bob"], "reject").status_code == 409
    assert w["client"].get("/kyc", headers=bearer(w, w["bob"])).json()["status"] == "rejected"
    r = w["client"].post("/admin/kyc/GBAD/approve", json={"operator": "op1"}, headers=ADMIN)
    assert r.status_code == 400
    assert w["client"].post(f"/admin/kyc/{w['bob'].public_key}/approve", json={"operator": "op1"}).status_code == 401


def _payment_tx(w, src: Keypair, dest: str, amount: str, asset: Asset | None = None, passphrase: str | None = None):
    acc = w["net"].server.load_account(src.public_key)
    b = TransactionBuilder(acc, passphrase or w["passphrase"], base_fee=100).set_timeout(60)
    b.append_payment_op(dest, asset or w["dlc"], amount)
    t = b.build()
    t.sign(src)
    return t.to_xdr()


def test_sep8_style_approval_rules(world):
    w, c, net = world, world["client"], world["net"]
    alice, bob, stake = w["alice"], w["bob"], w["stake"]
    for k in (alice, bob, stake):
        assert submit(w, k, {"first_name": "x"}).status_code == 202
        assert decide(w, k, "approve").status_code == 200, k
    net.tx(w["issuer"], lambda b: b.append_payment_op(alice.public_key, w["dlc"], "1000"))

    def approve(xdr: str):
        return c.post("/tx-approve", json={"tx": xdr})

    r = approve(_payment_tx(w, alice, bob.public_key, "10"))
    assert r.status_code == 200 and r.json()["status"] == "success", r.text
    signed = TransactionEnvelope.from_xdr(r.json()["tx"], w["passphrase"])
    w["issuer"].verify(signed.hash(), signed.signatures[-1].signature)  # raises if not the issuer's
    assert "hash" in net.server.submit_transaction(signed)

    def rejected(xdr: str, needle: str) -> None:
        r = approve(xdr)
        assert r.status_code == 400 and r.json()["status"] == "rejected", r.text
        assert needle in r.json()["error"], r.json()

    rejected(_payment_tx(w, alice, bob.public_key, "600"), "exceeds the limit")
    rejected(_payment_tx(w, alice, w["carol"].public_key, "1"), "not KYC-approved")
    rejected(_payment_tx(w, alice, bob.public_key, "1", Asset("DLM", w["issuer"].public_key)), "unknown asset DLM")
    rejected(_payment_tx(w, alice, bob.public_key, "1", passphrase="another network"), "wrong network passphrase")
    rejected("AAAA", "not a base64 XDR")
    unsigned = TransactionEnvelope.from_xdr(_payment_tx(w, alice, bob.public_key, "1"), w["passphrase"])
    unsigned.signatures.clear()
    rejected(unsigned.to_xdr(), "not signed")
    # Penalty stake (paper Sec. 4.3): 100 DLC normally; after 2 strikes 100 * 2**2 = 400.
    assert approve(_payment_tx(w, alice, stake.public_key, "100")).json()["status"] == "success"
    r = c.put(f"/admin/accounts/{alice.public_key}/strikes", json={"operator": "op1", "strikes": 2}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["strikes"] == 2
    rejected(_payment_tx(w, alice, stake.public_key, "100"), "must stake at least 400")
    assert approve(_payment_tx(w, alice, stake.public_key, "400")).json()["status"] == "success"
    # The training market's stake offer (DLC for a model's VLM): the market's own terms (stake base 100, factor 2,
    # on its initiator's account, found from the VLM issuer's dlnet.initiator) and the strikes its validators
    # recorded on chain (here 3, above the operator's 2): 100 * 2**3 = 800.
    from stellar_sdk.operation import ManageData

    from dlnet.market import penalties
    from dlnet.market.protocol import Market

    model_issuer, ini, val = Keypair.random(), Keypair.random(), Keypair.random()
    net.fund(model_issuer, ini, val)
    vlm = Asset("VLM", model_issuer.public_key)
    m = Market("m1", model_issuer.public_key, ini.public_key, w["dlc"], (val.public_key,), stake_base=Decimal(100))
    net.tx(model_issuer, lambda b: b.append_operation(ManageData("dlnet.model", "m1")).append_operation(
        ManageData("dlnet.initiator", ini.public_key)))
    net.tx(ini, lambda b: [b.append_operation(op) for op in m.terms_ops()])
    net.tx(val, lambda b: b.append_operation(ManageData(penalties.strike_key(alice.public_key), "3")))

    def stake_offer(src: Keypair, amount: str, buying: Asset = vlm) -> str:
        b = TransactionBuilder(w["net"].server.load_account(src.public_key), w["passphrase"], base_fee=100)
        t = b.set_timeout(60).append_manage_sell_offer_op(w["dlc"], buying, amount, "0.1").build()
        t.sign(src)
        return t.to_xdr()

    rejected(stake_offer(alice, "400"), "3 strike(s) for refused updates (recorded on chain), so must stake at least 8")
    assert approve(stake_offer(alice, "800")).json()["status"] == "success"
    rejected(stake_offer(w["carol"], "800"), "not KYC-approved")
    rejected(stake_offer(alice, "800", Asset("VLM", bob.public_key)), "an asset of no model's market")


def test_sep10_uses_the_signers_of_an_existing_account(world):
    from stellar_sdk import Signer

    w, c, net = world, world["client"], world["net"]
    carol, delegate = w["carol"], Keypair.random()
    # Carol hands control to a delegate key and turns her master key off.
    net.tx(carol, lambda b: b.append_set_options_op(signer=Signer.ed25519_public_key(delegate.public_key, 1),
                                                    master_weight=0, med_threshold=1))

    def signed_by(kp: Keypair) -> int:
        ch = c.get("/auth", params={"account": carol.public_key}).json()["transaction"]
        env = TransactionEnvelope.from_xdr(ch, w["passphrase"])
        env.sign(kp)
        return c.post("/auth", json={"transaction": env.to_xdr()}).status_code

    assert signed_by(carol) == 401  # the master key no longer counts
    assert signed_by(delegate) == 200
    # An account not on the ledger yet authenticates with its master key.
    newcomer = Keypair.random()
    assert login(w, newcomer).status_code == 200


def test_kek_rotation_rewraps_every_record(world, tmp_path, capsys):
    from dlnet.cli import main
    from dlnet.services import settings as st

    w = world
    assert submit(w, w["alice"], {"first_name": "Rotated"}).status_code == 202
    s: ComplianceSettings = w["settings"]
    old_file = tmp_path / "old.kek"
    old_file.write_text(s.kyc_kek_file.read_text())
    s.kyc_kek_file.write_text(secrets.token_hex(32) + "\n")  # the new KEK
    cfg = tmp_path / "compliance.yml"
    cfg.write_text(__import__("yaml").safe_dump(s.model_dump(mode="json")))
    assert main(["services", "rotate-kek", "--config", str(cfg), "--old-kek-file", str(old_file),
                 "--operator", "op1"]) == 0
    assert "1 KYC record key(s) re-wrapped" in capsys.readouterr().out
    # The same rotation again finds nothing under the old key.
    assert main(["services", "rotate-kek", "--config", str(cfg), "--old-kek-file", str(old_file),
                 "--operator", "op1"]) == 0
    assert "0 KYC record key(s)" in capsys.readouterr().out
    # A service started with the new KEK reads the record; the audit log has the rotation.
    with TestClient(create_app(st.load("compliance", cfg), admin_token=TOKEN)) as c:
        r = c.get(f"/admin/kyc/{w['alice'].public_key}/record", params={"operator": "op1"}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["fields"]["first_name"] == "Rotated"
        actions = [e["action"] for e in c.get("/admin/audit", headers=ADMIN).json()]
        assert "kek_rotated" in actions
    # The running service (still on the old KEK) can no longer open it: 503 with a clear reason, not 500.
    r = w["client"].get(f"/admin/kyc/{w['alice'].public_key}/record", params={"operator": "op1"}, headers=ADMIN)
    assert r.status_code == 503 and "authentication failed" in r.json()["error"]
