"""The Horizon + ledger double behaves as Horizon and stellar-core do for what the kit uses."""

from __future__ import annotations

import hashlib
import json
import threading

import httpx
import pytest
from stellar_sdk import (
    Asset,
    AuthorizationFlag,
    Keypair,
    Server,
    TransactionBuilder,
    TrustLineFlags,
)
from stellar_sdk.exceptions import BadRequestError, NotFoundError

from tests.doubles.ledger import root_keypair


def _tx(server: Server, passphrase: str, source: Keypair, build, signers=()) -> dict:
    acc = server.load_account(source.public_key)
    b = TransactionBuilder(acc, passphrase, base_fee=100).set_timeout(60)
    build(b)
    tx = b.build()
    for s in (source, *signers):
        tx.sign(s)
    return server.submit_transaction(tx)


def _codes(exc: BadRequestError) -> dict:
    return exc.extras["result_codes"]


@pytest.fixture
def net(horizon_double):
    url, passphrase, double = horizon_double
    return Server(url), passphrase, double, root_keypair(passphrase)


def test_root_account_is_sha256_of_passphrase_and_holds_all_lumens(net):
    server, passphrase, _, _ = net
    acc = (
        server.accounts()
        .account_id(Keypair.from_raw_ed25519_seed(hashlib.sha256(passphrase.encode()).digest()).public_key)
        .call()
    )
    assert acc["balances"] == [
        {
            "balance": "100000000000.0000000",
            "buying_liabilities": "0.0000000",
            "selling_liabilities": "0.0000000",
            "asset_type": "native",
        }
    ]
    assert server.root().call()["network_passphrase"] == passphrase


def test_issue_flow_create_flags_trust_authorize_pay(net):
    server, pp, _, root = net
    issuer, dist = Keypair.random(), Keypair.random()
    _tx(
        server,
        pp,
        root,
        lambda b: b.append_create_account_op(issuer.public_key, "100").append_create_account_op(dist.public_key, "100"),
    )
    flags = (
        AuthorizationFlag.AUTHORIZATION_REQUIRED
        | AuthorizationFlag.AUTHORIZATION_REVOCABLE
        | AuthorizationFlag.AUTHORIZATION_CLAWBACK_ENABLED
    )
    _tx(server, pp, issuer, lambda b: b.append_set_options_op(set_flags=flags, home_domain="org1.dlnet.local"))
    dlc = Asset("DLC", issuer.public_key)
    _tx(server, pp, dist, lambda b: b.append_change_trust_op(dlc))
    with pytest.raises(BadRequestError) as e:  # not authorized yet: AUTH_REQUIRED
        _tx(server, pp, issuer, lambda b: b.append_payment_op(dist.public_key, dlc, "10"))
    assert _codes(e.value) == {"transaction": "tx_failed", "operations": ["op_not_authorized"]}
    _tx(
        server,
        pp,
        issuer,
        lambda b: b.append_set_trust_line_flags_op(
            dist.public_key, dlc, set_flags=TrustLineFlags.AUTHORIZED_FLAG
        ).append_payment_op(dist.public_key, dlc, "1000000"),
    )
    acc = server.accounts().account_id(dist.public_key).call()
    line = acc["balances"][0]
    assert (line["asset_code"], line["balance"], line["is_authorized"], line["is_clawback_enabled"]) == (
        "DLC",
        "1000000.0000000",
        True,
        True,
    )
    iss = server.accounts().account_id(issuer.public_key).call()
    assert iss["home_domain"] == "org1.dlnet.local"
    assert iss["flags"] == {
        "auth_required": True,
        "auth_revocable": True,
        "auth_immutable": False,
        "auth_clawback_enabled": True,
    }


