"""Network upgrades (protocol, base fee, base reserve, max tx set size) armed on every validator.

A validator only votes for an upgrade it is armed with, so the same values and the same near-future
`upgradetime` go to every validator's admin endpoint; each is read back with `upgrades?mode=get`. If any
validator cannot be armed, the ones already armed are cleared: all or nothing. Then the ledger header of
every validator is watched until it shows every value, with a deadline; on timeout the upgrade is cleared
everywhere. Values already in the header are not armed again: re-running changes nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from dlnet import compat
from dlnet.config import Network
from dlnet.core_admin import CoreAdmin, CoreAdminError, Info, iso
from dlnet.errors import DlnetError
from dlnet.observe import parallel

NAMES = {
    "protocolversion": "protocol",
    "basefee": "base fee",
    "basereserve": "base reserve",
    "maxtxsetsize": "max tx set size",
}
POLL_SECONDS = 0.25


@dataclass
class Request:
    protocol: int | None = None
    base_fee: int | None = None
    base_reserve: int | None = None
    max_tx_set_size: int | None = None
    to_latest: bool = False

    def check(self) -> None:
        """Refuse nonsense before anything is touched."""
        for value, flag, what in (
            (self.protocol, "--protocol", "a protocol version of 1 or more"),
            (self.base_fee, "--base-fee", "a base fee of at least 1 stroop"),
            (self.base_reserve, "--base-reserve", "a base reserve of at least 1 stroop"),
            (self.max_tx_set_size, "--max-tx-set-size", "a max tx set size of at least 1 operation"),
        ):
            if value is not None and value < 1:
                raise DlnetError(f"upgrade: {flag} {value} — expected {what} — pass a positive number")
        if self.to_latest and self.protocol is not None:
            raise DlnetError("upgrade: --to-latest and --protocol both given — expected one — drop one of them")
        if not self.to_latest and all(
            v is None for v in (self.protocol, self.base_fee, self.base_reserve, self.max_tx_set_size)
        ):
            raise DlnetError(
                "upgrade: nothing requested — expected --protocol, --base-fee, --base-reserve, --max-tx-set-size,"
                " --to-latest or dlnet_upgrade values in the inventory — pass at least one"
            )


@dataclass
class Outcome:
    changed: bool
    values: dict[str, int]
    upgradetime: str | None = None
    ledger: int | None = None
    exact: bool = False
    validators: dict[str, dict[str, Any]] = field(default_factory=dict)
    # --to-latest: which component set the protocol it stopped at.
    limit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "changed": self.changed,
            "values": self.values,
            "upgradetime": self.upgradetime,
            "ledger": self.ledger,
            "ledger_exact": self.exact,
            "validators": self.validators,
        }


def _admins(net: Network, timeout: float) -> list[CoreAdmin]:
    if not net.validators:
        raise DlnetError(f"{net.inventory or 'inventory'}: no validator in group 'stellar_core' — nothing to upgrade")
    return [CoreAdmin(v.name, f"http://{v.address}:{v.http_port}", timeout=timeout) for v in net.validators]


def _infos(admins: list[CoreAdmin]) -> dict[str, Info | CoreAdminError]:
    def one(a: CoreAdmin) -> Info | CoreAdminError:
        try:
            return a.info()
        except CoreAdminError as exc:
            return exc

    return dict(zip([a.name for a in admins], parallel([lambda a=a: one(a) for a in admins]), strict=True))


def latest(net: Network, infos: dict[str, Info]) -> tuple[int, str]:
    """The highest protocol every component runs, and which one sets it: the validators' binaries,
    then every Horizon, which must still ingest it (compat.yml): past it, Horizon halts."""
    core_top = min(i.protocol_max for i in infos.values())
    horizons = [net.horizon_version] if net.components.horizon and net.horizon else []
    return compat.highest_protocol(core_top, horizons)


def plan(net: Network, infos: dict[str, Info], req: Request) -> dict[str, int]:
    """The parameters to arm (only those that differ from the ledger header); DlnetError on nonsense."""
    for name, info in infos.items():
        if info.network and info.network != net.passphrase:
            raise DlnetError(
                f"upgrade: {name} runs the network {info.network!r} but the inventory's passphrase is"
                f" {net.passphrase!r} — expected the same network — check -i/--inventory"
            )
    not_synced = [f"{n} ({i.state})" for n, i in infos.items() if not i.synced]
    if not_synced:
        raise DlnetError(
            f"upgrade: not every validator is Synced! — {', '.join(not_synced)} — wait until `dlnet status` shows"
            " all validators synced, then re-run; nothing was armed"
        )
    headers = {
        n: (i.ledger.version, i.ledger.base_fee, i.ledger.base_reserve, i.ledger.max_tx_set_size)
        for n, i in infos.items()
    }
    if len(set(headers.values())) > 1:
        shown = ", ".join(f"{n}: protocol {h[0]} fee {h[1]} reserve {h[2]} max tx {h[3]}" for n, h in headers.items())
        raise DlnetError(
            f"upgrade: validators disagree on the ledger header ({shown}) — expected one network state"
            " — wait for them to converge (dlnet status); nothing was armed"
        )
    current = next(iter(infos.values())).ledger
    supported = {n: i.protocol_max for n, i in infos.items()}
    core_top = min(supported.values())
    top, why = latest(net, infos)
    protocol = top if req.to_latest else req.protocol
    if protocol is not None:
        if protocol > core_top:
            shown = ", ".join(f"{n} supports up to {p}" for n, p in supported.items())
            raise DlnetError(
                f"upgrade: protocol {protocol} is above what the binaries support ({shown}) — expected"
                f" at most {core_top} — upgrade the stellar-core binaries first or pass --protocol {core_top}"
            )
        if protocol > top:
            raise DlnetError(
                f"upgrade: protocol {protocol} is above what the network can run: {why} — expected at most"
                f" {top} — upgrade Horizon first (horizon_version, dlnet/compat.yml) or pass --protocol {top}"
            )
        if protocol < current.version:
            raise DlnetError(
                f"upgrade: protocol {protocol} is below the network's protocol {current.version} —"
                f" expected {current.version + 1} to {top} — protocol upgrades only go up"
            )
    wanted = {
        "protocolversion": protocol,
        "basefee": req.base_fee,
        "basereserve": req.base_reserve,
        "maxtxsetsize": req.max_tx_set_size,
    }
    return {k: v for k, v in wanted.items() if v is not None and current.value(k) != v}


def _clear(admins: list[CoreAdmin]) -> tuple[list[str], list[str]]:
    def one(a: CoreAdmin) -> str | None:
        try:
            a.upgrades_clear()
            return None
        except CoreAdminError as exc:
            return str(exc)

    results = parallel([lambda a=a: one(a) for a in admins])
    cleared = [a.name for a, r in zip(admins, results, strict=True) if r is None]
    failed = [r for r in results if r is not None]
    return cleared, failed


def _state_line(name: str, got: Info | CoreAdminError, values: dict[str, int]) -> str:
    if isinstance(got, CoreAdminError):
        return f"{name}: unreachable"
    lg = got.ledger
    shown = " ".join(f"{NAMES[k].replace(' ', '_')}={lg.value(k)}" for k in values)
    return f"{name}: ledger {lg.num} {got.state} {shown}"


HORIZON_FIELDS = {
    "protocolversion": "protocol_version",
    "basefee": "base_fee_in_stroops",
    "basereserve": "base_reserve_in_stroops",
    "maxtxsetsize": "max_tx_set_size",
}


def first_ledger_with(
    url: str,
    after: int,
    upto: int,
    changes: dict[str, int],
    timeout: float,
    wait_seconds: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int | None:
    """The first ledger in (after, upto] whose header shows every value, from Horizon's /ledgers.

    None when Horizon cannot tell (unreachable, or not ingested that far within `wait_seconds`)."""
    deadline = time.monotonic() + wait_seconds
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        while True:
            try:
                resp = client.get(
                    f"{url}/ledgers",
                    params={"cursor": str(after << 32), "order": "asc", "limit": str(min(200, max(1, upto - after)))},
                )
                resp.raise_for_status()
                records = resp.json()["_embedded"]["records"]
            except (httpx.HTTPError, ValueError, KeyError):
                return None
            for r in records:
                if int(r["sequence"]) > upto:
                    return None
                if all(int(r.get(HORIZON_FIELDS[k], -1)) == v for k, v in changes.items()):
                    return int(r["sequence"])
            if (records and int(records[-1]["sequence"]) >= upto) or time.monotonic() > deadline:
                return None
            sleep(0.5)  # Horizon has not ingested that far yet


def run(
    net: Network,
    req: Request,
    *,
    timeout: float,
    lead_seconds: int,
    deadline_seconds: int,
    at: datetime | None = None,
    horizon_url: str | None = None,
    progress: Callable[[str], None] = lambda _m: None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    req.check()
    admins = _admins(net, timeout)
    try:
        infos = _infos(admins)
        errors = [str(e) for e in infos.values() if isinstance(e, CoreAdminError)]
        if errors:
            raise DlnetError("upgrade: " + "; ".join(errors) + " — nothing was armed; fix those validators and re-run")
        good = {n: i for n, i in infos.items() if isinstance(i, Info)}
        changes = plan(net, good, req)
        limit = None
        if req.to_latest:
            top, why = latest(net, good)
            limit = f"protocol {top}: {why}"
            progress(f"--to-latest stops at {limit}")
        if not changes:
            return Outcome(False, {}, validators={n: {"ledger": i.ledger.num} for n, i in good.items()}, limit=limit)
        now = clock()
        if at is not None:
            if at.timestamp() < now - 1:
                raise DlnetError(
                    f"upgrade: --at {iso(at)} is in the past (now {iso(datetime.fromtimestamp(now, UTC))})"
                    " — expected a near-future UTC time — omit --at to use now + lead_seconds"
                )
            when = at
        else:
            when = datetime.fromtimestamp(math.ceil(now + lead_seconds), UTC)
        _arm(admins, when, changes, progress)
        outcome = _wait(admins, when, changes, deadline_seconds, progress, clock, sleep, good)
        if not outcome.exact and horizon_url and outcome.ledger is not None:
            low = min(i.ledger.num for i in good.values())
            found = first_ledger_with(horizon_url, low, outcome.ledger, changes, timeout)
            if found is not None:
                outcome.ledger, outcome.exact = found, True
        outcome.limit = limit
        return outcome
    finally:
        for a in admins:
            a.close()


def _arm(admins: list[CoreAdmin], when: datetime, changes: dict[str, int], progress: Callable[[str], None]) -> None:
    shown = " ".join(f"{k}={v}" for k, v in changes.items())
    progress(f"upgrade: arming {shown} for {iso(when)} on {', '.join(a.name for a in admins)}")
    try:
        for a in admins:
            a.upgrades_set(when, changes)
        for a in admins:
            got = a.upgrades_get()
            pending = {k: v for k, v in changes.items() if got.values.get(k) != v}
            if pending and got.time == int(when.timestamp()):
                # stellar-core drops an armed value once applied (keeping `time`): a short lead can see it applied
                lg = a.info().ledger
                pending = {k: v for k, v in pending.items() if lg.value(k) != v}
            if got.time != int(when.timestamp()) or pending:
                raise CoreAdminError(
                    f"{a.name}: reads back time {got.time} {got.values}, expected {int(when.timestamp())} {changes}"
                )
    except CoreAdminError as exc:
        cleared, failed = _clear(admins)
        note = f"cleared on {', '.join(cleared) or 'none'}" + (
            f"; could not clear: {'; '.join(failed)}" if failed else ""
        )
        raise DlnetError(f"upgrade: {exc} — {note}; nothing will change — fix it and re-run") from None
    progress(f"upgrade: armed and confirmed on all {len(admins)} validators")


def _wait(
    admins: list[CoreAdmin],
    when: datetime,
    changes: dict[str, int],
    deadline_seconds: int,
    progress: Callable[[str], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    before: dict[str, Info],
) -> Outcome:
    deadline = max(when.timestamp(), clock()) + deadline_seconds
    last_without = {n: i.ledger.num for n, i in before.items()}
    first_with: dict[str, int] = {}
    last_line = ""
    while True:
        infos = _infos(admins)
        for name, got in infos.items():
            if isinstance(got, CoreAdminError) or name in first_with:
                continue
            if all(got.ledger.value(k) == v for k, v in changes.items()):
                first_with[name] = got.ledger.num
            else:
                last_without[name] = got.ledger.num
        if len(first_with) == len(admins):
            break
        if clock() > deadline:
            cleared, failed = _clear(admins)
            states = "; ".join(_state_line(n, g, changes) for n, g in infos.items())
            raise DlnetError(
                f"upgrade: not applied within {deadline_seconds}s after {iso(when)} ({states}) — cleared on"
                f" {', '.join(cleared) or 'none'}{' (not on: ' + '; '.join(failed) + ')' if failed else ''} —"
                " check quorum and ledger closing with `dlnet status`, then re-run"
            )
        line = "upgrade: waiting — " + "; ".join(_state_line(n, g, changes) for n, g in infos.items())
        if line != last_line:
            progress(line)
            last_line = line
        sleep(POLL_SECONDS)
    ledger = min(first_with.values())
    exact = any(first_with[n] == last_without.get(n, -1) + 1 for n in first_with if first_with[n] == ledger)
    return Outcome(True, changes, iso(when), ledger, exact, {n: {"ledger": first_with[n]} for n in first_with})
