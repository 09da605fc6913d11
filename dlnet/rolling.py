"""The gate of a rolling restart: may this validator go down now, and is it back?

deploy/rolling-upgrade.yml restarts validators one at a time and asks this module around each:
- before (`check_before`): the quorum sets the kit writes (dlnet.preflight.qsets_for) still give every
  other validator a quorum without this one (dlnet.quorum.max_quorum), every two quorums intersect, and the
  others answer live: `Synced!`, a fresh ledger (a stalled node keeps saying `Synced!` for ~30 s:
  shared/reference README 7) and the same ledger within one close;
- after (`wait_back`): this validator is `Synced!` on the very ledger (number and hash) the others report.
Either refuses with one line naming what is wrong; nothing here changes the network.

A key rotation through a successor (deploy/rotate-key.yml) adds nodes the inventory does not describe
(`extra`: name -> admin URL; the successor's own restarts are proven by dlnet.rotation, not here) and
leaves the old key's validator stopped at the end (`without`): the gate checks the nodes that run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dlnet import preflight, quorum
from dlnet.config import Network, Validator
from dlnet.core_admin import CoreAdmin, CoreAdminError, Info
from dlnet.day2 import admin_url
from dlnet.errors import DlnetError


class GateRefused(DlnetError):
    """The gate says no: the validator must not be restarted (or is not back) — the reason is the message."""


@dataclass(frozen=True)
class Verdict:
    host: str
    ledger: int
    others: list[str]
    message: str


def validator(net: Network, name: str) -> Validator:
    for v in net.validators:
        if v.name == name:
            return v
    raise DlnetError(
        f"rolling-gate: --host {name!r} — expected one of the validators {', '.join(v.name for v in net.validators)}"
        " — pass an inventory host of group 'stellar_core'"
    )


def max_ledger_age(net: Network) -> int:
    """Seconds since the last close beyond which a `Synced!` validator is in fact stalled: three target
    closes (1 s accelerated, 5 s normally) plus slack for a slow machine."""
    return 3 * (1 if net.accelerate_time else 5) + 5


def quorum_without(net: Network, name: str) -> str | None:
    """Why the quorum would not survive `name` going down (None when it does)."""
    qsets = preflight.qsets_for(net)
    others = set(qsets) - {name}
    analysis = quorum.analyse(qsets)
    if not analysis.intersection:
        a, b = analysis.disjoint  # type: ignore[misc]
        return f"quorums {{{', '.join(a)}}} and {{{', '.join(b)}}} do not intersect"
    live = quorum.max_quorum(others, qsets)
    if live != others:
        stalled = ", ".join(sorted(others - live))
        return f"without {name}, {stalled} would have no quorum (its quorum set needs {name})"
    return None


def _admins(net: Network, names: list[str], extra: dict[str, str] | None = None) -> list[CoreAdmin]:
    timeout = net.day2.admin_timeout_seconds
    urls = {v.name: admin_url(v.address, v.http_port) for v in net.validators} | (extra or {})
    return [CoreAdmin(n, urls[n], timeout=timeout) for n in names]


def _infos(admins: list[CoreAdmin]) -> dict[str, Info | str]:
    out: dict[str, Info | str] = {}
    for a in admins:
        try:
            out[a.name] = a.info()
        except CoreAdminError as exc:
            out[a.name] = str(exc).split(" — ", 1)[0]
    return out


def check_before(
    net: Network, name: str, extra: dict[str, str] | None = None, without: frozenset[str] = frozenset()
) -> Verdict:
    """Refuse (GateRefused) unless `name` may go down now; the verdict says why it may."""
    extra = extra or {}
    if name not in extra:
        validator(net, name)
        why = None if extra else quorum_without(net, name)  # mid-rotation: dlnet.rotation proved the step
        if why:
            raise GateRefused(f"rolling-gate {name}: refused — {why} — fix the quorum (dlnet quorum) first")
    others = [n for n in [*(v.name for v in net.validators), *extra] if n != name and n not in without]
    admins = _admins(net, others, extra)
    try:
        infos = _infos(admins)
    finally:
        for a in admins:
            a.close()
    limit = max_ledger_age(net)
    for n, info in infos.items():
        if isinstance(info, str):
            raise GateRefused(
                f"rolling-gate {name}: refused — {n} is down ({info}) and {name} must not go down with it —"
                f" bring {n} back (make up) first"
            )
        if not info.synced:
            raise GateRefused(
                f"rolling-gate {name}: refused — {n} is {info.state!r}, expected 'Synced!' — wait for it"
                " (make status) and run again"
            )
        if info.ledger.age > limit:
            raise GateRefused(
                f"rolling-gate {name}: refused — {n}'s last ledger closed {info.ledger.age} s ago (over {limit} s):"
                " the network is not closing ledgers — find out why (make status) before restarting anything"
            )
    nums = {n: i.ledger.num for n, i in infos.items() if not isinstance(i, str)}
    if max(nums.values()) - min(nums.values()) > 1:
        raise GateRefused(
            f"rolling-gate {name}: refused — the others are on different ledgers ({_ledgers(nums)}), expected the"
            " same ledger — wait for them to catch up and run again"
        )
    ledger = max(nums.values())
    return Verdict(
        name,
        ledger,
        others,
        f"rolling-gate {name}: may restart — {', '.join(others)} Synced! at ledger {ledger} and keep a quorum"
        f" without {name}",
    )


def wait_back(
    net: Network,
    name: str,
    timeout: float,
    *,
    every: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    extra: dict[str, str] | None = None,
    without: frozenset[str] = frozenset(),
) -> Verdict:
    """Wait until `name` is `Synced!` on the same ledger (number and hash) as every other validator."""
    extra = extra or {}
    if name not in extra:
        validator(net, name)
    names = [n for n in [*(v.name for v in net.validators), *extra] if n not in without or n == name]
    admins = _admins(net, names, extra)
    deadline = clock() + timeout
    last = "no answer yet"
    try:
        while True:
            infos = _infos(admins)
            last = _why_not_back(name, infos)
            if last is None:
                mine = infos[name]
                assert not isinstance(mine, str)
                return Verdict(
                    name,
                    mine.ledger.num,
                    [n for n in names if n != name],
                    f"rolling-gate {name}: back — Synced! on ledger {mine.ledger.num} like every other validator",
                )
            if clock() >= deadline:
                raise GateRefused(
                    f"rolling-gate {name}: not back after {timeout:g} s — {last} — see its log"
                    f" (docker logs dlnet-{net.env}-core-{name}); the remaining validators were not touched"
                )
            time.sleep(every)
    finally:
        for a in admins:
            a.close()


def _why_not_back(name: str, infos: dict[str, Info | str]) -> str | None:
    for n, info in infos.items():
        if isinstance(info, str):
            return f"{n} does not answer ({info})"
        if not info.synced:
            return f"{n} is {info.state!r}"
    ledgers = {n: (i.ledger.num, i.ledger.hash) for n, i in infos.items() if not isinstance(i, str)}
    if len(set(ledgers.values())) > 1:
        return f"ledgers differ ({_ledgers({n: num for n, (num, _) in ledgers.items()})})"
    return None


def _ledgers(nums: dict[str, int]) -> str:
    return ", ".join(f"{n} {num}" for n, num in sorted(nums.items()))
