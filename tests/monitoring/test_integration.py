"""The real Prometheus (Debian package) on the configuration roles/prometheus renders from an inventory,
scraping what runs here: the dlnet exporter and SDF's stellar-core exporter against the stellar-core and
Horizon doubles (tests/doubles/, built from ../shared/reference/), two kubo nodes in a private swarm, and
itself. Every panel query of every dashboard must return data from it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import pytest

from .conftest import MONITORING
from .harness import KUBO, monitoring_stack, wait_for

RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 2 s scrape interval (4 x scrape, plus margin)
RANGE = "60s"  # $__range
WARMUP_SECONDS = 30  # enough samples for every rate()/increase() window above

pytestmark = [
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (deps/apt-monitoring.txt)"),
    pytest.mark.skipif(not KUBO.exists(), reason="kubo not built: run `make kubo` (build/bin/ipfs)"),
]


def _dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((MONITORING / "dashboards" / "json").glob("*.json"))}


def _panel_queries() -> list[tuple[str, str, str, str]]:
    out = []
    for uid, dash in _dashboards().items():
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                out.append((uid, panel["title"], target["refId"], target["expr"]))
    return out


def _substitute(expr: str) -> str:
    """Grafana's variables as a dashboard with every variable on "All" sends them."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", RANGE)
    expr = re.sub(r"\$(environment|validator|horizon)\b", ".*", expr)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    with monitoring_stack(tmp_path_factory.mktemp("monitoring-stack"), warmup=WARMUP_SECONDS) as running:
        yield running


