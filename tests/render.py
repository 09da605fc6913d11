"""Render the kit's stellar-core and captive-core configurations with the roles' own templates, for the
network recorded in shared/reference (same passphrase, domain, ports, keys), without running anything."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from stellar_sdk import Keypair

from tests.conftest import REFERENCE, ROOT


def _reference_network(run: str) -> tuple[dict, dict[str, str]]:
    cfgs = {f"v{i}": tomllib.loads((REFERENCE / run / "config" / f"v{i}.cfg").read_text()) for i in (1, 2, 3)}
    keys = {v["NAME"]: v["PUBLIC_KEY"] for c in cfgs.values() for v in c["VALIDATORS"]}
    return cfgs, keys


def _render(
    tmp: Path,
    run: str,
    version: str,
    extra: dict | None = None,
    *,
    addresses: dict[str, str] | None = None,
    horizon: dict[str, dict] | None = None,
    extra_peers: list[str] | None = None,
    playbook: str = "render-stellar-core.yml",
) -> subprocess.CompletedProcess[str]:
    cfgs, keys = _reference_network(run)
    first = cfgs["v1"]
    hosts = {}
    for name, cfg in cfgs.items():
        others = {v["NAME"]: v for c in cfgs.values() for v in c["VALIDATORS"]}
        me = others[name]
        peer_port = int(me["ADDRESS"].rsplit(":", 1)[1])
        history_port = int(me["HISTORY"].split(":")[2].split("/")[0])
        hosts[name] = {
            "stellar_core_organisation": "org1",
            "stellar_core_peer_port": peer_port,
            "stellar_core_http_port": cfg["HTTP_PORT"],
            "stellar_core_history_port": history_port,
            "stellar_core_extra_config": extra or {},
        }
        if addresses:
            hosts[name]["dlnet_address"] = addresses[name]
        if extra_peers is not None:
            hosts[name]["stellar_core_preferred_peers_extra"] = extra_peers
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "dlnet_address": "127.0.0.1",
                "dlnet_env": "render",
                "dlnet_network_passphrase": first["NETWORK_PASSPHRASE"],
                "dlnet_organisations": [{"name": "org1", "home_domain": first["NODE_HOME_DOMAIN"], "quality": "HIGH"}],
                "dlnet_quorum": {"tolerated_failures": 1, "unsafe": False},
                "dlnet_testing_accelerate_time": bool(first.get("ARTIFICIALLY_ACCELERATE_TIME_FOR_TESTING")),
                "stellar_core_version": version,
                "dlnet_secrets_dir": str(tmp / "secrets"),
                "dlnet_data_root": str(tmp / "data"),
                "dlnet_reset": False,
            },
            "children": {"stellar_core": {"hosts": hosts}, "horizon": {"hosts": horizon or {}}},
        }
    }
    (tmp / "secrets").mkdir(exist_ok=True)
    for name, key in keys.items():
        (tmp / "secrets" / f"{name}.pub").write_text(key + "\n")
        # A throwaway seed: the reference redacted the real ones.
        (tmp / "secrets" / f"{name}.seed").write_text(Keypair.random().secret + "\n")
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(tmp / "hosts.yml"),
            str(ROOT / "tests" / "playbooks" / playbook),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"},
    )
