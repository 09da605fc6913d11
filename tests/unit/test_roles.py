"""Every role documents its interface: defaults, argument_specs and README agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())


def _spec(role: Path) -> dict:
    return yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_and_argument_specs_name_the_same_variables(role: Path) -> None:
    defaults_file = role / "defaults" / "main.yml"
    defaults = set((yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {})
    # A variable without a safe default is listed commented out and marked required in the spec.
    commented = set(re.findall(r"^# ([a-z_]+):", defaults_file.read_text(), re.M)) if defaults_file.exists() else set()
    spec = _spec(role)
    required = {k for k, v in spec.items() if v.get("required")}
    assert defaults | required == set(spec), f"{role.name}: defaults vs argument_specs differ"
    assert required <= commented, f"{role.name}: required variables must appear commented out in defaults"
    assert all(k.startswith(role.name + "_") for k in spec), f"{role.name}: variables need the {role.name}_ prefix"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_readme_lists_every_variable(role: Path) -> None:
    readme = (role / "README.md").read_text()
    for name in _spec(role):
        assert f"`{name}`" in readme, f"{role.name}/README.md does not document {name} (run scripts/role_docs.py)"
