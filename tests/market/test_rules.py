"""The stake rule and the memo transactions' signature check (stellar-sdk-built envelopes, no network)."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from stellar_sdk import Account, Asset, Keypair, Network, Price, TransactionBuilder
from stellar_sdk.memo import HashMemo

from dlnet.chain import InputError
from dlnet.market import penalties
from dlnet.market.protocol import ForgedError, Market, find_memo_tx, verify_envelope

PASS = "dlnet test network ; 2026"


def test_required_stake_grows_with_every_strike() -> None:
    stakes = [penalties.required_stake(n) for n in range(4)]
    assert stakes == [Decimal(10), Decimal(20), Decimal(40), Decimal(80)]
    assert penalties.required_stake(2, Decimal("5"), Decimal("1.5")) == Decimal("11.25")
    penalties.check_stake(Decimal(40), 2)
    with pytest.raises(InputError, match=r"must stake at least 80\.0000000"):
        penalties.check_stake(Decimal(79), 3)


def test_strikes_are_the_highest_any_validator_recorded() -> None:
    p = Keypair.random().public_key
    rec = lambda n: {"data": {penalties.strike_key(p): base64.b64encode(str(n).encode()).decode()}}  # noqa: E731
    assert len(penalties.strike_key(p)) == 64  # Stellar's data-entry name limit
    assert penalties.strikes_of([rec(2), rec(3), {"data": {}}], p) == 3
    assert penalties.strikes_of([None], p) == 0


DLM = Asset("DLM", Keypair.random().public_key)


def _offer_tx(source: Keypair, signer: Keypair, passphrase: str = PASS) -> str:
    dlm = DLM
    tx = (TransactionBuilder(Account(source.public_key, 7), passphrase, base_fee=100)
          .add_memo(HashMemo(bytes(32)))
          .append_manage_sell_offer_op(Asset.native(), dlm, "10", Price(1, 1))
          .set_timeout(300).build())
    tx.sign(signer)
    return tx.to_xdr()


def test_memo_transaction_signed_by_the_initiator_is_authentic() -> None:
    ini = Keypair.random()
    env = verify_envelope(_offer_tx(ini, ini), PASS, ini.public_key)
    assert env.transaction.source.account_id == ini.public_key


def test_forged_memo_transaction_is_refused_with_the_reason() -> None:
    ini, other = Keypair.random(), Keypair.random()
    with pytest.raises(ForgedError, match="not signed by"):
        verify_envelope(_offer_tx(ini, other), PASS, ini.public_key)  # claims the initiator, signed by another
    with pytest.raises(ForgedError, match="source"):
        verify_envelope(_offer_tx(other, other), PASS, ini.public_key)  # another account's transaction
    with pytest.raises(ForgedError, match="not signed by"):
        verify_envelope(_offer_tx(ini, ini, Network.PUBLIC_NETWORK_PASSPHRASE), PASS, ini.public_key)
    with pytest.raises(ForgedError, match="not a transaction envelope"):
        verify_envelope("AAAA-garbage", PASS, ini.public_key)


def test_an_asset_the_model_did_not_issue_is_refused() -> None:
    issuer, dlc_issuer = Keypair.random().public_key, Keypair.random().public_key
    m = Market("m", issuer, Keypair.random().public_key, Asset("DLC", dlc_issuer), (Keypair.random().public_key,))
    assert m.check_model_asset(Asset("VLM", issuer)) == m.vlm
    with pytest.raises(InputError, match="was not issued by model 'm'"):
        m.check_model_asset(Asset("VLM", Keypair.random().public_key), "--asset")


class _Horizon:
    """Serves one ledger's transactions, as Horizon's /ledgers/{n}/transactions would (a lying node)."""

    def __init__(self, records: list[dict[str, object]]) -> None:
        self.records = records

    def ledger_transactions(self, sequence: int) -> list[dict[str, object]]:
        return self.records


def test_find_memo_tx_refuses_an_offer_whose_memo_transaction_is_forged() -> None:
    from stellar_sdk import TransactionEnvelope

    ini, other = Keypair.random(), Keypair.random()
    xdr = _offer_tx(ini, other)
    env = TransactionEnvelope.from_xdr(xdr, PASS)
    dlm = env.transaction.operations[0].buying
    record = {"source_account": ini.public_key, "memo_type": "hash", "memo": base64.b64encode(bytes(32)).decode(),
              "envelope_xdr": xdr, "hash": env.hash_hex(), "ledger": 9}
    offer = {"id": "1", "seller": ini.public_key, "selling": {"asset_type": "native"},
             "buying": {"asset_type": "credit_alphanum4", "asset_code": "DLM", "asset_issuer": dlm.issuer},
             "last_modified_ledger": 9}
    with pytest.raises(ForgedError, match=f"not signed by {ini.public_key}"):
        find_memo_tx(_Horizon([record]), PASS, offer)  # type: ignore[arg-type]
    good = _offer_tx(ini, ini)
    genv = TransactionEnvelope.from_xdr(good, PASS)
    found = find_memo_tx(_Horizon([{**record, "envelope_xdr": good, "hash": genv.hash_hex()}]), PASS,
                         offer)  # type: ignore[arg-type]
    assert found.source == ini.public_key and len(found.cid) == 46
