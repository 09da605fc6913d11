"""Write a throwaway inventory whose endpoints are the doubles' ephemeral ports (tests only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_inventory(
    root: Path,
    *,
    passphrase: str,
    validators: dict[str, int],
    horizon_port: int | None = None,
    postgres_port: int | None = None,
    ipfs_api_ports: dict[str, int] | None = None,
    prometheus_port: int | None = None,
    organisation: str = "org1",
    extra: dict[str, Any] | None = None,
    env: str = "test",
) -> str:
    """validators: name -> admin HTTP port of the double. Returns the inventory directory."""
    inv = root / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    free = iter(range(30000, 40000))
    children: dict[str, Any] = {
        "stellar_core": {
            "hosts": {
                name: {
                    "stellar_core_organisation": organisation,
                    "stellar_core_peer_port": next(free),
                    "stellar_core_http_port": port,
                    "stellar_core_history_port": next(free),
                }
                for name, port in validators.items()
            }
        },
    }
    components = {
        "stellar_core": True,
        "horizon": horizon_port is not None,
        "postgres": postgres_port is not None,
        "ipfs": bool(ipfs_api_ports),
        "prometheus": prometheus_port is not None,
        "grafana": False,
    }
    if horizon_port is not None:
        children["horizon"] = {"hosts": {"horizon1": {"horizon_port": horizon_port}}}
    if postgres_port is not None:
        children["postgres"] = {"hosts": {"pg1": {"postgres_port": postgres_port}}}
    if ipfs_api_ports:
        children["ipfs_bootstrap"] = {
            "hosts": {
                name: {
                    "ipfs_bootstrap_swarm_port": next(free),
                    "ipfs_bootstrap_api_port": port,
                    "ipfs_bootstrap_gateway_port": next(free),
                }
                for name, port in ipfs_api_ports.items()
            }
        }
    if prometheus_port is not None:
        children["prometheus"] = {"hosts": {"prom1": {"prometheus_port": prometheus_port}}}
    hosts = {
        "all": {"vars": {"ansible_connection": "local", "dlnet_address": "127.0.0.1"}, "children": children}
    }
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    network = {
        "dlnet_env": env,
        "dlnet_network_passphrase": passphrase,
        "dlnet_organisations": [
            {"name": organisation, "home_domain": f"{organisation}.dlnet.test", "quality": "HIGH"}
        ],
        "dlnet_components": components,
        "stellar_core_version": "19.14.0",
        "horizon_version": "2.27.0",
        "dlnet_testing_accelerate_time": True,
        "dlnet_admin_timeout_seconds": 0.5,
    }
    network.update(extra or {})
    (inv / "group_vars" / "all" / "network.yml").write_text(yaml.safe_dump(network, sort_keys=False))
    return str(inv)
