"""Preflight refuses bad inventories with one clear line each, before anything is touched.

Every case copies inventories/local, breaks one thing, and runs `dlnet check` on it for real
(ansible-inventory resolves the variables, as for the playbooks).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from dlnet.cli import main
from dlnet.preflight import passphrase_digest
from tests.conftest import ROOT

Edit = Callable[[dict[str, Any], dict[str, Any], Path], None]


@pytest.fixture
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventories" / "local", inv)
    monkeypatch.setenv("DLNET_STATE_DIR", str(tmp_path / "state"))
    # Valid stand-in artifacts, so only what a case breaks is reported.
    art = tmp_path / "artifacts"
    art.mkdir()
    for name, out in (("stellar-core", "v27.1.0"), ("stellar-horizon", "stellar-horizon 25.1.0")):
        exe = art / name
        exe.write_text(f"#!/bin/sh\necho {out}\n")
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("DLNET_ARTIFACTS_DIR", str(art))
    monkeypatch.delenv("STELLAR_CORE_BIN", raising=False)
    monkeypatch.delenv("HORIZON_BIN", raising=False)
    return inv


def _edit(inv: Path, change: Edit) -> None:
    hosts_file = inv / "hosts.yml"
    hosts = yaml.safe_load(hosts_file.read_text())
    gv: dict[str, Any] = {}
    for f in sorted((inv / "group_vars" / "all").glob("*.yml")):
        gv.update(yaml.safe_load(f.read_text()) or {})
        f.unlink()
    change(hosts, gv, inv)
    hosts_file.write_text(yaml.safe_dump(hosts))
    (inv / "group_vars" / "all" / "all.yml").write_text(yaml.safe_dump(gv))


def _check(inv: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[str]]:
    code = main(["check", "-i", str(inv), *extra])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def _validators(h: dict[str, Any]) -> dict[str, Any]:
    return h["all"]["children"]["stellar_core"]["hosts"]


def _two_orgs(h: dict[str, Any], g: dict[str, Any], trusts_self_only: bool) -> None:
    g["dlnet_organisations"] = [
        {"name": "org1", "home_domain": "org1.example.com", **({"trusts": ["org1"]} if trusts_self_only else {})},
        {"name": "org2", "home_domain": "org2.example.com", **({"trusts": ["org2"]} if trusts_self_only else {})},
    ]
    for i in (4, 5, 6):
        _validators(h)[f"v{i}"] = {
            "stellar_core_organisation": "org2",
            "stellar_core_peer_port": 11625 + 10 * i,
            "stellar_core_http_port": 11626 + 10 * i,
            "stellar_core_history_port": 11570 + i,
        }


def _set_core_version(v: str) -> Edit:
    return lambda h, g, inv: g.update(stellar_core_version=v)


BAD: dict[str, tuple[Edit, str]] = {
    "quorums-can-be-disjoint": (
        lambda h, g, inv: _two_orgs(h, g, trusts_self_only=True),
        "no intersection",
    ),
    "two-organisations-failure-safety-0": (
        lambda h, g, inv: _two_orgs(h, g, trusts_self_only=False),
        "FAILURE_SAFETY 0",
    ),
    "tolerated-failures-above-bound": (
        lambda h, g, inv: g["dlnet_quorum"].update(tolerated_failures=2),
        "tolerated_failures is 2 but the network tolerates 1",
    ),
    "duplicate-ports": (
        lambda h, g, inv: _validators(h)["v2"].update(stellar_core_peer_port=11625),
        "port 11625 on 127.0.0.1 is used 2 times",
    ),
    "ports-across-components": (
        lambda h, g, inv: h["all"]["children"]["prometheus"]["hosts"]["prom1"].update(prometheus_port=5001),
        "port 5001 on 127.0.0.1 is used 2 times",
    ),
    "missing-passphrase": (lambda h, g, inv: g.pop("dlnet_network_passphrase"), "dlnet_network_passphrase"),
    "blank-passphrase": (lambda h, g, inv: g.update(dlnet_network_passphrase="   "), "non-empty network passphrase"),
    "unsupported-version": (_set_core_version("18.2.0"), "expected 19.x to 27.x, got 18.2.0"),
    "malformed-version": (_set_core_version("latest"), "expected a version MAJOR.MINOR.PATCH"),
    "artifact-version-mismatch": (
        _set_core_version("19.14.0"),
        "is stellar-core 27.1.0 but stellar_core_version is 19.14.0",
    ),
    "high-org-with-two-validators": (
        lambda h, g, inv: _validators(h).pop("v3"),
        "fewer than 3",
    ),
    "unknown-organisation": (
        lambda h, g, inv: _validators(h)["v3"].update(stellar_core_organisation="org9"),
        "'org9' is not in dlnet_organisations",
    ),
    "component-without-hosts": (
        lambda h, g, inv: h["all"]["children"].pop("horizon"),
        "dlnet_components.horizon is on but group 'horizon' has no host",
    ),
    "horizon-without-postgres": (
        lambda h, g, inv: g["dlnet_components"].update(postgres=False),
        "horizon needs postgres",
    ),
    "misspelt-component": (
        lambda h, g, inv: g["dlnet_components"].update(stelar_core=True),
        "unknown key",
    ),
    "port-out-of-range": (
        lambda h, g, inv: _validators(h)["v1"].update(stellar_core_http_port=70000),
        "host v1: stellar_core_http_port",
    ),
    "missing-port": (
        lambda h, g, inv: _validators(h)["v2"].pop("stellar_core_history_port"),
        "host v2: stellar_core_history_port: missing",
    ),
    "bad-home-domain": (
        lambda h, g, inv: g["dlnet_organisations"][0].update(home_domain="not a domain"),
        "expected a DNS name",
    ),
    "bad-quality": (
        lambda h, g, inv: g["dlnet_organisations"][0].update(quality="SUPREME"),
        "dlnet_organisations.0.quality",
    ),
    "service-port-taken": (
        lambda h, g, inv: g.update(dlnet_federation_port=8000),  # Horizon's
        "port 8000 on 127.0.0.1 is used 2 times (horizon1 horizon_port, svc1 dlnet_federation_port)",
    ),
    "service-port-out-of-range": (
        lambda h, g, inv: g.update(dlnet_federation_port=0),
        "host svc1: dlnet_federation_port: Input should be greater than or equal to 1",
    ),
    "exporter-port-taken": (
        lambda h, g, inv: g.update(dlnet_exporter_port=9090),  # Prometheus's
        "port 9090 on 127.0.0.1 is used 2 times (prom1 prometheus_port, prom1 dlnet_exporter_port)",
    ),
    "exporter-port-out-of-range": (
        lambda h, g, inv: g.update(dlnet_exporter_port=0),
        "dlnet_exporter_port: Input should be greater than or equal to 1",
    ),
    "core-exporters-overlap-a-validator-port": (
        lambda h, g, inv: g.update(dlnet_exporter_stellar_core_port_base=11644),  # v3 exporter on 11646
        "port 11646 on 127.0.0.1 is used 2 times (v3 stellar_core_http_port, v3 stellar-core exporter port)",
    ),
    "misspelt-service": (
        lambda h, g, inv: g["dlnet_services_enabled"].update(federaton=True),
        "dlnet_services_enabled.federaton: unknown key",
    ),
    "services-without-hosts": (
        lambda h, g, inv: h["all"]["children"].pop("dlnet_services"),
        "dlnet_components.services is on but group 'dlnet_services' has no host",
    ),
    "services-without-postgres": (
        lambda h, g, inv: g["dlnet_components"].update(postgres=False, horizon=False),
        "dlnet_components.services needs postgres",
    ),
    "duplicate-home-domain": (
        lambda h, g, inv: (
            _two_orgs(h, g, trusts_self_only=False),
            g["dlnet_organisations"][1].update(home_domain="org1.example.com"),
            g["dlnet_quorum"].update(unsafe=True),
        ),
        "home_domain org1.example.com is used by more than one organisation",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inventory_is_refused(case: str, inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    change, expected = BAD[case]
    _edit(inventory, change)
    code, lines = _check(inventory, capsys)
    assert code == 1, lines
    assert any(expected in line for line in lines), "\n".join(lines)
    assert all(line.startswith("error: ") for line in lines), lines


def test_missing_artifacts_name_what_to_supply(
    inventory: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLNET_ARTIFACTS_DIR", str(tmp_path / "nothing-here"))
    code, lines = _check(inventory, capsys)
    assert code == 1
    assert any("artifact stellar-core missing" in line and "STELLAR_CORE_BIN" in line for line in lines), lines
    assert any("artifact stellar-horizon missing" in line and "HORIZON_BIN" in line for line in lines), lines


def test_changed_passphrase_on_existing_network(
    inventory: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = tmp_path / "state" / "local" / "network.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"passphrase_sha256": passphrase_digest("the old network ; 2025")}))
    code, lines = _check(inventory, capsys)
    assert code == 1
    assert any("dlnet_network_passphrase changed" in line and "RESET=1" in line for line in lines), lines
    # The operator asked for a new network: accepted.
    assert _check(inventory, capsys, "--reset")[0] == 0


def test_valid_inventory_passes_and_touches_nothing(
    inventory: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["check", "-i", str(inventory), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"env": "local", "ok": True, "organisations": 1, "tolerated_failures": 1, "validators": 3}
    assert not (tmp_path / "state").exists()


def test_sample_inventory_passes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DLNET_STATE_DIR", str(tmp_path))
    assert main(["check", "-i", str(ROOT / "inventories" / "sample"), "--no-artifacts"]) == 0, capsys.readouterr().err


def test_every_problem_is_reported_at_once(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def two_problems(h: dict[str, Any], g: dict[str, Any], inv: Path) -> None:
        _validators(h)["v2"].update(stellar_core_peer_port=11625)
        g["dlnet_quorum"].update(tolerated_failures=2)

    _edit(inventory, two_problems)
    code, lines = _check(inventory, capsys)
    assert code == 1 and len(lines) == 2, lines


def test_inventory_json_on_stdin_is_what_the_playbook_sees(
    inventory: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import subprocess
    import sys

    raw = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    ).stdout
    data = json.loads(raw)
    for hv in data["_meta"]["hostvars"].values():
        hv["dlnet_network_passphrase"] = ""
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(data)))
    code, lines = _check(inventory, capsys, "--inventory-json", "-")
    assert code == 1 and any("dlnet_network_passphrase" in line for line in lines), lines
