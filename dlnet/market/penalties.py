"""Penalties (paper Sec. 4.3): the DLC a partner must stake grows with its recorded strikes.

required stake = base x factor ** strikes (the compliance service's `dlc.stake_base` and
`dlc.penalty_factor`; it applies this same rule when it approves DLC transfers and offers). A strike is
recorded on chain by the validator that refused an update: data entry `strikes.<partner account id>` on
the validator's account (the name is exactly 64 bytes, Stellar's limit), value the count, in a
transaction whose MEMO_HASH names the refused update. A partner's strikes are the highest count any of
the model's validators recorded, so anyone can recompute the required stake from Horizon. Validators
pay only offers staking at least that much: a partner cannot skip it and still get paid.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from dlnet.chain import InputError, amount_text

STRIKE_PREFIX = "strikes."
DEFAULT_BASE = Decimal("10")
DEFAULT_FACTOR = Decimal("2")
MAX_STRIKES = 40


def required_stake(strikes: int, base: Decimal = DEFAULT_BASE, factor: Decimal = DEFAULT_FACTOR) -> Decimal:
    """base x factor ** strikes, in stroops precision."""
    if strikes < 0:
        raise InputError(f"strikes: expected 0 or more, got {strikes}")
    if factor < 1 or base <= 0:
        raise InputError(f"stake rule: expected base > 0 and factor >= 1, got base {base} factor {factor}")
    return Decimal(amount_text(base * factor ** min(strikes, MAX_STRIKES)))


def check_stake(amount: Decimal, strikes: int, base: Decimal = DEFAULT_BASE, factor: Decimal = DEFAULT_FACTOR,
                who: str = "partner") -> None:
    need = required_stake(strikes, base, factor)
    if amount < need:
        raise InputError(
            f"stake of {amount_text(amount)} DLC too small — {who} has {strikes} strike(s) for refused updates,"
            f" so must stake at least {amount_text(need)} DLC — stake more DLC"
        )


def strike_key(partner: str) -> str:
    return STRIKE_PREFIX + partner


def strikes_recorded(account: dict[str, Any] | None, partner: str) -> int:
    """The strike count a validator's Horizon account record holds for `partner`."""
    raw = ((account or {}).get("data") or {}).get(strike_key(partner))
    if raw is None:
        return 0
    try:
        return int(base64.b64decode(raw).decode())
    except ValueError:
        return 0


def strikes_of(validator_accounts: Iterable[dict[str, Any] | None], partner: str) -> int:
    """A partner's strikes: the highest count recorded by any of the model's validators."""
    return max((strikes_recorded(a, partner) for a in validator_accounts), default=0)