def test_bad_sequence_is_rejected_and_consumes_nothing(net):
    server, pp, _, root = net
    acc = server.load_account(root.public_key)
    acc.sequence += 5
    tx = (
        TransactionBuilder(acc, pp, 100)
        .append_create_account_op(Keypair.random().public_key, "25")
        .set_timeout(30)
        .build()
    )
    tx.sign(root)
    with pytest.raises(BadRequestError) as e:
        server.submit_transaction(tx)
    assert _codes(e.value) == {"transaction": "tx_bad_seq"}
    assert server.load_account(root.public_key).sequence == 0


def test_underfunded_create_account_fails_but_charges_fee_and_sequence(net):
    server, pp, _, root = net
    poor = Keypair.random()
    _tx(server, pp, root, lambda b: b.append_create_account_op(poor.public_key, "21"))
    with pytest.raises(BadRequestError) as e:
        _tx(server, pp, poor, lambda b: b.append_create_account_op(Keypair.random().public_key, "50"))
    assert _codes(e.value)["operations"] == ["op_underfunded"]
    acc = server.accounts().account_id(poor.public_key).call()
    assert acc["balances"][-1]["balance"] == "20.9999900"
    assert int(acc["sequence"]) % (1 << 32) == 1


def test_fee_larger_than_spendable_balance_is_tx_insufficient_balance(net):
    server, pp, _, root = net
    poor = Keypair.random()
    _tx(server, pp, root, lambda b: b.append_create_account_op(poor.public_key, "20"))
    with pytest.raises(BadRequestError) as e:
        _tx(server, pp, poor, lambda b: b.append_bump_sequence_op(1))
    assert _codes(e.value) == {"transaction": "tx_insufficient_balance"}


def test_locked_root_cannot_sign_and_wrong_network_signature_is_bad_auth(net, horizon_factory):
    server, pp, _, root = net
    _tx(server, pp, root, lambda b: b.append_set_options_op(master_weight=0))
    with pytest.raises(BadRequestError) as e:
        _tx(server, pp, root, lambda b: b.append_bump_sequence_op(1))
    assert _codes(e.value) == {"transaction": "tx_bad_auth"}
    other = horizon_factory("another network")
    other_root = root_keypair("another network")
    acc = Server(other.url).load_account(other_root.public_key)
    tx = TransactionBuilder(acc, pp, 100).append_bump_sequence_op(1).set_timeout(30).build()
    tx.sign(other_root)  # signed for the wrong passphrase
    with pytest.raises(BadRequestError) as e:
        Server(other.url).submit_transaction(tx)
    assert _codes(e.value) == {"transaction": "tx_bad_auth"}


def test_protocol_zero_refuses_modern_transactions(horizon_factory):
    h = horizon_factory(protocol_version=0)
    root = root_keypair(h.passphrase)
    with pytest.raises(BadRequestError) as e:
        _tx(Server(h.url), h.passphrase, root, lambda b: b.append_bump_sequence_op(1))
    assert _codes(e.value) == {"transaction": "tx_not_supported"}


def test_missing_account_is_404(net):
    server, *_ = net
    with pytest.raises(NotFoundError):
        server.accounts().account_id(Keypair.random().public_key).call()


def test_faults_try_again_later_and_timeout_then_the_timed_out_tx_still_applies(net):
    server, pp, double, root = net
    double.inject("try_again_later", "timeout")
    dest = Keypair.random()
    tx = (
        TransactionBuilder(server.load_account(root.public_key), pp, 100)
        .append_create_account_op(dest.public_key, "25")
        .set_timeout(60)
        .build()
    )
    tx.sign(root)
    post = lambda: httpx.post(f"{double.url}/transactions", data={"tx": tx.to_xdr()})  # noqa: E731
    assert post().status_code == 503
    assert double.ledger.account(dest.public_key) is None
    assert post().status_code == 504
    again = post()  # the same envelope again: its outcome once applied
    assert (again.status_code, again.json().get("successful")) == (200, True), again.text
    assert double.ledger.account(dest.public_key).balance == 25 * 10**7


