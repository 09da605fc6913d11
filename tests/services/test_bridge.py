"""Bridge: idempotent payments (retries pay once), incoming payment follower with a stored cursor, signed
webhooks with retries — and a real kill -9 of the bridge process mid-stream."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient
from stellar_sdk import Asset, Keypair, TrustLineFlags

from dlnet.services.bridge import create_app, sign_payload, verify_signature
from dlnet.services.settings import BridgeSettings
from tests.services.ledger_setup import Net
from tests.services.pg import free_port

TOKEN = "bridge-api-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOOK_SECRET = "whsec-" + "a" * 32


@pytest.fixture
def setup(database, horizon_double, secret_file):
    net = Net(horizon_double.url, horizon_double.passphrase)
    payer, receiver, outsider = Keypair.random(), Keypair.random(), Keypair.random()
    net.fund(payer, receiver, outsider, amount="10000")

    def settings(**over) -> BridgeSettings:
        raw = {"network_passphrase": horizon_double.passphrase, "database": database,
               "horizon_url": horizon_double.url,
               "accounts": [{"name": "rewards", "seed_file": secret_file("payer.seed", payer.secret)},
                            {"name": "inbox", "seed_file": secret_file("recv.seed", receiver.secret)}],
               "webhook_secret_file": secret_file("hook", HOOK_SECRET), "follow": False, "poll_interval": 0.05,
               "webhook_backoff_base": 0.01, "webhook_max_attempts": 3, "follow_from": "start",
               "admin_token_file": secret_file("token", TOKEN)}
        return BridgeSettings.model_validate(raw | over)

    return {"net": net, "payer": payer, "receiver": receiver, "outsider": outsider, "settings": settings,
            "double": horizon_double.double, "database": database}


def pay_body(to: str, amount: str = "12.5", **extra) -> dict:
    return {"source": "rewards", "destination": to, "asset": "native", "amount": amount} | extra


def test_retried_payment_pays_once_even_after_a_timeout(setup):
    s, net = setup, setup["net"]
    before = net.native_balance(s["outsider"].public_key)
    # The first submission times out at Horizon (the transaction still applies, as real Horizon's 504 does).
    s["double"].inject("timeout")
    with TestClient(create_app(s["settings"]())) as c:
        headers = AUTH | {"Idempotency-Key": "reward-round-7-partner-3"}
        results = [c.post("/payments", json=pay_body(s["outsider"].public_key), headers=headers) for _ in range(5)]
    codes = [r.status_code for r in results]
    assert codes[0] == 202 and codes[-1] == 200, [r.text for r in results]
    hashes = {r.json()["tx_hash"] for r in results}
    assert len(hashes) == 1  # one envelope, however often retried
    after = net.native_balance(s["outsider"].public_key)
    assert float(after) - float(before) == pytest.approx(12.5)
    txs = [t for t in s["double"].ledger.transactions.values() if t["source_account"] == s["payer"].public_key]
    assert len([t for t in txs if t["successful"]]) == 1


def test_concurrent_retries_pay_once(setup):
    s, net = setup, setup["net"]
    before = float(net.native_balance(s["outsider"].public_key))
    with TestClient(create_app(s["settings"]())) as c:
        headers = AUTH | {"Idempotency-Key": "concurrent-1"}
        with ThreadPoolExecutor(5) as ex:
            results = list(ex.map(lambda _: c.post("/payments", json=pay_body(s["outsider"].public_key, "3"),
                                                     headers=headers), range(5)))
        assert {r.status_code for r in results} <= {200, 409}, [r.text for r in results]
        final = c.post("/payments", json=pay_body(s["outsider"].public_key, "3"), headers=headers)
        assert final.status_code == 200
    assert float(net.native_balance(s["outsider"].public_key)) - before == pytest.approx(3)


def test_bad_payment_requests_are_4xx(setup):
    s = setup
    out = s["outsider"].public_key
    with TestClient(create_app(s["settings"]())) as c:
        def post(body, key="k-bad", path="/payments", headers=AUTH):
            return c.post(path, json=body, headers=headers | {"Idempotency-Key": key})

        assert c.post("/payments", json=pay_body(out), headers=AUTH).status_code == 400  # no key
        assert post(pay_body(out), headers={}).status_code == 401
        assert post(pay_body("GNOPE")).status_code == 400
        assert post(pay_body(out, amount="-1")).status_code == 400
        assert post(pay_body(out, amount="1.123456789")).status_code == 400
        assert post(pay_body(out, amount="NaN")).status_code == 400
        assert post(pay_body(out, asset="DLC")).status_code == 400
        r = post(pay_body(out, asset=f"DLC:{Keypair.random().public_key}"))
        assert r.status_code == 400 and "unknown asset" in r.json()["error"]
        assert post(pay_body(out) | {"source": "nobody"}).status_code == 400
        assert post(pay_body(out, memo={"type": "id", "value": "x"})).status_code == 400
        assert post(pay_body(out, memo={"type": "text", "value": "y" * 40})).status_code == 400
        # None of those burnt the key: a good request with it goes through.
        assert post(pay_body(out, "1")).status_code == 200
        r = post(pay_body(out, "2"))
        assert r.status_code == 422 and "different request" in r.json()["error"]
        # Refused by the network (underfunded): a clear 409 with the result codes, replayed as such.
        r = post(pay_body(out, "99999"), key="too-much")
        assert r.status_code == 409 and r.json()["result_codes"]["operations"] == ["op_underfunded"], r.text
        assert post(pay_body(out, "99999"), key="too-much").json()["replayed"] is True
        assert c.get("/payments/too-much", headers=AUTH).json()["status"] == "failed"
        assert c.get("/payments/unknown", headers=AUTH).status_code == 404
        assert post({"source": "rewards"} | {"x": 1}).status_code == 400
        assert c.post("/payments", content=b"[" * 70_000, headers=AUTH | {"Idempotency-Key": "big",
                      "content-type": "application/json"}).status_code == 413
        accounts = c.get("/accounts", headers=AUTH).json()
        assert {a["name"] for a in accounts} == {"rewards", "inbox"}
        assert "seed" not in json.dumps(accounts).lower()


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records deliveries (and can fail the first N)."""

    def __init__(self, fail_first: int = 0, delay: float = 0.0) -> None:
        self.got: list[tuple[str, dict, str]] = []
        self.fail_left = fail_first
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if delay:
                    threading.Event().wait(delay)  # a slow receiver keeps deliveries in flight
                with outer.lock:
                    if outer.fail_left > 0:
                        outer.fail_left -= 1
                        self.send_response(500)
                        self.end_headers()
                        return
                    ok = verify_signature(HOOK_SECRET.encode(), body, self.headers["X-Dlnet-Signature"])
                    outer.got.append((self.headers["X-Dlnet-Id"], json.loads(body), "ok" if ok else "bad"))
                self.send_response(204)
                self.end_headers()

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> list[str]:
        with self.lock:
            return [g[0] for g in self.got]

    def close(self) -> None:
        self.server.shutdown()


