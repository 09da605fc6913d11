"""Throwaway networks for tests and benchmarks: the kit's own playbooks, run from Python.

`Deployment` runs deploy/*.yml against one inventory with its own state directory (secrets, records) and log
directory, exactly as `make up` / `make clean` do. `validators_inventory` writes a small inventory of real
validators only (no Horizon, PostgreSQL, IPFS, Prometheus or services) with its own environment name and
ports, so it can run beside the shared `test` network (inventories/local) without a clash. The deployment
tests (tests/deploy/) and the network benchmarks (scripts/bench_*.py) both use it; nothing here is a test
double.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlnet.preflight import Artifacts

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


@dataclass
class Deployment:
    """One environment: its inventory, extra vars, state and log directories; runs the kit's playbooks."""

    extra_vars: dict[str, object]
    inventory: Path
    state: Path
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.extra_vars.get("dlnet_env", self.inventory.name))

    @property
    def stellar(self) -> bool:
        return bool(self.extra_vars.get("dlnet_components", {}).get("stellar_core", True))  # type: ignore[union-attr]

    @property
    def double(self) -> bool:
        """stellar-core and Horizon are the test double, not the real binaries."""
        return "STELLAR_CORE_BIN" in self.env

    @property
    def extra_args(self) -> list[str]:
        """The extra vars as `-e key=value` strings for the dlnet CLI (scalars only)."""
        return [f"{k}={v}" for k, v in self.extra_vars.items() if isinstance(v, str | int | float)]

    def playbook(self, name: str, *args: str, log: str | None = None) -> subprocess.CompletedProcess[str]:
        self.logs.mkdir(parents=True, exist_ok=True)
        extra = self.logs / "extra-vars.json"
        extra.write_text(json.dumps(self.extra_vars))
        env = {
            **os.environ,
            **self.env,
            "DLNET_STATE_DIR": str(self.state),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
        start = time.monotonic()
        proc = subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", str(self.inventory), str(ROOT / "deploy" / name), "-e", f"@{extra}", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=False,
        )
        took = time.monotonic() - start
        (self.logs / (log or name.replace(".yml", ".log"))).write_text(proc.stdout + proc.stderr)
        if name == "site.yml" and "--check" not in args:
            self.runs.append(proc)
            self.seconds.append(took)
        return proc


def build_images(logs: Path, names: list[str] | None = None, env: dict[str, str] | None = None) -> None:
    """scripts/build_images.py (cached images are reused); AssertionError with the log's tail on failure."""
    logs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_images.py"), *(names or [])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, **(env or {})},
    )
    (logs / "images.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise AssertionError(f"image build failed ({logs / 'images.log'}):\n{proc.stderr[-2000:]}")


def real_stellar_core() -> Path | None:
    """The supplied stellar-core artifact (artifacts/ or STELLAR_CORE_BIN), or None."""
    art = Artifacts.resolve(ROOT / "artifacts")
    return art.stellar_core if art.stellar_core.is_file() and os.access(art.stellar_core, os.X_OK) else None


@dataclass(frozen=True)
class Ports:
    """Where a validators-only environment listens: validator i uses peer + 10 i, peer + 10 i + 1 (admin),
    history + i. The defaults stay clear of inventories/local (11625-11646, 11570-11572, 11725, 8000...)."""

    peer: int = 11825
    history: int = 11580
    # With horizon=True (a PostgreSQL and a Horizon host as well):
    horizon: int = 8010
    horizon_admin: int = 6070
    captive_core_peer: int = 11735
    captive_core_http: int = 11736
    postgres: int = 15442


def validators_inventory(
    dest: Path,
    env: str,
    *,
    validators: int = 3,
    ports: Ports = Ports(),
    accelerate: bool = False,
    stellar_core_version: str | None = None,
    upgrade_lead_seconds: int = 10,
    horizon: bool = False,
) -> Deployment:
    """Write an inventory of `validators` real validators in one organisation (HIGH quality) under `dest`
    and return its Deployment (state and logs beside it). Normal 5 s ledgers unless `accelerate`; with
    `horizon`, a PostgreSQL and a Horizon (own ports too) follow the validators.
    Versions are inventories/local's pins (the pair the test suite deploys) unless given."""
    stellar_core_version = stellar_core_version or _local_versions()["stellar_core_version"]
    inv = dest / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    hosts = {
        f"v{i + 1}": {
            "stellar_core_organisation": "org1",
            "stellar_core_peer_port": ports.peer + 10 * i,
            "stellar_core_http_port": ports.peer + 10 * i + 1,
            "stellar_core_history_port": ports.history + i,
        }
        for i in range(validators)
    }
    files: dict[str, dict[str, Any]] = {
        "hosts.yml": {
            "all": {
                "vars": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                    "dlnet_address": "127.0.0.1",
                },
                "children": {"stellar_core": {"hosts": hosts}, **_horizon_hosts(ports, horizon)},
            }
        },
        "group_vars/all/network.yml": {
            "dlnet_env": env,
            "dlnet_network_passphrase": f"dlnet {env} network ; generated",
            "dlnet_organisations": [{"name": "org1", "home_domain": "org1.dlnet.local", "quality": "HIGH"}],
            "dlnet_quorum": {"tolerated_failures": 1, "unsafe": False},
            "dlnet_testing_accelerate_time": accelerate,
        },
        "group_vars/all/components.yml": {
            "dlnet_components": {
                "stellar_core": True,
                "horizon": horizon,
                "postgres": horizon,
                "ipfs": False,
                "prometheus": False,
                "grafana": False,
                "services": False,
            }
        },
        "group_vars/all/versions.yml": {
            "stellar_core_version": stellar_core_version,
            "horizon_version": _local_versions()["horizon_version"],
        },
        "group_vars/all/day2.yml": {
            # No Prometheus here: no exporters either (their ports belong to the shared test network).
            "dlnet_exporter_enabled": False,
            "dlnet_admin_timeout_seconds": 5,
            "dlnet_upgrade": {"lead_seconds": upgrade_lead_seconds, "deadline_seconds": 120},
        },
    }
    head = "---\n# Generated by dlnet/testnet.py; do not edit.\n"
    for rel, body in files.items():
        (inv / rel).write_text(head + yaml.safe_dump(body, sort_keys=False))
    return Deployment({"dlnet_env": env}, inv, dest / "state", dest / "logs")


def _horizon_hosts(ports: Ports, on: bool) -> dict[str, Any]:
    if not on:
        return {}
    return {
        "horizon": {
            "hosts": {
                "horizon1": {
                    "horizon_port": ports.horizon,
                    "horizon_admin_port": ports.horizon_admin,
                    "horizon_captive_core_peer_port": ports.captive_core_peer,
                    "horizon_captive_core_http_port": ports.captive_core_http,
                }
            }
        },
        "postgres": {"hosts": {"pg1": {"postgres_port": ports.postgres}}},
    }


def _local_versions() -> dict[str, str]:
    data = yaml.safe_load((ROOT / "inventories" / "local" / "group_vars" / "all" / "versions.yml").read_text())
    return {k: str(v) for k, v in data.items()}