def test_max_tx_set_size_limits_operations_per_ledger(horizon_factory):
    h = horizon_factory(max_tx_set_size=3, close_interval=0.05)
    root = root_keypair(h.passphrase)
    server = Server(h.url)
    acc = server.load_account(root.public_key)
    txs = []
    for _ in range(3):
        b = TransactionBuilder(acc, h.passphrase, 100).set_timeout(60)
        for _ in range(2):
            b.append_create_account_op(Keypair.random().public_key, "25")
        tx = b.build()
        tx.sign(root)
        txs.append(tx)
    subs = [h.double.ledger.submit(t.to_xdr()) for t in txs]  # queued in sequence order, none applied yet
    assert all(sub.done.wait(10) for sub in subs)
    ledgers = server.ledgers().order(desc=False).limit(200).call()["_embedded"]["records"]
    per_ledger = [r["operation_count"] for r in ledgers if r["operation_count"]]
    assert per_ledger == [2, 2, 2]


def test_payments_paged_and_streamed_as_server_sent_events(net):
    server, pp, double, root = net
    dest = Keypair.random()
    _tx(server, pp, root, lambda b: b.append_create_account_op(dest.public_key, "25"))
    got = []
    with (
        httpx.Client(timeout=5) as c,
        c.stream("GET", f"{double.url}/payments", params={"cursor": "0"}, headers={"Accept": "text/event-stream"}) as r,
    ):
        threading.Thread(
            target=lambda: _tx(server, pp, root, lambda b: b.append_payment_op(dest.public_key, Asset.native(), "1.5"))
        ).start()
        for line in r.iter_lines():
            if line.startswith("data: {"):
                got.append(json.loads(line[6:]))
            if len(got) == 2:
                break
    assert [(p["type"], p.get("amount") or p.get("starting_balance")) for p in got] == [
        ("create_account", "25.0000000"),
        ("payment", "1.5000000"),
    ]
    page = server.payments().for_account(dest.public_key).call()["_embedded"]["records"]
    assert len(page) == 2


def test_offers_cross_at_the_makers_price(net):
    server, pp, _, root = net
    issuer, a, b_ = Keypair.random(), Keypair.random(), Keypair.random()
    _tx(
        server,
        pp,
        root,
        lambda b: (
            b.append_create_account_op(issuer.public_key, "100")
            .append_create_account_op(a.public_key, "100")
            .append_create_account_op(b_.public_key, "100")
        ),
    )
    dlm = Asset("DLM", issuer.public_key)
    for k in (a, b_):
        _tx(server, pp, k, lambda b: b.append_change_trust_op(dlm))
    _tx(server, pp, issuer, lambda b: b.append_payment_op(a.public_key, dlm, "10"))
    # a sells 10 DLM for XLM at 2 XLM each; b buys 4 DLM paying up to 2 XLM each
    _tx(server, pp, a, lambda b: b.append_manage_sell_offer_op(dlm, Asset.native(), "10", "2"))
    _tx(server, pp, b_, lambda b: b.append_manage_sell_offer_op(Asset.native(), dlm, "8", "0.5"))
    acc = server.accounts().account_id(b_.public_key).call()
    bal = {x["asset_type"]: x["balance"] for x in acc["balances"]}
    assert bal["credit_alphanum4"] == "4.0000000"
    offers = server.offers().for_seller(a.public_key).call()["_embedded"]["records"]
    assert [o["amount"] for o in offers] == ["6.0000000"]


def test_stellar_sdk_payment_stream_sees_each_payment(net):
    server, pp, _, root = net
    dest = Keypair.random()

    def pay() -> None:
        _tx(server, pp, root, lambda b: b.append_create_account_op(dest.public_key, "30"))
        _tx(server, pp, root, lambda b: b.append_payment_op(dest.public_key, Asset.native(), "2"))

    got = []
    stream = server.payments().for_account(root.public_key).cursor("0").stream()
    threading.Thread(target=pay).start()
    for rec in stream:
        got.append((rec["type"], rec.get("amount") or rec.get("starting_balance")))
        if len(got) == 2:
            break
    assert got == [("create_account", "30.0000000"), ("payment", "2.0000000")]
