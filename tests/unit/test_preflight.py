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
    # What the real binaries print (shared/bin): "v19.14.0"; "horizon-v2.26.1" then the Go version.
    for name, out in (("stellar-core", "v19.14.0"), ("stellar-horizon", "horizon-v2.26.1")):
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
        _set_core_version("27.1.0"),
        "is stellar-core 19.14.0 but stellar_core_version is 27.1.0",
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


# --- Issue 9: every family of inventories that slipped through, each refused with one line. -----------------


def _org(g: dict[str, Any], **change: Any) -> None:
    g["dlnet_organisations"][0].update(change)


def _all_validators(h: dict[str, Any], **change: Any) -> None:
    for hv in _validators(h).values():
        hv.update(change)


def _set(**change: Any) -> Edit:
    return lambda h, g, inv: g.update(change)


def _host(group: str, name: str, **change: Any) -> Edit:
    return lambda h, g, inv: h["all"]["children"][group]["hosts"][name].update(change)


def _address_only_on(h: dict[str, Any], host: str, value: str) -> None:
    h["all"]["vars"].pop("dlnet_address")
    for group in h["all"]["children"].values():
        for name, hv in (group.get("hosts") or {}).items():
            if name == host:
                group["hosts"][name] = {**(hv or {}), "ansible_host": value}


