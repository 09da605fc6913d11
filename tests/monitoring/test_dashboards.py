"""Dashboards: generated JSON is current, valid for the pinned SDK's models, and wired to the datasource."""

from __future__ import annotations

import importlib.util
import json
import re
import sys

import pytest
import yaml

from .conftest import MONITORING

GENERATOR = MONITORING / "dashboards" / "generate.py"
JSON_DIR = MONITORING / "dashboards" / "json"
PROVISIONING = MONITORING / "grafana" / "provisioning"
# The dlnet exporter's contract (issue 3) plus what the other scraped components export.
DLNET_METRICS = {
    "dlnet_ledger_close_seconds", "dlnet_ledger_sequence", "dlnet_ledger_age_seconds",
    "dlnet_ledger_protocol_version", "dlnet_ledger_max_tx_set_size", "dlnet_ledger_base_fee_stroops",
    "dlnet_ledger_base_reserve_stroops", "dlnet_ledger_transactions_total", "dlnet_ledger_operations_total",
    "dlnet_ledger_operations_per_ledger", "dlnet_validator_up", "dlnet_validator_synced", "dlnet_validator_peers",
    "dlnet_quorum_agree", "dlnet_quorum_missing", "dlnet_quorum_fail_at", "dlnet_quorum_intersection",
    "dlnet_upgrade_armed", "dlnet_horizon_up", "dlnet_horizon_ingest_lag_ledgers",
    "dlnet_exporter_scrape_duration_seconds",
}


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("dlnet_dashboards_generate", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(JSON_DIR.glob("*.json"))}


def _panels(dash: dict) -> list[dict]:
    return [p for p in dash["panels"] if p["type"] != "row"]


def test_committed_json_matches_the_code(generator, tmp_path) -> None:
    assert generator.main(["--out", str(tmp_path)]) == 0
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_text() for p in JSON_DIR.glob("*.json")}
    assert fresh.keys() == committed.keys(), "run `make dashboards`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"out of date, run `make dashboards`: {stale}"


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    dashboards = _dashboards()
    assert set(dashboards) == {"dlnet-overview", "dlnet-validator", "dlnet-ipfs", "dlnet-horizon"}
    assert all(d["uid"] == name for name, d in dashboards.items())


def test_json_round_trips_through_the_sdk_models() -> None:
    """Schema check with the pinned grafana-foundation-sdk: decoding into its typed models and encoding again
    must give the same JSON (unknown keys are dropped by the models, so they show up as a difference)."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models import dashboard as dm

    register_default_plugins()
    for uid, data in _dashboards().items():
        model = dm.Dashboard.from_json(data)
        for panel in model.panels or []:
            if isinstance(panel, dm.Panel):
                assert not isinstance(panel.options, dict), f"{uid}/{panel.title}: options not typed"
        assert json.loads(json.dumps(model, cls=JSONEncoder)) == data, f"{uid} does not round-trip"


def _schema_errors(obj: object, path: str = "") -> list[str]:
    """Values the SDK's typed models accept without checking: enums and primitives against their type hints."""
    import enum
    import typing

    errors: list[str] = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            errors += _schema_errors(item, f"{path}[{i}]")
        return errors
    if isinstance(obj, dict):
        for key, item in obj.items():
            errors += _schema_errors(item, f"{path}.{key}")
        return errors
    if not type(obj).__module__.startswith("grafana_foundation_sdk.models"):
        return errors
    try:
        hints = typing.get_type_hints(type(obj).__init__)
    except NameError:  # an unresolvable forward reference: check the children only
        hints = {}
    for attr, value in vars(obj).items():
        where = f"{path}.{attr}"
        hint = hints.get(attr)
        options = typing.get_args(hint) if typing.get_origin(hint) is typing.Union else (hint,)
        enums = [o for o in options if isinstance(o, type) and issubclass(o, enum.Enum)]
        if value is not None and enums and not any(value in e._value2member_map_ for e in enums):
            errors.append(f"{where}: {value!r} is not one of {[m.value for e in enums for m in e]}")
        plain = [o for o in options if o in (int, float, str, bool)]
        if value is not None and plain and len(options) <= 2 and not enums:
            ok = any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in plain)
            ok = ok or (float in plain and isinstance(value, int) and not isinstance(value, bool))
            if not ok:
                errors.append(f"{where}: {value!r} is not {[t.__name__ for t in plain]}")
        errors += _schema_errors(value, where)
    return errors