def test_follower_records_once_and_webhooks_retry_with_signatures(setup):
    s, net = setup, setup["net"]
    recv = Receiver(fail_first=2)
    try:
        with TestClient(create_app(s["settings"]())) as c:
            assert c.post("/webhooks", json={"url": recv.url}, headers=AUTH).status_code == 201
            assert c.post("/webhooks", json={"url": "ftp://x"}, headers=AUTH).status_code == 400
            for i in range(3):
                net.tx(s["outsider"],
                       lambda b, i=i: b.append_payment_op(s["receiver"].public_key, Asset.native(), str(i + 1)))
            bridge = c.app.state.bridge
            first = bridge.follow_once()
            assert first >= 3  # the create_account funding plus three payments
            assert bridge.follow_once() == 0  # cursor stored: nothing replayed
            for _ in range(200):
                bridge.dispatch_once()
                if len(recv.ids()) >= first:
                    break
                threading.Event().wait(0.02)
        ids = recv.ids()
        assert len(ids) == len(set(ids)) == first
        assert all(sig == "ok" for _, _, sig in recv.got)
        amounts = sorted(p["amount"] for _, p, _ in recv.got if p["type"] == "payment")
        assert amounts == ["1.0000000", "2.0000000", "3.0000000"]
        with psycopg.connect(s["database"].conninfo()) as conn:
            attempts = conn.execute("SELECT sum(attempts) FROM bridge.deliveries").fetchone()[0]
        assert attempts == first + 2  # two failed attempts were retried
    finally:
        recv.close()


