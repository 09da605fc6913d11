"""The shared chain layer (dlnet/chain.py) against the Horizon double: back-off on 429/503, batch reads,
one amount and asset validator."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from stellar_sdk import Asset, Keypair, Payment

from dlnet import chain
from dlnet.cli import main
from tests.doubles.inventory import write_inventory
from tests.doubles.ledger import root_keypair


def _client(h, **kw):
    waits: list[float] = []
    kw.setdefault("backoff", 0.01)
    return chain.Horizon(h.url, sleep=waits.append, **kw), waits


def test_reads_survive_rate_limiting_and_honour_retry_after(horizon_double):
    h = horizon_double
    client, waits = _client(h)
    h.double.rate_limit(3, retry_after=2)
    root = client.root()
    assert root["network_passphrase"] == h.passphrase
    assert waits == [2.0, 2.0, 2.0]  # Retry-After, not the exponential default
    assert h.double.requests == 4


def test_x_ratelimit_reset_is_used_when_retry_after_is_absent(horizon_double):
    h = horizon_double
    client, waits = _client(h)
    h.double.rate_limit(2, retry_after=None, reset=7)
    assert client.account(root_keypair(h.passphrase).public_key) is not None
    assert waits == [7.0, 7.0]


def test_waits_are_capped(horizon_double):
    h = horizon_double
    client, waits = _client(h, max_wait=3)
    h.double.rate_limit(1, retry_after=3600)
    client.root()
    assert waits == [3.0]


def test_503_on_reads_is_retried(horizon_double):
    h = horizon_double
    client, waits = _client(h)
    h.double.unavailable(2)
    assert client.latest_ledger()["sequence"] >= 1
    assert len(waits) == 2 and waits[1] > waits[0]  # exponential back-off without headers


def test_submission_survives_429_and_503_and_applies_once(horizon_double):
    h = horizon_double
    client, waits = _client(h)
    root = root_keypair(h.passphrase)
    tx = chain.Transactor(client, h.passphrase)
    dest = Keypair.random().public_key
    from stellar_sdk import CreateAccount

    env = tx.build(root, [CreateAccount(dest, "30")])
    h.double.rate_limit(2)
    h.double.inject("try_again_later")
    record = tx.submit(env)
    assert record["successful"]
    assert h.double.ledger.accounts[dest].balance == 30 * 10_000_000
    assert len([t for t in h.double.ledger.transactions.values() if t["hash"] == env.hash_hex()]) == 1
    assert len(waits) == 3


def test_rate_limit_past_the_retries_is_one_clear_error(horizon_double):
    h = horizon_double
    client, waits = _client(h, retries=3)
    h.double.rate_limit(100)
    with pytest.raises(chain.HorizonError) as err:
        client.root()
    msg = str(err.value)
    assert "429" in msg and "rate_limit_exceeded" in msg and "PER_HOUR_RATE_LIMIT" in msg
    assert len(waits) == 3 and h.double.requests == 4  # bounded


def test_a_refused_transaction_is_not_retried(horizon_double):
    h = horizon_double
    client, _ = _client(h)
    root = root_keypair(h.passphrase)
    tx = chain.Transactor(client, h.passphrase)
    nobody = Keypair.random().public_key
    with pytest.raises(chain.SubmitFailed) as err:
        tx.run(root, [Payment(nobody, Asset.native(), "1")])
    assert err.value.op_codes == ["op_no_destination"]


def test_accounts_holding_pages_through_every_trustline(horizon_double):
    h = horizon_double
    client, _ = _client(h)
    root = root_keypair(h.passphrase)
    tx = chain.Transactor(client, h.passphrase)
    issuer = Keypair.random()
    holders = [Keypair.random() for _ in range(205)]
    from stellar_sdk import ChangeTrust, CreateAccount

    tx.run(root, [CreateAccount(issuer.public_key, "100")])
    asset = Asset("DLC", issuer.public_key)
    for i in range(0, len(holders), 19):
        part = holders[i : i + 19]
        tx.run(root, [CreateAccount(k.public_key, "35") for k in part])
        tx.run(root, [ChangeTrust(asset, source=k.public_key) for k in part], signers=part)
    before = h.double.requests
    found = client.accounts_holding(asset)
    assert set(found) == {k.public_key for k in holders}
    assert h.double.requests - before == 2  # 200 per page


def _inv(tmp_path, h, holders):
    extra = {"dlnet_dlc": {"home_domain": "org1.dlnet.test", "supply": "1000000", "holders": holders}}
    port = int(h.url.rsplit(":", 1)[1])  # the double answers the validator's `tx` too
    return write_inventory(tmp_path, passphrase=h.passphrase, validators={"v1": port}, horizon_port=port, extra=extra)


def test_seed_reads_holders_in_pages_and_survives_429(tmp_path, horizon_double, capsys, monkeypatch):
    h = horizon_double
    monkeypatch.setattr(chain.time, "sleep", lambda s: None)  # the client's back-off: no real waiting
    inv = _inv(tmp_path, h, 300)
    assert main(["seed", "-i", inv, "--json"]) == 0, capsys.readouterr().err
    first = h.double.requests
    capsys.readouterr()
    # A second run must check 300 holders with a few pages, not 300 GETs; and 429s do not stop it.
    h.double.requests = 0
    h.double.rate_limit(5)
    assert main(["seed", "-i", inv, "--json"]) == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] is False
    assert h.double.requests <= 5 + 20, h.double.requests
    assert first < 300  # the first run too: no per-holder lookups


def test_seed_recovers_when_a_holder_account_already_exists(tmp_path, horizon_double, capsys):
    """A holder made elsewhere (no DLC trustline, so not in the pages): its create_account is dropped."""
    from dlnet.keys import secrets_dir
    from dlnet.seed import holder_keys

    h = horizon_double
    inv = _inv(tmp_path, h, 3)
    assert main(["seed", "-i", inv, "--holders", "0"]) == 0
    kps = holder_keys("test", 3)
    assert secrets_dir("test").exists()
    client, _ = _client(h)
    from stellar_sdk import CreateAccount

    chain.Transactor(client, h.passphrase).run(root_keypair(h.passphrase), [CreateAccount(kps[1].public_key, "100")])
    capsys.readouterr()
    assert main(["seed", "-i", inv, "--json"]) == 0, capsys.readouterr().err
    lg = h.double.ledger
    for kp in kps:
        assert lg.accounts[kp.public_key].trustlines
    assert lg.accounts[kps[1].public_key].balance <= 100 * 10_000_000  # not re-created


@pytest.mark.parametrize(
    ("value", "reason"),
    [("1.12345678", "more than 7 decimals"), ("0", "not positive"), ("-1", "plain"), ("1e5", "plain"),
     ("NaN", "plain"), ("922337203686", "largest")],
)
def test_amount_validator_says_why(value, reason):
    with pytest.raises(chain.InputError) as err:
        chain.parse_amount(value, "--price")
    assert reason in str(err.value) and "--price" in str(err.value) and value in str(err.value)


def test_amount_and_asset_validators_accept_the_good():
    assert chain.parse_amount("12.5") == Decimal("12.5")
    assert chain.parse_amount("922337203685.4775807") == chain.MAX_AMOUNT
    kp = Keypair.random().public_key
    assert chain.parse_asset(f"DLM:{kp}") == Asset("DLM", kp)
    assert chain.parse_asset("native").is_native()
    for bad in ("DLM", f"TOO-LONG-CODE1:{kp}", "DLM:GABC"):
        with pytest.raises(chain.InputError):
            chain.parse_asset(bad)
