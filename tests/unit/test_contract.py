"""The inventory contract is declared once (dlnet/contract.py); what is derived from it stays in step."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dlnet import config, contract
from tests.conftest import ROOT


def test_readme_tables_are_generated_from_the_declaration() -> None:
    import scripts.inventory_docs as docs

    for readme in docs.TABLES:
        text = readme.read_text()
        assert docs.render(text) == text, f"{readme}: inventory table is stale: run scripts/inventory_docs.py"
        assert all(f"`{v.name}`" in text for v in contract.VARIABLES)


def test_roles_argument_specs_declare_the_globals_they_read_as_generated() -> None:
    import scripts.inventory_docs as docs

    for spec in docs.spec_files():
        role = spec.parent.parent
        text = spec.read_text()
        assert docs.render_spec(role, text) == text, f"{spec} is stale: run scripts/inventory_docs.py"
        for entry in yaml.safe_load(text)["argument_specs"].values():
            options = entry["options"]
            for name in docs.globals_read(role):
                var = contract.BY_NAME[name]
                assert options[name]["type"] == docs._SPEC_TYPES[var.type] and var.doc in options[name]["description"]
    # The roles read what the templates need: the validators and Horizon both write the passphrase.
    assert "dlnet_network_passphrase" in docs.globals_read(ROOT / "roles" / "stellar_core")
    assert "dlnet_network_passphrase" in docs.globals_read(ROOT / "roles" / "horizon")


def test_ansible_hands_python_exactly_the_declared_variables() -> None:
    kit = yaml.safe_load((ROOT / "deploy" / "group_vars" / "all" / "kit.yml").read_text())
    assert kit["dlnet_inventory_vars"] == [v.name for v in contract.VARIABLES]


def test_every_declared_variable_reaches_the_model() -> None:
    source = Path(config.__file__).read_text()
    assert all(
        f'"{v.name}"' in source or f"'{v.name}'" in source or v.name.endswith("_port") for v in contract.VARIABLES
    )
    assert len({v.name for v in contract.VARIABLES}) == len(contract.VARIABLES)


@pytest.mark.parametrize("env", ["local", "sample"])
def test_shipped_inventories_use_only_known_keys(env: str) -> None:
    assert contract.scan(ROOT / "inventories" / env) == []


def test_duplicate_keys_are_refused_at_any_depth(tmp_path: Path) -> None:
    f = tmp_path / "x.yml"
    f.write_text("a:\n  b: 1\n  b: 2\n")
    with pytest.raises(yaml.YAMLError, match="'b' is defined twice"):
        contract.load_yaml(f)