def test_signature_helpers():
    body = b'{"a":1}'
    sig = sign_payload(b"k", body, 1000)
    assert verify_signature(b"k", body, sig, now=1000)
    assert not verify_signature(b"k", body + b" ", sig, now=1000)
    assert not verify_signature(b"other", body, sig, now=1000)
    assert not verify_signature(b"k", body, sig, now=5000)  # replay window
    assert not verify_signature(b"k", body, "garbage", now=1000)


def _wait(pred, what: str, rounds: int = 1500) -> None:
    for _ in range(rounds):
        if pred():
            return
        threading.Event().wait(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def test_kill_mid_stream_and_restart_delivers_each_payment_once(setup, tmp_path):
    s, net = setup, setup["net"]
    recv = Receiver(delay=0.05)
    cfg = s["settings"](follow=True, listen_port=free_port()).model_dump(mode="json")
    path = tmp_path / "bridge.yml"
    path.write_text(yaml.safe_dump(cfg))
    with TestClient(create_app(s["settings"]())) as c:  # register the webhook (and migrate) up front
        c.post("/webhooks", json={"url": recv.url}, headers=AUTH)
    log = open(tmp_path / "bridge.log", "wb")  # noqa: SIM115 - closed below

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dlnet", "serve", "bridge", "--config", str(path)],
                                stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONUNBUFFERED": "1"})

    def pay_in(n: int, start_at: int) -> None:
        for i in range(n):
            net.tx(s["outsider"], lambda b, i=i: b.append_payment_op(s["receiver"].public_key, Asset.native(),
                                                                     f"0.{start_at + i:03d}"))

    proc = start()
    try:
        pay_in(15, 1)
        _wait(lambda: len(recv.ids()) >= 5, "the first deliveries")
        proc.send_signal(signal.SIGKILL)  # mid-stream: payments still arriving and pending
        proc.wait(10)
        at_kill = len(set(recv.ids()))
        pay_in(15, 100)
        proc = start()
        held = {s["receiver"].public_key, s["payer"].public_key}
        expected = {p["id"] for p in s["double"].ledger.payments if p.get("to") in held or p.get("account") in held}
        assert len(expected) == 32  # two fundings + 30 payments
        _wait(lambda: set(recv.ids()) >= expected, "every payment delivered")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        log.close()
        recv.close()
    ids = recv.ids()
    assert at_kill < 17  # the kill really interrupted the stream (17 had arrived by then)
    assert set(ids) == expected
    # At-least-once on the wire with an idempotent id: at most the one in flight at the kill is repeated.
    assert len(ids) - len(set(ids)) <= 1
    with psycopg.connect(s["database"].conninfo()) as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT id) FROM bridge.incoming").fetchone()
        delivered = conn.execute("SELECT count(*) FROM bridge.deliveries WHERE status = 'delivered'").fetchone()[0]
    assert rows == (32, 32) and delivered == 32
    text = (tmp_path / "bridge.log").read_text()
    assert s["payer"].secret not in text and s["receiver"].secret not in text and HOOK_SECRET not in text


