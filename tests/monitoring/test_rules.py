"""Alert rules: promtool lint, promtool unit tests, and the coverage and annotations every rule needs."""

from __future__ import annotations

import re
import subprocess

import yaml

from .conftest import ROOT, RULES

ALERTS = RULES / "dlnet-alerts.rules.yml"
THRESHOLDS = RULES / "dlnet-thresholds.rules.yml"
UNIT_TESTS = RULES / "tests" / "dlnet-alerts.test.yml"
DOC = ROOT / "docs" / "monitoring.md"


def _alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules_accepts_every_rule_file(promtool: str) -> None:
    files = sorted(RULES.glob("*.rules.yml"))
    assert files, "no rule files found"
    res = subprocess.run([promtool, "check", "rules", *map(str, files)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    res = subprocess.run(
        [promtool, "test", "rules", UNIT_TESTS.name], cwd=UNIT_TESTS.parent, capture_output=True, text=True
    )
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


def test_promtool_unit_tests_can_fail(promtool: str, tmp_path) -> None:
    """The harness is not vacuous: a wrong expectation makes promtool fail."""
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    doc["rule_files"] = [str(ALERTS), str(THRESHOLDS)]
    firing = next(c for t in doc["tests"] for c in t["alert_rule_test"] if c["exp_alerts"])
    firing["exp_alerts"] = []
    broken = tmp_path / "broken.test.yml"
    broken.write_text(yaml.safe_dump(doc))
    res = subprocess.run([promtool, "test", "rules", str(broken)], capture_output=True, text=True)
    assert res.returncode != 0 and "FAILED" in res.stdout + res.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    checks = [c for t in doc["tests"] for c in t["alert_rule_test"]]
    fired = {c["alertname"] for c in checks if c["exp_alerts"]}
    quiet = {c["alertname"] for c in checks if not c["exp_alerts"]}
    names = {r["alert"] for r in _alert_rules()}
    assert names - fired == set(), f"alerts never tested firing: {sorted(names - fired)}"
    assert names - quiet == set(), f"alerts never tested not firing: {sorted(names - quiet)}"


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    doc_text = DOC.read_text()
    anchors = {m.lower() for m in re.findall(r"^#+\s+(\w+)", doc_text, flags=re.M)}
    problems = []
    for rule in _alert_rules():
        name = rule["alert"]
        ann = rule.get("annotations", {})
        if rule.get("labels", {}).get("severity") not in {"warning", "critical"}:
            problems.append(f"{name}: severity must be warning or critical")
        for key in ("summary", "description", "runbook", "runbook_url"):
            if not str(ann.get(key, "")).strip():
                problems.append(f"{name}: missing annotation {key}")
        url = str(ann.get("runbook_url", ""))
        if url != f"docs/monitoring.md#{name.lower()}" or name.lower() not in anchors:
            problems.append(f"{name}: runbook_url {url!r} must point at a '### {name}' section of docs/monitoring.md")
    assert not problems, "\n".join(problems)


def test_thresholds_are_label_free_constants() -> None:
    """Alert rules join thresholds with `on() group_left()`: a threshold with labels would match nothing."""
    doc = yaml.safe_load(THRESHOLDS.read_text())
    for rule in doc["groups"][0]["rules"]:
        assert rule["record"].startswith("dlnet:"), rule
        assert re.fullmatch(r"vector\([0-9.]+\)", rule["expr"]), rule
    used = set(re.findall(r"dlnet:\w+", ALERTS.read_text()))
    defined = {r["record"] for r in doc["groups"][0]["rules"]}
    assert used <= defined, f"thresholds used but not defined: {sorted(used - defined)}"
