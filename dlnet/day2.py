"""Day-2 settings (asset, upgrade, exporter knobs) read from the same inventory as the roles.

Inventory variables (group_vars/all/day2.yml; every knob documented in inventories/sample/):
`dlnet_dlc` (the Deep Learning Coin), `dlnet_upgrade` (target values, lead and deadline),
`dlnet_exporter_port` / `dlnet_exporter_listen`, `dlnet_admin_timeout_seconds`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The day-2 settings are part of the one inventory model (dlnet.config.Network.day2): one declaration,
# one parse. These names stay importable from here.
from dlnet.config import (  # noqa: F401 - re-exported
    MAX_AMOUNT,
    Day2,
    DlcSettings,
    Network,
    UpgradeSettings,
    ansible_inventory_json,
    parse_amount,
)
from dlnet.errors import DlnetError


def day2_from_inventory_json(data: dict[str, Any], inventory: str = "") -> Day2:
    """The day-2 settings of an `ansible-inventory --list` JSON (the same parse as the network's)."""
    return Network.from_inventory_json(data, inventory).day2


def load(inventory: str | Path, extra_vars: list[str] | None = None) -> tuple[Network, Day2]:
    """The network and its day-2 settings, from one scan and one `ansible-inventory --list`."""
    from dlnet.config import load_network

    net = load_network(inventory, extra_vars)
    return net, net.day2


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