ISSUE_9: dict[str, tuple[Edit, str]] = {
    # Misspelt keys at the top level of group_vars, in host variables and in group vars.
    "misspelt-top-level": (_set(dlnet_network_passphrse="x"), "did you mean dlnet_network_passphrase?"),
    "misspelt-host-var": (
        _host("stellar_core", "v1", stellar_core_peer_prot=1),
        "did you mean stellar_core_peer_port?",
    ),
    "misspelt-group-var": (
        lambda h, g, inv: h["all"]["vars"].update(dlnet_adress="127.0.0.1"),
        "did you mean dlnet_address?",
    ),
    "misspelt-role-knob": (
        _set(prometheus_alert_ledger_age_second=15),
        "did you mean prometheus_alert_ledger_age_seconds?",
    ),
    "misspelt-service-port": (_set(dlnet_federation_prot=8001), "did you mean dlnet_federation_port?"),
    "misspelt-hosts-key": (
        lambda h, g, inv: h["all"]["children"]["horizon"].update(host={"h2": None}),
        "unknown key 'host' — expected vars, hosts or children — did you mean hosts?",
    ),
    "unknown-key-without-neighbour": (_set(zzz_qqq=1), "unknown variable 'zzz_qqq'"),
    "misspelt-quorum-key": (lambda h, g, inv: g["dlnet_quorum"].update(tolerated_failure=1), "unknown key"),
    "misspelt-organisation-key": (lambda h, g, inv: _org(g, home_domian="x.example.com"), "unknown key"),
    "misspelt-dlc-key": (lambda h, g, inv: g["dlnet_dlc"].update(suply="5"), "dlnet_dlc.suply: unknown key"),
    # Names that end up in paths, container names or shell commands.
    "organisation-name-path": (
        lambda h, g, inv: (_org(g, name="../etc"), _all_validators(h, stellar_core_organisation="../etc")),
        "dlnet_organisations.0.name: expected a name of lowercase letters",
    ),
    "organisation-name-space": (
        lambda h, g, inv: (_org(g, name="org 1"), _all_validators(h, stellar_core_organisation="org 1")),
        "expected a name of lowercase letters",
    ),
    "organisation-name-shell": (
        lambda h, g, inv: (_org(g, name="o$(id)"), _all_validators(h, stellar_core_organisation="o$(id)")),
        "expected a name of lowercase letters",
    ),
    "organisation-name-empty": (
        lambda h, g, inv: (_org(g, name=""), _all_validators(h, stellar_core_organisation="")),
        "expected a name of lowercase letters",
    ),
    "validator-organisation-empty": (
        _host("stellar_core", "v1", stellar_core_organisation=""),
        "host v1: stellar_core_organisation: expected a name",
    ),
    "trusts-shell": (lambda h, g, inv: _org(g, trusts=["org1;rm -rf /"]), "expected a name of lowercase letters"),
    "env-path": (_set(dlnet_env="../../tmp"), "dlnet_env: expected a name"),
    "env-shell": (_set(dlnet_env="local;reboot"), "dlnet_env: expected a name"),
    "env-empty": (_set(dlnet_env=""), "dlnet_env: expected a name"),
    "env-upper-case": (_set(dlnet_env="Local"), "dlnet_env: expected a name"),
    "env-not-a-string": (_set(dlnet_env=12), "dlnet_env: expected a name"),
    "address-shell-in-group-vars": (
        lambda h, g, inv: h["all"]["vars"].update(dlnet_address="127.0.0.1;curl evil.example"),
        "expected an IPv4 address or a host name",
    ),
    "address-with-space": (_host("stellar_core", "v1", dlnet_address="10.0.0.1 x"), "host v1: dlnet_address: expected"),
    "address-empty": (_host("horizon", "horizon1", dlnet_address=""), "host horizon1: dlnet_address: expected"),
    "address-url": (_host("prometheus", "prom1", dlnet_address="http://x"), "host prom1: dlnet_address: expected"),
    "address-ipv6": (_host("postgres", "pg1", dlnet_address="::1"), "host pg1: dlnet_address: expected an IPv4"),
    "address-command-substitution": (
        _host("stellar_core", "v2", dlnet_address="$(touch /tmp/x)"),
        "host v2: dlnet_address: expected",
    ),
    "ansible-host-fallback-shell": (
        lambda h, g, inv: _address_only_on(h, "v3", "`id`"),
        "host v3: dlnet_address: expected",
    ),
    "home-domain-empty": (lambda h, g, inv: _org(g, home_domain=""), "expected a DNS name"),
    "home-domain-path": (lambda h, g, inv: _org(g, home_domain="org1.example.com/../x"), "expected a DNS name"),
    "home-domain-not-a-string": (lambda h, g, inv: _org(g, home_domain=7), "dlnet_organisations.0.home_domain"),
    "dlc-home-domain-shell": (
        lambda h, g, inv: g["dlnet_dlc"].update(home_domain="a;b"),
        "dlnet_dlc.home_domain: expected a DNS name",
    ),
    "exporter-listen-shell": (_set(dlnet_exporter_listen="0.0.0.0 && id"), "dlnet_exporter_listen: expected"),
    "host-name-path": (
        lambda h, g, inv: h["all"]["children"]["horizon"].update(hosts={"horizon/1": {"horizon_port": 8000}}),
        "host name 'horizon/1'",
    ),
    "organisations-empty": (_set(dlnet_organisations=[]), "dlnet_organisations: List should have at least 1 item"),
    "version-empty": (_set(stellar_core_version=""), "expected a version MAJOR.MINOR.PATCH"),
    "version-boolean": (_set(horizon_version=True), "horizon_version"),
    # Booleans as ports, and other wrong types.
    "boolean-peer-port": (_host("stellar_core", "v1", stellar_core_peer_port=True), "got the boolean True"),
    "boolean-horizon-port": (_host("horizon", "horizon1", horizon_port=False), "got the boolean False"),
    "boolean-ipfs-port": (_host("ipfs_bootstrap", "ipfs1", ipfs_bootstrap_api_port=True), "got the boolean"),
    "boolean-exporter-port": (_set(dlnet_exporter_port=True), "dlnet_exporter_port: expected a number"),
    "boolean-service-port": (_set(dlnet_federation_port=True), "host svc1: dlnet_federation_port: expected a number"),
    "boolean-tolerated-failures": (
        lambda h, g, inv: g["dlnet_quorum"].update(tolerated_failures=True),
        "dlnet_quorum.tolerated_failures: expected a number",
    ),
    "text-port": (_host("stellar_core", "v2", stellar_core_http_port="http"), "host v2: stellar_core_http_port"),
    "fractional-port": (_host("prometheus", "prom1", prometheus_port=9090.5), "host prom1: prometheus_port"),
    "negative-port": (_host("postgres", "pg1", postgres_port=-1), "host pg1: postgres_port"),
    "component-not-boolean": (lambda h, g, inv: g["dlnet_components"].update(horizon="maybe"), "horizon"),
    "lower-case-quality": (lambda h, g, inv: _org(g, quality="high"), "dlnet_organisations.0.quality"),
    "boolean-holders": (lambda h, g, inv: g["dlnet_dlc"].update(holders=True), "dlnet_dlc.holders"),
    "bad-asset-code": (lambda h, g, inv: g["dlnet_dlc"].update(code="DL C"), "dlnet_dlc.code"),
    # Control characters in the passphrase.
    "passphrase-newline": (_set(dlnet_network_passphrase="dlnet\nNODE_SEED=x"), "control characters U+000A"),
    "passphrase-escape": (_set(dlnet_network_passphrase="dlnet \x1b[2J"), "control characters U+001B"),
    "passphrase-tab": (_set(dlnet_network_passphrase="dlnet\tnet"), "control characters U+0009"),
    "passphrase-not-a-string": (_set(dlnet_network_passphrase=42), "dlnet_network_passphrase"),
    # A component off while the inventory references an unknown organisation (used to crash, exit 3).
    "core-off-unknown-organisation": (
        lambda h, g, inv: (
            g["dlnet_components"].update(stellar_core=False, horizon=False),
            _validators(h)["v3"].update(stellar_core_organisation="org9"),
        ),
        "'org9' is not in dlnet_organisations",
    ),
    "horizon-off-unknown-organisation": (
        lambda h, g, inv: (
            g["dlnet_components"].update(horizon=False),
            _validators(h)["v3"].update(stellar_core_organisation="org9"),
        ),
        "'org9' is not in dlnet_organisations",
    ),
}