def test_enum_and_primitive_fields_are_valid_for_the_sdk() -> None:
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models import dashboard as dm

    register_default_plugins()
    for uid, data in _dashboards().items():
        errors = _schema_errors(dm.Dashboard.from_json(data), uid)
        assert not errors, "\n".join(errors)


def test_schema_check_detects_a_bad_enum_value() -> None:
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models import dashboard as dm

    register_default_plugins()
    data = _dashboards()["dlnet-overview"]
    stat_panel = next(p for p in _panels(data) if p["type"] == "stat")
    stat_panel["options"]["colorMode"] = "plaid"
    errors = _schema_errors(dm.Dashboard.from_json(data))
    assert any("color_mode" in e and "plaid" in e for e in errors), errors


def test_round_trip_detects_an_unknown_key() -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models import dashboard as dm

    register_default_plugins()
    data = _dashboards()["dlnet-overview"]
    _panels(data)[0]["notAGrafanaKey"] = 1
    assert json.loads(json.dumps(dm.Dashboard.from_json(data), cls=JSONEncoder)) != data


def test_every_panel_has_queries_on_the_provisioned_datasource() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "dlnet.yml").read_text())["datasources"][0]
    for uid, dash in _dashboards().items():
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{uid}: duplicate panel ids"
        for panel in _panels(dash):
            where = f"{uid}/{panel['title']}"
            assert panel["datasource"]["uid"] == ds["uid"], where
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == ds["uid"], where
                assert target["expr"].strip(), where
                assert 'environment=~"$environment"' in target["expr"], f"{where}: not filtered on environment"


def test_dlnet_metric_names_are_the_exporter_contract() -> None:
    used = set()
    for dash in _dashboards().values():
        for panel in _panels(dash):
            for target in panel["targets"]:
                used |= set(re.findall(r"\b(dlnet_[a-z_]+?)(?:_bucket|_sum|_count)?\{", target["expr"]))
    unknown = used - DLNET_METRICS
    assert not unknown, f"dashboards use dlnet metrics outside the exporter contract: {sorted(unknown)}"
    assert {"dlnet_ledger_close_seconds", "dlnet_ledger_operations_per_ledger", "dlnet_validator_synced",
            "dlnet_quorum_fail_at"} <= used


def test_overview_answers_the_operators_questions() -> None:
    overview = _dashboards()["dlnet-overview"]
    exprs = " ".join(t["expr"] for p in _panels(overview) for t in p["targets"])
    assert "histogram_quantile(0.95" in exprs and "dlnet_ledger_close_seconds_bucket" in exprs
    assert any(p["type"] == "heatmap" for p in _panels(overview)), "close time histogram panel missing"
    band = next(p for p in _panels(overview) if "target band" in p["title"])
    steps = [s["value"] for s in band["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps == [None, 3, 10], steps
    assert "dlnet_ledger_operations_per_ledger" in exprs, "tx set size vs close time panel missing"
    assert "dlnet_quorum_fail_at" in exprs and "dlnet_validator_synced" in exprs


def test_provisioning_files_point_at_the_generated_json() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dlnet.yml").read_text())["providers"]
    assert providers[0]["type"] == "file" and providers[0]["disableDeletion"] is True
    ds = yaml.safe_load((PROVISIONING / "datasources" / "dlnet.yml").read_text())["datasources"]
    assert [d["type"] for d in ds] == ["prometheus"] and ds[0]["isDefault"] is True