def test_log_has_no_secrets(setup):
    s = setup
    logs = io.StringIO()
    with TestClient(create_app(s["settings"](), log_stream=logs)) as c:
        c.post("/payments", json=pay_body(s["outsider"].public_key, "1"), headers=AUTH | {"Idempotency-Key": "l1"})
    text = logs.getvalue()
    assert "payment succeeded" in text
    for secret in (s["payer"].secret, TOKEN, HOOK_SECRET, "l1\""):
        assert secret not in text


def test_wrong_network_passphrase_refuses_to_start(setup):
    from dlnet.errors import DlnetError

    app = create_app(setup["settings"](network_passphrase="some other network"))
    with pytest.raises(DlnetError, match="wrong network"), TestClient(app):
        pass


def test_path_payment_is_idempotent_and_checked(setup, monkeypatch):
    from tests.doubles import paths

    paths.enable(monkeypatch)
    s, net = setup, setup["net"]
    issuer, vlm = net.regulated_asset("VLM")
    net.trust(s["payer"], vlm)
    net.trust(s["outsider"], vlm)
    for k in (s["payer"], s["outsider"]):
        net.tx(issuer, lambda b, k=k: b.append_set_trust_line_flags_op(k.public_key, vlm,
                                                                    set_flags=TrustLineFlags.AUTHORIZED_FLAG))
    net.tx(issuer, lambda b: b.append_payment_op(s["payer"].public_key, vlm, "100"))
    body = {"source": "rewards", "destination": s["outsider"].public_key, "asset": f"VLM:{issuer.public_key}",
            "amount": "5", "send_asset": f"VLM:{issuer.public_key}", "send_max": "6"}
    with TestClient(create_app(s["settings"]())) as c:
        rs = [c.post("/path-payments", json=body, headers=AUTH | {"Idempotency-Key": "vlm-1"}) for _ in range(3)]
        assert [r.status_code for r in rs] == [200, 200, 200], rs[0].text
        assert net.line(s["outsider"].public_key, vlm)["balance"] == "5.0000000"
        # send_max below the amount: refused by the network with its code.
        r = c.post("/path-payments", json=body | {"send_max": "4"}, headers=AUTH | {"Idempotency-Key": "vlm-2"})
        assert r.status_code == 409 and r.json()["result_codes"]["operations"] == ["op_over_source_max"]
        r = c.post("/path-payments", json=body | {"path": ["nonsense"]}, headers=AUTH | {"Idempotency-Key": "vlm-3"})
        assert r.status_code == 400 and "path" in r.json()["error"]


def test_follow_from_now_skips_history_then_follows(setup):
    s, net = setup, setup["net"]
    recv = Receiver()
    try:
        with TestClient(create_app(s["settings"](follow_from="now"))) as c:
            c.post("/webhooks", json={"url": recv.url}, headers=AUTH)
            bridge = c.app.state.bridge
            assert bridge.follow_once() == 0  # the fundings before the first start are history
            net.tx(s["outsider"], lambda b: b.append_payment_op(s["receiver"].public_key, Asset.native(), "4"))
            assert bridge.follow_once() == 1
            while bridge.dispatch_once():
                pass
        assert [p["amount"] for _, p, _ in recv.got] == ["4.0000000"]
    finally:
        recv.close()


def test_horizon_down_is_502_and_does_not_burn_the_key(setup):
    s = setup
    body = pay_body(s["outsider"].public_key, "1")
    headers = AUTH | {"Idempotency-Key": "while-down"}
    with TestClient(create_app(s["settings"](horizon_url=f"http://127.0.0.1:{free_port()}"))) as c:
        r = c.post("/payments", json=body, headers=headers)
        assert r.status_code == 502 and "Horizon" in r.json()["error"], r.text
        r = c.post("/payments", json=pay_body(s["outsider"].public_key, "1", asset=f"VLM:{s['payer'].public_key}"),
                   headers=AUTH | {"Idempotency-Key": "while-down-2"})
        assert r.status_code == 502
    with TestClient(create_app(s["settings"]())) as c:
        assert c.post("/payments", json=body, headers=headers).status_code == 200