# Cases written as raw text: what the YAML itself says (a key twice, a syntax error).
RAW: dict[str, tuple[Callable[[Path], None], str]] = {
    "validator-defined-twice": (
        lambda inv: _replace(inv / "hosts.yml", "        v3:\n", "        v2:\n"),
        "'v2' is defined twice (first on line",
    ),
    "group-var-defined-twice": (
        lambda inv: _append(inv / "group_vars/all/network.yml", "dlnet_env: other\n"),
        "network.yml:14:1: 'dlnet_env' is defined twice (first on line 3)",
    ),
    "service-port-defined-twice": (
        lambda inv: _append(inv / "group_vars/all/services.yml", "dlnet_federation_port: 8009\n"),
        "'dlnet_federation_port' is defined twice",
    ),
    "yaml-syntax-error": (
        lambda inv: _append(inv / "group_vars/all/network.yml", "dlnet_extra: [unclosed\n"),
        "network.yml:15:1: not valid YAML",
    ),
    "yaml-bad-indent": (
        lambda inv: _replace(
            inv / "hosts.yml",
            "          stellar_core_peer_port: 11625\n",
            "        stellar_core_peer_port: 11625\n   x: [\n",
        ),
        "hosts.yml:",
    ),
    "host-vars-misspelt": (
        lambda inv: _write(inv / "host_vars/v1.yml", "stellar_core_http_prot: 11626\n"),
        "host_vars/v1.yml: unknown variable 'stellar_core_http_prot' — expected a variable the kit declares",
    ),
    "group-vars-not-a-mapping": (
        lambda inv: _write(inv / "group_vars/stellar_core.yml", "- a\n- b\n"),
        "group_vars/stellar_core.yml: expected a mapping of variables, got list",
    ),
}


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_at_least_sixty_bad_inventories() -> None:
    assert len(BAD) + len(ISSUE_9) + len(RAW) >= 60
    assert not set(BAD) & set(ISSUE_9)


def _refused_in_one_line_each(code: int, lines: list[str], expected: str, tmp_path: Path) -> None:
    assert code == 1, lines  # 1, never 3 (unexpected error) nor 0
    assert any(expected in line for line in lines), "\n".join(lines)
    assert all(line.startswith("error: ") and " — " in line for line in lines), lines
    assert not any("Traceback" in line or "unexpected error" in line for line in lines), lines
    assert not (tmp_path / "state").exists()  # nothing touched


@pytest.mark.parametrize("case", sorted(ISSUE_9))
def test_issue_9_bad_inventory_is_refused(
    case: str, inventory: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    change, expected = ISSUE_9[case]
    _edit(inventory, change)
    _refused_in_one_line_each(*_check(inventory, capsys), expected, tmp_path)


@pytest.mark.parametrize("case", sorted(RAW))
def test_bad_yaml_is_refused_with_file_and_line(
    case: str, inventory: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    change, expected = RAW[case]
    change(inventory)
    _refused_in_one_line_each(*_check(inventory, capsys), expected, tmp_path)


def _orgs_of_three(n: int, unsafe: bool = False) -> Edit:
    def change(h: dict[str, Any], g: dict[str, Any], inv: Path) -> None:
        g["dlnet_organisations"] = [{"name": f"org{o}", "home_domain": f"org{o}.example.com"} for o in range(1, n + 1)]
        g["dlnet_quorum"].update(unsafe=unsafe)
        vs = _validators(h)
        vs.clear()
        for i in range(n * 3):
            vs[f"v{i + 1}"] = {
                "stellar_core_organisation": f"org{i // 3 + 1}",
                "stellar_core_peer_port": 11625 + 10 * i,
                "stellar_core_http_port": 11626 + 10 * i,
                "stellar_core_history_port": 11570 + i,
            }

    return change


@pytest.mark.parametrize(
    ("orgs", "unsafe", "tolerates"), [(1, False, 1), (4, False, 3), (5, False, 3), (7, False, 5), (2, True, 1)]
)
def test_good_variants_pass(
    orgs: int, unsafe: bool, tolerates: int, inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(inventory, _orgs_of_three(orgs, unsafe))
    code = main(["check", "-i", str(inventory), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert (out["validators"], out["tolerated_failures"]) == (orgs * 3, tolerates)
    assert main(["quorum", "-i", str(inventory)]) == 0
    text = capsys.readouterr().out
    assert "intersection: yes" in text and f"tolerates {tolerates} failed" in text, text


def test_quorum_command_agrees_with_preflight(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(inventory, lambda h, g, inv: _two_orgs(h, g, trusts_self_only=True))
    assert main(["quorum", "-i", str(inventory)]) == 1
    captured = capsys.readouterr()
    assert "intersection: NO" in captured.out and "None" not in captured.out
    assert "no intersection" in captured.err
    code, lines = _check(inventory, capsys)
    assert code == 1 and any("no intersection" in line for line in lines)


def test_quorum_command_with_core_off_and_unknown_organisation(
    inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(inventory, ISSUE_9["core-off-unknown-organisation"][0])
    assert main(["quorum", "-i", str(inventory)]) == 1
    err = capsys.readouterr().err
    assert "no validator to analyse" in err and "unexpected" not in err, err
