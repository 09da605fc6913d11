"""House style for the monitoring roles: every default is in meta/argument_specs.yml and in the README."""

from __future__ import annotations

import pytest
import yaml

from .conftest import ROOT

ROLES = ["prometheus", "grafana", "dlnet_exporter"]


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_list_the_same_variables(role: str) -> None:
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = specs["main"]["options"]
    assert set(defaults) - set(options) == set(), "defaults without a spec entry"
    assert set(options) - set(defaults) == set(), "spec entries without a default"
    assert all(name.startswith(f"{role}_") for name in defaults), "variables must carry the role prefix"


@pytest.mark.parametrize("role", ["grafana", "dlnet_exporter"])
def test_readme_documents_every_variable(role: str) -> None:
    readme = (ROOT / "roles" / role / "README.md").read_text()
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    missing = [name for name in defaults if f"`{name}`" not in readme]
    assert not missing, missing
