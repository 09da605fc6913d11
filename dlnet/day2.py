"""Day-2 settings (asset, upgrade, exporter knobs) read from the same inventory as the roles.

Inventory variables (group_vars/all/day2.yml; every knob documented in inventories/sample/):
`dlnet_dlc` (the Deep Learning Coin), `dlnet_upgrade` (target values, lead and deadline),
`dlnet_exporter_port` / `dlnet_exporter_listen`, `dlnet_admin_timeout_seconds`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dlnet.config import Network, ansible_inventory_json
from dlnet.errors import DlnetError, InventoryError

MAX_AMOUNT = Decimal("922337203685.4775807")  # int64 stroops
_AMOUNT = re.compile(r"^\d{1,12}(\.\d{1,7})?$")
_ASSET_CODE = re.compile(r"^[A-Za-z0-9]{1,12}$")

Flag = Literal["auth_required", "auth_revocable", "auth_clawback_enabled"]


def parse_amount(value: object, what: str) -> Decimal:
    """A positive Stellar amount (at most 7 decimals, at most int64 stroops); DlnetError otherwise."""
    text = str(value).strip()
    try:
        amount = Decimal(text) if _AMOUNT.match(text) else None
    except InvalidOperation:
        amount = None
    if amount is None or amount <= 0 or amount > MAX_AMOUNT:
        raise DlnetError(
            f"{what}: expected a positive amount with at most 7 decimals, at most {MAX_AMOUNT}, got {text!r}"
            " — write it like 1000000 or 12.5"
        )
    return amount


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DlcSettings(_Strict):
    code: str = "DLC"
    supply: str = "1000000000"
    # Unset: the first organisation's home domain (its stellar.toml describes the asset).
    home_domain: str | None = None
    flags: list[Flag] = ["auth_required", "auth_revocable", "auth_clawback_enabled"]
    issuer_starting_balance: str = "100"
    distributor_starting_balance: str = "100"
    # Computing partners that get a funded account with an authorized DLC trustline (keys kept 0600).
    holders: int = Field(default=0, ge=0, le=100_000)
    holder_starting_balance: str = "50"
    # Holder accounts are created through this many channel accounts in parallel (one transaction per channel
    # in flight, so no sequence number is shared): up to N transactions per ledger. 0 or 1: one at a time.
    channels: int = Field(default=8, ge=0, le=19)
    channel_starting_balance: str = "30"

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not _ASSET_CODE.match(v):
            raise ValueError(f"expected 1 to 12 letters or digits such as DLC, got {v!r}")
        return v

    @field_validator(
        "supply",
        "issuer_starting_balance",
        "distributor_starting_balance",
        "holder_starting_balance",
        "channel_starting_balance",
        mode="before",
    )
    @classmethod
    def _amount(cls, v: object) -> str:
        text = str(v).strip()
        if not _AMOUNT.match(text) or Decimal(text) <= 0 or Decimal(text) > MAX_AMOUNT:
            raise ValueError(f"expected a positive amount with at most 7 decimals, such as 1000.5, got {v!r}")
        return text

    @field_validator("home_domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None and not (0 < len(v) <= 32):
            raise ValueError(f"expected a home domain of 1 to 32 characters (Stellar's limit), got {v!r}")
        return v


class UpgradeSettings(_Strict):
    # What `dlnet upgrade` with no value flags applies (unset: leave as is).
    protocol: int | None = Field(default=None, ge=1)
    base_fee: int | None = Field(default=None, ge=1)
    base_reserve: int | None = Field(default=None, ge=1)
    max_tx_set_size: int | None = Field(default=None, ge=1)
    lead_seconds: int = Field(default=10, ge=0, le=3600)
    deadline_seconds: int = Field(default=120, ge=1, le=86400)


class Day2(_Strict):
    dlc: DlcSettings = DlcSettings()
    upgrade: UpgradeSettings = UpgradeSettings()
    exporter_port: int = Field(default=9470, ge=1, le=65535)
    exporter_listen: str = "127.0.0.1"
    admin_timeout_seconds: float = Field(default=2.0, gt=0, le=60)


_VARS = {
    "dlc": "dlnet_dlc",
    "upgrade": "dlnet_upgrade",
    "exporter_port": "dlnet_exporter_port",
    "exporter_listen": "dlnet_exporter_listen",
    "admin_timeout_seconds": "dlnet_admin_timeout_seconds",
}


def day2_from_inventory_json(data: dict[str, Any], inventory: str = "") -> Day2:
    hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    common = next(iter(hostvars.values()), {})
    raw = {field: common[var] for field, var in _VARS.items() if var in common}
    try:
        return Day2.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = list(e["loc"])
            where = ".".join([_VARS.get(str(loc[0]), str(loc[0])), *[str(p) for p in loc[1:]]])
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = f"unknown key (got {e.get('input')!r}) — check its spelling against inventories/sample/"
            elif "got" not in msg:
                msg = f"{msg}, got {e.get('input')!r}"
            problems.append(f"{inventory or 'inventory'}: {where}: {msg}")
        raise InventoryError(problems) from None


def load(inventory: str | Path, extra_vars: list[str] | None = None) -> tuple[Network, Day2]:
    """The network and the day-2 settings, from one `ansible-inventory --list`."""
    from dlnet.contract import scan

    problems = scan(inventory)
    if problems:
        raise InventoryError(problems)
    data = ansible_inventory_json(inventory, extra_vars)
    return Network.from_inventory_json(data, str(inventory)), day2_from_inventory_json(data, str(inventory))


def horizon_url(net: Network) -> str:
    if not net.horizon:
        raise DlnetError(
            f"{net.inventory or 'inventory'}: no host in group 'horizon'"
            " — expected one Horizon to read and submit through — add one (see inventories/sample/hosts.yml)"
        )
    h = net.horizon[0]
    return f"http://{h.address}:{h.port}"


def admin_url(address: str, port: int) -> str:
    return f"http://{address}:{port}"