def test_rendered_configuration_passes_promtool(stack) -> None:
    res = subprocess.run(["promtool", "check", "config", str(stack["config"])], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_expected_job_is_scraped_and_up(stack) -> None:
    targets = stack["prom"].api("targets")["activeTargets"]
    by_job: dict[str, list[str]] = {}
    for t in targets:
        by_job.setdefault(t["labels"]["job"], []).append(t["health"])
    assert by_job == {
        "prometheus": ["up"],
        "dlnet_exporter": ["up"],
        "stellar_core": ["up"] * 3,
        "ipfs": ["up"] * 2,
    }, by_job


def test_every_series_carries_validator_organisation_and_environment(stack) -> None:
    prom = stack["prom"]
    # dlnet:* are the threshold constants (recording rules of vector(N)): deliberately label-free.
    for label in ("validator", "organisation", "environment"):
        missing = prom.query(f'count by (__name__, job) ({{__name__=~".+", __name__!~"dlnet:.*", {label}=""}})')
        assert missing == [], f"series without {label}: {[m['metric'] for m in missing][:10]}"
    assert prom.query('count(stellar_core_ledger_num{environment="itest", validator="v2", organisation="org1"})')
    assert not prom.query('count({job="stellar_core", network!=""})'), "SDF's passphrase label must be dropped"


def test_rules_load_and_evaluate_without_errors(stack) -> None:
    groups = stack["prom"].api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    alerts = {r["name"] for r in rules if r["type"] == "alerting"}
    assert len(alerts) == 13, sorted(alerts)
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken, broken
    healthy_firing = [r["name"] for r in rules if r["type"] == "alerting" and r["state"] != "inactive"]
    assert not healthy_firing, f"alerts active on a healthy network: {healthy_firing}"


def test_alert_rules_only_use_series_the_exporters_emit(stack) -> None:
    """A typo in a rule's metric name would make it silently never fire: every name must exist here."""
    import yaml

    rules = yaml.safe_load((MONITORING / "rules" / "dlnet-alerts.rules.yml").read_text())
    exprs = re.sub(r'"[^"]*"', '""', " ".join(r["expr"] for g in rules["groups"] for r in g["rules"]))
    names = set(re.findall(r"\b((?:dlnet|stellar_core|ipfs)_[a-z0-9_]+|up)\b", exprs))
    assert len(names) >= 12, names
    absent = [n for n in sorted(names) if not stack["prom"].query(f"count({n})")]
    assert absent == [], f"rules use series nobody exports: {absent}"


@pytest.mark.parametrize(("uid", "title", "ref", "expr"), _panel_queries(),
                         ids=[f"{u}/{t}/{r}" for u, t, r, _ in _panel_queries()])
def test_every_panel_query_returns_data(stack, uid: str, title: str, ref: str, expr: str) -> None:
    result = stack["prom"].query_range(_substitute(expr), seconds=10)
    values = [float(v) for series in result for _, v in series["values"]]
    assert values, f"{uid} / {title} ({ref}) returned no data: {_substitute(expr)}"
    assert any(not math.isnan(v) for v in values), f"{uid} / {title} ({ref}) returned only NaN"


# Queries of SDF's published dashboards (grafana.com 10603/10334) and alert rules, with the `environment`
# filter they use: they must work unchanged on the stellar_core_* series this configuration scrapes.
SDF_QUERIES = [
    'stellar_core_ledger_age{environment=~"itest"}',
    'stellar_core_ledger_ledger_close_seconds{environment=~"itest", quantile="0.99"}',
    'histogram_quantile(0.99, rate(stellar_core_ledger_age_closed_bucket{environment=~"itest"}[1m]))',
    'sum(rate(stellar_core_ledger_age_closed_bucket{environment=~"itest", le="7.0"}[1m]))'
    ' / sum(rate(stellar_core_ledger_age_closed_count{environment=~"itest"}[1m]))*100',
    'stellar_core_synced{environment="itest"} == 1',
    'stellar_core_quorum_fail_at{environment="itest"}',
    'stellar_core_quorum_transitive_intersection{environment="itest"}',
    'stellar_core_peers_authenticated_count{environment="itest"}',
]


@pytest.mark.parametrize("expr", SDF_QUERIES)
def test_sdf_dashboard_and_rule_queries_work_unchanged(stack, expr: str) -> None:
    result = stack["prom"].query_range(expr, seconds=10)
    values = [float(v) for series in result for _, v in series["values"]]
    assert values and any(not math.isnan(v) for v in values), f"no data for SDF's {expr}"
    assert {s["metric"].get("validator") for s in result} <= {"v1", "v2", "v3", None}


def test_stopped_validator_is_seen_down_and_alerting(stack) -> None:
    """Last (it changes the doubles): a validator going down reaches Prometheus and its alert goes pending."""
    prom, core = stack["prom"], stack["core"]
    core.set_mode("v3", "down")
    wait_for("dlnet_validator_up{validator=v3} == 0",
             lambda: prom.query('dlnet_validator_up{validator="v3"} == 0'), timeout=30)
    alert = wait_for(
        "DlnetValidatorDown pending",
        lambda: [a for a in prom.api("alerts")["alerts"] if a["labels"]["alertname"] == "DlnetValidatorDown"],
        timeout=30,
    )
    assert [a["labels"]["validator"] for a in alert] == ["v3"]
    assert alert[0]["labels"]["severity"] == "critical" and alert[0]["state"] in {"pending", "firing"}




def test_disconnected_kubo_nodes_are_seen_without_peers(stack) -> None:
    """Last: with real kubo, a node that loses its only peer raises DlnetIpfsBootstrapNoPeers (pending)."""
    prom, (k1, k2) = stack["prom"], stack["kubos"]
    assert not prom.query("ALERTS{alertname=\"DlnetIpfsBootstrapNoPeers\"}")
    k1.disconnect(k2)
    pending = wait_for(
        "DlnetIpfsBootstrapNoPeers pending for both nodes",
        lambda: len(found := prom.query('ALERTS{alertname="DlnetIpfsBootstrapNoPeers"}')) == 2 and found,
        timeout=30,
    )
    assert {a["metric"]["instance_name"] for a in pending} == {"ipfs1", "ipfs2"}
