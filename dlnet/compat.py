"""Which stellar-core and Horizon versions work together, from the one table in compat.yml.

The same file feeds the Ansible templates (deploy/group_vars/all/kit.yml loads it), so the keys a
template writes, what preflight accepts and where `dlnet upgrade --to-latest` stops cannot disagree.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TABLE = Path(__file__).with_name("compat.yml")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


@functools.cache
def table() -> dict[str, Any]:
    return yaml.safe_load(TABLE.read_text())


def parse(version: str) -> tuple[int, int, int] | None:
    """'2.26.1', 'v19.14.0', 'horizon-v2.26.1' or '19.14.0-rc1' -> (major, minor, patch); None if not one."""
    m = _VERSION.match(version.strip().removeprefix("horizon-"))
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def core_majors() -> list[int]:
    return list(table()["stellar_core"]["majors"])


def core_max_protocol(version: str) -> int | None:
    """The highest protocol a stellar-core version supports (its major, from v19 on)."""
    v = parse(version)
    return v[0] if v and v[0] in core_majors() else None


def core_has_command(version: str, command: str) -> bool:
    v = parse(version)
    since = table()["stellar_core"]["commands_since"].get(command)
    return bool(v) and (since is None or v[0] >= since)  # type: ignore[index]


@dataclass(frozen=True)
class HorizonRelease:
    since: str
    max_protocol: int
    min_core: int
    captive_core_keys: frozenset[str]


def horizon_release(version: str) -> HorizonRelease | None:
    """The table row a Horizon version falls in; None below the oldest supported or if unparsable."""
    v = parse(version)
    if v is None:
        return None
    found = None
    for row in table()["horizon"]["releases"]:
        if v >= parse(row["from"]):  # type: ignore[operator]
            found = row
    if found is None:
        return None
    return HorizonRelease(
        found["from"], int(found["max_protocol"]), int(found["min_core"]), frozenset(found["captive_core_keys"])
    )


def check_pair(core_version: str, horizon_version: str | None, upgrade_to: int | None = None) -> list[str]:
    """Problems of a stellar-core/Horizon pair (empty: the pair works), each one operator line.

    `upgrade_to` is the protocol the network would be upgraded to (the inventory's dlnet_upgrade.protocol);
    without it, the core's highest, as `dlnet upgrade --to-latest` would take without a Horizon.
    """
    out: list[str] = []
    core = parse(core_version)
    majors = core_majors()
    if core is None or core[0] not in majors:
        out.append(
            f"stellar_core_version: unsupported — expected {majors[0]}.x to {majors[-1]}.x, got {core_version}"
            f" — pick a supported release (dlnet/compat.yml lists what the templates know)"
        )
        return out
    if horizon_version is None:
        return out
    rel = horizon_release(horizon_version)
    if rel is None:
        out.append(
            f"horizon_version: unsupported — expected {table()['horizon']['oldest']} or later, got {horizon_version}"
            " — pick a Horizon release listed in dlnet/compat.yml"
        )
        return out
    if core[0] < rel.min_core:
        out.append(
            f"horizon_version {horizon_version} needs stellar-core {rel.min_core} or later for its captive core,"
            f" got stellar_core_version {core_version} — pin a Horizon for core {core[0]} or a newer core"
        )
    target = upgrade_to if upgrade_to is not None else core[0]
    if target > rel.max_protocol:
        why = f"dlnet_upgrade.protocol {upgrade_to}" if upgrade_to is not None else f"stellar-core {core_version}"
        out.append(
            f"horizon_version {horizon_version} ingests ledger protocols up to {rel.max_protocol}, but {why} would"
            f" take the network to protocol {target} and Horizon would stop ingesting — pin a Horizon that"
            f" ingests protocol {target} (dlnet/compat.yml) or set dlnet_upgrade.protocol: {rel.max_protocol}"
        )
    return out


def highest_protocol(core_max: int, horizon_versions: list[str]) -> tuple[int, str]:
    """Where an upgrade to the latest protocol stops, and why: the lowest of core's and every Horizon's."""
    top, why = core_max, f"stellar-core supports up to {core_max}"
    for hv in horizon_versions:
        rel = horizon_release(hv)
        if rel is not None and rel.max_protocol < top:
            top, why = rel.max_protocol, f"Horizon {hv} ingests up to protocol {rel.max_protocol}"
    return top, why
