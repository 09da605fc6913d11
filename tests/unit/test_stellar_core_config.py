"""The stellar_core role writes the configuration a real stellar-core 19.14 ran with.

The role renders configs for the reference network (same passphrase, domain, ports, keys) and
each must equal shared/reference/.../config/v<N>.cfg, except for secrets and file paths.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from dlnet import compat
from tests.render import _reference_network, _render

# Keys whose values are paths or secrets (the reference redacted its seeds, rewrote its paths).
PATHS_AND_SECRETS = {"NODE_SEED", "DATABASE", "BUCKET_DIR_PATH", "LOG_FILE_PATH", "HISTORY"}
# Keys the kit writes since the reference was recorded (checked on their own below, and on real 19.14 by
# the key-rotation tests).
KIT_ADDITIONS = {"PREFERRED_PEER_KEYS"}


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
            if key in PATHS_AND_SECRETS or key in KIT_ADDITIONS:
                continue
            assert got.get(key) == ref.get(key), f"{name}: {key}"
        # The validators it names are preferred by their keys too, the very keys [[VALIDATORS]] lists.
        assert got["PREFERRED_PEER_KEYS"] == [v["PUBLIC_KEY"] for v in got["VALIDATORS"]]
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


@pytest.mark.parametrize("horizon_version", ["2.26.1", "27.0.0"])
def test_captive_core_file_holds_only_keys_that_horizon_version_accepts(tmp_path: Path, horizon_version: str) -> None:
    # Horizon parses the file strictly ("these fields are not supported by captive core"): 2.26.1 refuses
    # ALLOW_LOCALHOST_FOR_TESTING and PREFERRED_PEERS_ONLY (shared/bin/README.md).
    proc = _render(tmp_path, "accelerated-1s", "19.14.0", playbook="render-captive-core.yml",
                   horizon={"horizon1": {"horizon_version": horizon_version}})
    assert proc.returncode == 0, proc.stdout[-3000:]
    got = tomllib.loads((tmp_path / "data" / "horizon1-captive-core.cfg").read_text())
    row = compat.horizon_release(horizon_version)
    assert row is not None
    extra = set(got) - set(row.captive_core_keys) - {"HOME_DOMAINS", "VALIDATORS"}
    assert not extra, extra
    assert got["PEER_PORT"] == 11725 and got["NETWORK_PASSPHRASE"]
    assert {v["NAME"] for v in got["VALIDATORS"]} == {"v1", "v2", "v3"}
    if horizon_version == "2.26.1":
        assert "ALLOW_LOCALHOST_FOR_TESTING" not in got and "PREFERRED_PEERS_ONLY" not in got


def test_quorum_blocks_are_written_by_one_partial_for_validators_and_captive_core() -> None:
    root = Path(__file__).resolve().parents[2] / "roles"
    partial = root / "stellar_core" / "templates" / "quorum.cfg.j2"
    link = root / "horizon" / "templates" / "quorum.cfg.j2"
    assert link.is_symlink() and link.resolve() == partial.resolve()
    for template in (root / "stellar_core" / "templates" / "stellar-core.cfg.j2",
                     root / "horizon" / "templates" / "captive-core.cfg.j2"):
        text = template.read_text()
        assert "{% include 'quorum.cfg.j2' %}" in text and "[[VALIDATORS]]" not in text, template
    assert "[[HOME_DOMAINS]]" in partial.read_text() and "[[VALIDATORS]]" in partial.read_text()
