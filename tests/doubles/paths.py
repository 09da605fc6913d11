"""Extension of the ledger double (issue 5, kept apart from issue 3's files): path payments.

Only the no-conversion case is modelled: send asset = destination asset and an empty path, which
moves the destination amount like a payment and checks `send_max` (strict receive) or `dest_min`
(strict send). A path that would cross the order book answers `op_too_few_offers`: the double has no
path finding; conversions are checked only against a real network.
"""

from __future__ import annotations

from typing import Any

from stellar_sdk import operation as ops

from tests.doubles.ledger import AccountState, OpFailed, _asset_json, _Overlay, amount_str, asset_key, to_stroops


def _move(ov: _Overlay, src: AccountState, dest_id: str, asset: Any, amount: int) -> AccountState:
    dest = ov.must(dest_id, "op_no_destination")
    key = asset_key(asset)
    if key is None:
        if ov.available(src) < amount:
            raise OpFailed("op_underfunded")
        src.balance -= amount
        dest.balance += amount
    else:
        if ov.get(key[1]) is None:
            raise OpFailed("op_no_issuer")
        ov._credit(src, key, amount, sending=True)
        ov._credit(dest, key, amount, sending=False)
    return dest


def _same_asset(op: Any) -> bool:
    return asset_key(op.send_asset) == asset_key(op.dest_asset) and not op.path


def _record(kind: str, type_i: int, src: AccountState, dest: AccountState, op: Any, amount: int) -> dict[str, Any]:
    rec = {"type": kind, "type_i": type_i, "source_account": src.id, "from": src.id, "to": dest.id,
           "amount": amount_str(amount), "source_amount": amount_str(amount)}
    rec.update(_asset_json(op.dest_asset))
    return rec


def _strict_receive(self: _Overlay, op: ops.PathPaymentStrictReceive, src: AccountState, seq: int) -> list[Any]:
    amount, send_max = to_stroops(op.dest_amount), to_stroops(op.send_max)
    if amount <= 0 or send_max <= 0:
        raise OpFailed("op_malformed")
    if not _same_asset(op):
        raise OpFailed("op_too_few_offers")
    if amount > send_max:
        raise OpFailed("op_over_source_max")
    dest = _move(self, src, op.destination.account_id, op.dest_asset, amount)
    return [_record("path_payment_strict_receive", 2, src, dest, op, amount)]


def _strict_send(self: _Overlay, op: ops.PathPaymentStrictSend, src: AccountState, seq: int) -> list[Any]:
    amount, dest_min = to_stroops(op.send_amount), to_stroops(op.dest_min)
    if amount <= 0 or dest_min <= 0:
        raise OpFailed("op_malformed")
    if not _same_asset(op):
        raise OpFailed("op_too_few_offers")
    if amount < dest_min:
        raise OpFailed("op_under_destmin")
    dest = _move(self, src, op.destination.account_id, op.dest_asset, amount)
    return [_record("path_payment_strict_send", 13, src, dest, op, amount)]


def enable(monkeypatch: Any) -> None:
    """Teach the ledger double path payments for the duration of one test."""
    monkeypatch.setattr(_Overlay, "_PathPaymentStrictReceive", _strict_receive, raising=False)
    monkeypatch.setattr(_Overlay, "_PathPaymentStrictSend", _strict_send, raising=False)
