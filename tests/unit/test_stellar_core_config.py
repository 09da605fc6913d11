"""The stellar_core role writes the configuration a real stellar-core 19.14 ran with.

The role renders configs for the reference network (same passphrase, domain, ports, keys) and
each must equal shared/reference/.../config/v<N>.cfg, except for secrets and file paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from stellar_sdk import Keypair

from tests.conftest import REFERENCE, ROOT

# Keys whose values are paths or secrets (the reference redacted its seeds, rewrote its paths).
PATHS_AND_SECRETS = {"NODE_SEED", "DATABASE", "BUCKET_DIR_PATH", "LOG_FILE_PATH", "HISTORY"}


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
            str(ROOT / "tests" / "playbooks" / "render-stellar-core.yml"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"},
    )


def _rendered(tmp: Path, name: str) -> str:
    return (tmp / "data" / "stellar-core" / name / "config" / "stellar-core.cfg").read_text()


@pytest.mark.parametrize("run", ["accelerated-1s", "normal-5s"])
def test_rendered_config_equals_the_working_reference(tmp_path: Path, run: str) -> None:
    proc = _render(tmp_path, run, "19.14.0")
    assert proc.returncode == 0, proc.stdout[-3000:]
    cfgs, _keys = _reference_network(run)
    for name, ref in cfgs.items():
        text = _rendered(tmp_path, name)
        got = tomllib.loads(text)
        assert got["NODE_SEED"] == (tmp_path / "secrets" / f"{name}.seed").read_text().strip()
        for key in set(ref) | set(got):
            if key in PATHS_AND_SECRETS:
                continue
            assert got.get(key) == ref.get(key), f"{name}: {key}"
        # Each validator lists the others, never itself (19.14: "Duplicate node").
        assert {v["NAME"] for v in got["VALIDATORS"]} == set(cfgs) - {name}
        assert got["HISTORY"]["local"]["get"].startswith("cp /var/lib/stellar/archive/")


def test_seed_never_in_the_playbook_output(tmp_path: Path) -> None:
    proc = _render(tmp_path, "accelerated-1s", "19.14.0")
    assert proc.returncode == 0
    for seed in (tmp_path / "secrets").glob("*.seed"):
        assert seed.read_text().strip() not in proc.stdout + proc.stderr
    for name in ("v1", "v2", "v3"):
        cfg = tmp_path / "data" / "stellar-core" / name / "config" / "stellar-core.cfg"
        assert cfg.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "version,key,refused",
    [
        ("27.1.0", "KNOWN_CURSORS", True),
        ("19.14.0", "KNOWN_CURSORS", False),
        ("19.14.0", "HTTP_QUERY_PORT", True),
        ("27.1.0", "HTTP_QUERY_PORT", False),
        ("22.0.0", "DEPRECATED_SQL_LEDGER_STATE", False),
        ("27.1.0", "DEPRECATED_SQL_LEDGER_STATE", True),
    ],
)
def test_config_keys_follow_the_version(tmp_path: Path, version: str, key: str, refused: bool) -> None:
    proc = _render(tmp_path, "accelerated-1s", version, {key: 1})
    if refused:
        assert proc.returncode != 0
        assert f"{key} unknown to" in proc.stdout and f"stellar-core {version}" in proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout[-2000:]
        assert tomllib.loads(_rendered(tmp_path, "v1"))[key] == 1


def test_validators_admit_the_networks_own_horizon_on_one_host(tmp_path: Path) -> None:
    # Real 19.14 with PREFERRED_PEERS_ONLY=true drops a captive core it does not prefer (ERR_LOAD),
    # so Horizon never ingests (shared/bin/README.md): each Horizon's captive core is preferred by address.
    proc = _render(tmp_path, "accelerated-1s", "19.14.0", horizon={"horizon1": {"horizon_port": 8000}})
    assert proc.returncode == 0, proc.stdout[-3000:]
    for name in ("v1", "v2", "v3"):
        got = tomllib.loads(_rendered(tmp_path, name))
        assert got["PREFERRED_PEERS_ONLY"] is True
        assert got["PREFERRED_PEERS"] == ["127.0.0.1:11725"]


def test_validators_admit_watchers_by_address_across_hosts(tmp_path: Path) -> None:
    addresses = {"v1": "10.0.0.1", "v2": "10.0.0.2", "v3": "10.0.0.3"}
    horizon = {
        "h1": {"dlnet_address": "10.0.0.9", "horizon_captive_core_peer_port": 11800},
        "h2": {"dlnet_address": "10.0.0.10"},
    }
    proc = _render(tmp_path, "normal-5s", "19.14.0", addresses=addresses, horizon=horizon,
                   extra_peers=["10.0.1.5:11725"])
    assert proc.returncode == 0, proc.stdout[-3000:]
    for name in addresses:
        got = tomllib.loads(_rendered(tmp_path, name))
        assert got["PREFERRED_PEERS_ONLY"] is True
        assert "ALLOW_LOCALHOST_FOR_TESTING" not in got
        assert got["PREFERRED_PEERS"] == ["10.0.0.9:11800", "10.0.0.10:11725", "10.0.1.5:11725"]
        assert {v["ADDRESS"].split(":")[0] for v in got["VALIDATORS"]} == {a for n, a in addresses.items() if n != name}
