"""roles/prometheus renders a valid configuration from each inventory, labels every target, and turns the
inventory's quorum and network size into the alert thresholds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.doubles.inventory import write_inventory

from .conftest import ROOT, RULES

BIN = Path(sys.executable).parent


def _render(inventory: str | Path, out: Path) -> dict[str, Path]:
    res = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(ROOT / "tests/monitoring/render-prometheus.yml"),
         "-e", f"render_out={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    return {p.name: p for p in out.iterdir() if p.is_dir()}


def _thresholds(path: Path) -> dict[str, float]:
    rules = yaml.safe_load(path.read_text())["groups"][0]["rules"]
    return {r["record"]: float(re.fullmatch(r"vector\(([0-9.]+)\)", r["expr"]).group(1)) for r in rules}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for env in ("local", "sample"):
        hosts = _render(ROOT / "inventories" / env, tmp_path_factory.mktemp(env))
        assert len(hosts) == 1, hosts
        out[env] = next(iter(hosts.values()))
    return out


@pytest.mark.parametrize("env", ["local", "sample"])
def test_promtool_accepts_the_rendered_configuration(rendered, promtool: str, env: str) -> None:
    config = rendered[env] / "prometheus.yml"
    res = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 rule files found" in res.stdout, res.stdout


@pytest.mark.parametrize("env", ["local", "sample"])
def test_every_target_carries_environment_organisation_and_validator(rendered, env: str) -> None:
    config = yaml.safe_load((rendered[env] / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for name, job in jobs.items():
        for group in job["static_configs"]:
            labels = group["labels"]
            assert labels["environment"] == env, (name, labels)
            assert labels["organisation"] and labels["validator"], (name, labels)
    # `make up` deploys the exporters (site.yml imports deploy-monitoring.yml), so both inventories scrape them.
    assert {"prometheus", "dlnet_exporter", "stellar_core", "ipfs", "horizon"} <= jobs.keys(), jobs.keys()
    validators = [g["labels"]["validator"] for g in jobs["stellar_core"]["static_configs"]]
    assert len(validators) == len(set(validators)) == {"local": 3, "sample": 12}[env]
    if env == "local":  # federation switched on, compliance and bridge off
        assert [g["targets"] for g in jobs["dlnet_services"]["static_configs"]] == [["127.0.0.1:8001"]]
    else:  # services off in the sample
        assert "dlnet_services" not in jobs
    ports = [g["targets"][0] for g in jobs["stellar_core"]["static_configs"]]
    assert len(ports) == len(set(ports)), "two stellar-core exporters on one address"
    assert jobs["dlnet_exporter"]["honor_labels"] is True
    assert jobs["ipfs"]["metrics_path"] == "/debug/metrics/prometheus"


def test_default_thresholds_match_the_local_network(rendered) -> None:
    """monitoring/rules/dlnet-thresholds.rules.yml (used by the unit tests) is what a 3-validator network
    tolerating one failure renders."""
    assert _thresholds(rendered["local"] / "rules" / "dlnet-thresholds.rules.yml") == {
        **_thresholds(RULES / "dlnet-thresholds.rules.yml"),
        "dlnet:threshold_ledger_age_seconds": 15.0,  # inventories/local: 1 s ledgers
    }


def test_thresholds_follow_the_inventory(tmp_path) -> None:
    inventory = write_inventory(
        tmp_path,
        passphrase="dlnet thresholds ; 2026",
        validators={f"v{i}": 20000 + i for i in range(1, 6)},
        prometheus_port=29090,
        extra={"dlnet_quorum": {"tolerated_failures": 2, "unsafe": False},
               "prometheus_alert_ledger_close_slo_seconds": 8},
    )
    hosts = _render(inventory, tmp_path / "out")
    got = _thresholds(hosts["prom1"] / "rules" / "dlnet-thresholds.rules.yml")
    assert got["dlnet:quorum_tolerated_failures"] == 2
    assert got["dlnet:threshold_validator_peers_min"] == 4
    assert got["dlnet:slo_ledger_close_seconds"] == 8


def test_host_and_postgres_jobs_when_their_exporters_are_set(tmp_path) -> None:
    """node: one target per machine (three validators on one address are scraped once); postgres: per database."""
    inventory = write_inventory(
        tmp_path,
        passphrase="dlnet jobs ; 2026",
        validators={f"v{i}": 20000 + i for i in range(1, 4)},
        postgres_port=25432,
        prometheus_port=29090,
        extra={"prometheus_node_exporter_port": 9100, "prometheus_postgres_exporter_port": 9187},
    )
    config = yaml.safe_load((_render(inventory, tmp_path / "out")["prom1"] / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert [g["targets"] for g in jobs["node"]["static_configs"]] == [["127.0.0.1:9100"]]
    assert [g["targets"] for g in jobs["postgres"]["static_configs"]] == [["127.0.0.1:9187"]]
    assert jobs["postgres"]["static_configs"][0]["labels"]["instance_name"] == "pg1"


def test_no_host_or_postgres_job_by_default(rendered) -> None:
    config = yaml.safe_load((rendered["local"] / "prometheus.yml").read_text())
    assert not {"node", "postgres"} & {j["job_name"] for j in config["scrape_configs"]}


def test_a_single_validator_expects_no_peers(tmp_path) -> None:
    inventory = write_inventory(
        tmp_path, passphrase="dlnet solo ; 2026", validators={"v1": 20001}, prometheus_port=29090,
        extra={"dlnet_quorum": {"tolerated_failures": 0, "unsafe": True}},
    )
    got = _thresholds(_render(inventory, tmp_path / "out")["prom1"] / "rules" / "dlnet-thresholds.rules.yml")
    assert got["dlnet:threshold_validator_peers_min"] == 0
    assert got["dlnet:quorum_tolerated_failures"] == 0
