"""`dlnet exporter` against the stellar-core and Horizon doubles: outcomes in the exposition text."""

from __future__ import annotations

import json
import os
import socket

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dlnet import day2, observe
from dlnet.cli import main
from dlnet.exporter import CLOSE_BUCKETS, CloseHistogram, registry_for
from tests.doubles.inventory import write_inventory


def _samples(registry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _value(samples, name, **labels) -> float | None:
    for (n, lbls), v in samples.items():
        if n == name and all(dict(lbls).get(k) == val for k, val in labels.items()):
            return v
    return None


def _registry(tmp_path, core, horizon=None, passphrase="dlnet test network ; 2026"):
    inv = write_inventory(
        tmp_path,
        passphrase=passphrase,
        validators={n: node.port for n, node in core.nodes.items()},
        horizon_port=int(horizon.url.rsplit(":", 1)[1]) if horizon else None,
    )
    net, settings = day2.load(inv)
    return registry_for(net, settings.admin_timeout_seconds)[0], inv


def test_histogram_counts_every_ledger_closed_between_scrapes(tmp_path, core_factory):
    core = core_factory(close_steps=[1, 2, 5, 8])
    registry, _ = _registry(tmp_path, core)
    core.paused = True
    _samples(registry)  # baseline
    first = core.header
    core.paused = False
    core.wait_ledgers(12)
    core.paused = True
    last = core.header
    s = _samples(registry)
    for v in ("v1", "v2", "v3"):
        assert _value(s, "dlnet_ledger_close_seconds_count", validator=v) == last.num - first.num
        assert _value(s, "dlnet_ledger_close_seconds_sum", validator=v) == last.closeTime - first.closeTime
        assert _value(s, "dlnet_ledger_sequence", validator=v) == last.num
        assert _value(s, "dlnet_validator_up", validator=v, environment="test", organisation="org1") == 1


def test_down_and_hanging_validators_show_down_while_the_others_report(tmp_path, core_factory):
    core = core_factory(5, hang_seconds=5)
    registry, _ = _registry(tmp_path, core)
    core.set_mode("v4", "down")
    core.set_mode("v5", "hang")
    s = _samples(registry)
    assert [_value(s, "dlnet_validator_up", validator=v) for v in ("v1", "v2", "v3", "v4", "v5")] == [
        1,
        1,
        1,
        0,
        0,
    ]
    assert _value(s, "dlnet_ledger_sequence", validator="v4") is None
    assert _value(s, "dlnet_ledger_sequence", validator="v1") >= 1
    assert _value(s, "dlnet_quorum_missing", validator="v1") == 1  # the hanging node still votes; v4 does not
    assert _value(s, "dlnet_exporter_scrape_duration_seconds", target="v5") is not None


def test_quorum_lag_disagree_and_armed_upgrades(tmp_path, core_factory):
    core = core_factory(4, threshold=2)
    registry, _ = _registry(tmp_path, core)
    core.set_mode("v3", "lag")
    core.set_mode("v4", "disagree")
    httpx.get(
        core.url("v1") + "/upgrades",
        params={"mode": "set", "upgradetime": "2099-01-01T00:00:00Z", "maxtxsetsize": 500},
    )
    s = _samples(registry)
    assert _value(s, "dlnet_validator_synced", validator="v3") == 0
    assert _value(s, "dlnet_validator_synced", validator="v1") == 1
    assert _value(s, "dlnet_quorum_missing", validator="v1") == 1
    assert _value(s, "dlnet_upgrade_armed", validator="v1", upgrade="max_tx_set_size") == 1
    assert _value(s, "dlnet_upgrade_armed", validator="v1", upgrade="protocol_version") == 0
    assert _value(s, "dlnet_upgrade_armed", validator="v2", upgrade="max_tx_set_size") == 0
    assert _value(s, "dlnet_quorum_intersection", validator="v1") == 1


def test_header_values_and_horizon_lag(tmp_path, core_factory, horizon_factory):
    core = core_factory(3, close_interval=3600)  # stays at genesis: protocol 0, 100 ops, 10 XLM reserve
    h = horizon_factory(idle_close=False)
    h.double.close_ledgers(5)
    h.double.ingest_lag = 3
    registry, _ = _registry(tmp_path, core, h.double)
    s = _samples(registry)
    assert _value(s, "dlnet_ledger_protocol_version", validator="v2") == 0
    assert _value(s, "dlnet_ledger_max_tx_set_size", validator="v2") == 100
    assert _value(s, "dlnet_ledger_base_reserve_stroops", validator="v2") == 100_000_000
    assert _value(s, "dlnet_ledger_base_fee_stroops", validator="v2") == 100
    assert _value(s, "dlnet_horizon_up", horizon="horizon1") == 1
    assert _value(s, "dlnet_horizon_ingest_lag_ledgers", horizon="horizon1") == 3


def test_horizon_down_is_reported_not_raised(tmp_path, core_factory):
    core = core_factory(3)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    inv = write_inventory(
        tmp_path,
        passphrase="x",
        validators={n: node.port for n, node in core.nodes.items()},
        horizon_port=dead_port,
    )
    net, settings = day2.load(inv)
    s = _samples(registry_for(net, settings.admin_timeout_seconds)[0])
    assert _value(s, "dlnet_horizon_up", horizon="horizon1") == 0
    assert _value(s, "dlnet_validator_up", validator="v1") == 1


def test_gaps_are_filled_from_known_close_times_else_spread_evenly():
    h = CloseHistogram()
    h.advance(10, 1000, {})
    h.advance(13, 1010, {11: 1001, 12: 1003})  # gaps 1, 2, 7
    assert (h.n, h.total) == (3, 10.0)
    assert dict(h.buckets())["1.0"] == 1 and dict(h.buckets())["2.0"] == 2 and dict(h.buckets())["7.0"] == 3
    h.advance(17, 1030, {})  # four ledgers, 20 s, nothing known: 5 s each
    assert (h.n, h.total) == (7, 30.0)
    assert dict(h.buckets())["5.0"] == 6
    assert len(h.buckets()) == len(CLOSE_BUCKETS) + 1


@pytest.mark.parametrize(
    "records,known",
    [
        ([{"sequence": 11, "paging_token": str(11 << 32)}], {}),  # no closed_at
        ([{"sequence": 11, "closed_at": "yesterday", "paging_token": str(11 << 32)}], {}),
        ([{"sequence": 11, "closed_at": "2026-11-26T01:00:00Z"}, {"sequence": 12}], {11: 1795654800}),
        ([None], {}),
    ],
)
def test_close_times_from_a_horizon_answering_another_shape_are_skipped_not_raised(records, known):
    # A scrape must not fail because Horizon (or what answers in its place) returns another shape:
    # the exporter keeps what it could read and spreads the rest evenly.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"_embedded": {"records": records}})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        assert observe.horizon_close_times("http://horizon", 10, 12, 1.0, client) == known


def test_exporter_once_json_from_the_cli(tmp_path, core_factory, capsys):
    core = core_factory(3)
    _, inv = _registry(tmp_path, core)
    core.set_mode("v2", "down")
    assert main(["exporter", "-i", inv, "--once", "--json"]) == 0
    samples = json.loads(capsys.readouterr().out)["samples"]
    up = {s["labels"]["validator"]: s["value"] for s in samples if s["name"] == "dlnet_validator_up"}
    assert up == {"v1": 1.0, "v2": 0.0, "v3": 1.0}


def test_exporter_port_in_use_is_one_line_error(tmp_path, core_factory, capsys):
    core = core_factory(3)
    _, inv = _registry(tmp_path, core)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["exporter", "-i", inv, "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"127.0.0.1:{port}" in err and "dlnet_exporter_port" in err


@pytest.mark.parametrize(
    "bad", ["dlnet_exporter_port: 0", "dlnet_exporter_port: http", "dlnet_upgrade: {lead_seconds: -1}"]
)
def test_bad_exporter_knobs_are_refused(tmp_path, core_factory, capsys, bad):
    core = core_factory(3, close_interval=3600)
    _, inv = _registry(tmp_path, core)
    (tmp_path / "inventory" / "group_vars" / "all" / "day2.yml").write_text(bad + "\n")
    assert main(["exporter", "-i", inv, "--once"]) == 1
    err = capsys.readouterr().err
    assert bad.split(":")[0] in err and len(err.strip().splitlines()) == 1


def test_exporter_serves_metrics_over_http(tmp_path, core_factory):
    import subprocess
    import sys

    from tests.doubles.horizon import wait_until

    core = core_factory(3)
    _, inv = _registry(tmp_path, core)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "dlnet", "exporter", "-i", inv, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    try:
        def scraped() -> str:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return ""

        assert wait_until(lambda: "dlnet_validator_up" in scraped(), timeout=30), proc.stderr
        text = scraped()
        assert 'dlnet_validator_up{environment="test",organisation="org1",validator="v1"} 1.0' in text
        assert "dlnet_ledger_close_seconds_bucket" in text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


CONTRACT = [  # shared with the monitoring roles (issue 4): every name must be exposed
    "dlnet_ledger_close_seconds", "dlnet_ledger_sequence", "dlnet_ledger_age_seconds",
    "dlnet_ledger_protocol_version", "dlnet_ledger_max_tx_set_size", "dlnet_ledger_base_fee_stroops",
    "dlnet_ledger_base_reserve_stroops", "dlnet_ledger_transactions_total", "dlnet_ledger_operations_total",
    "dlnet_ledger_operations_per_ledger", "dlnet_validator_up", "dlnet_validator_synced", "dlnet_validator_peers",
    "dlnet_quorum_agree", "dlnet_quorum_missing", "dlnet_quorum_fail_at", "dlnet_quorum_intersection",
    "dlnet_upgrade_armed", "dlnet_horizon_up", "dlnet_horizon_ingest_lag_ledgers",
    "dlnet_exporter_scrape_duration_seconds",
]


def test_every_contract_metric_is_exposed_with_its_labels(tmp_path, core_factory, horizon_factory):
    core = core_factory(3, close_interval=3600)  # ledger 1, which the Horizon double also has
    h = horizon_factory()
    registry, _ = _registry(tmp_path, core, h.double)
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in CONTRACT:
        base = name.removesuffix("_total")
        assert base in families, f"{name} missing"
        sample = families[base].samples[0]
        if name.startswith(("dlnet_ledger", "dlnet_validator", "dlnet_quorum", "dlnet_upgrade")):
            assert {"validator", "organisation", "environment"} <= set(sample.labels), name
        elif name.startswith("dlnet_horizon"):
            assert set(sample.labels) == {"horizon"}, name
    assert families["dlnet_ledger_close_seconds"].type == "histogram"
    assert families["dlnet_ledger_transactions"].type == "counter"
    assert families["dlnet_upgrade_armed"].samples[0].labels["upgrade"] in (
        "protocol_version", "base_fee", "base_reserve", "max_tx_set_size")
