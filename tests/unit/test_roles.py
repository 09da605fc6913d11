"""Every role documents its interface: defaults, argument_specs and README agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import scripts.role_docs as role_docs
from tests.conftest import ROOT

ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())


def _entries(role: Path) -> list[str]:
    return role_docs.documented_entries(role)


# (role, entry point): a role serving several components (dlnet_service) has one entry point per component,
# with its defaults in defaults/<entry>.yml and its variables named dlnet_<entry>_*.
ENTRIES = [(role, entry) for role in ROLES for entry in _entries(role)]


def _prefix(role: Path, entry: str) -> str:
    return role.name if entry == "main" else f"dlnet_{entry}"


def _spec(role: Path, entry: str) -> dict:
    """The entry point's own options: the inventory globals it reads (generated from dlnet/contract.py,
    documented in the README's inventory table) are checked by tests/unit/test_contract.py."""
    text = (role / "meta" / "argument_specs.yml").read_text()
    generated = text.split("# BEGIN inventory globals", 1)[1].split("# END inventory globals", 1)[0] if (
        "# BEGIN inventory globals" in text) else ""
    names = set(re.findall(r"^      ([a-z_]+):$", generated, re.M))
    options = yaml.safe_load(text)["argument_specs"][entry]["options"]
    return {k: v for k, v in options.items() if k not in names}


@pytest.mark.parametrize("role, entry", ENTRIES, ids=[f"{r.name}:{e}" for r, e in ENTRIES])
def test_defaults_and_argument_specs_name_the_same_variables(role: Path, entry: str) -> None:
    defaults_file = role / "defaults" / f"{entry}.yml"
    defaults = set((yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {})
    # A variable without a safe default is listed commented out and marked required in the spec.
    commented = set(re.findall(r"^# ([a-z_]+):", defaults_file.read_text(), re.M)) if defaults_file.exists() else set()
    spec = _spec(role, entry)
    required = {k for k, v in spec.items() if v.get("required")}
    prefix = _prefix(role, entry)
    assert defaults | required == set(spec), f"{role.name}:{entry}: defaults vs argument_specs differ"
    assert required <= commented, f"{role.name}:{entry}: required variables must appear commented out in defaults"
    assert all(k.startswith(prefix + "_") for k in spec), f"{role.name}:{entry}: variables need the {prefix}_ prefix"


def test_a_multi_entry_role_has_the_files_of_each_entry() -> None:
    # import_role tasks_from/defaults_from/vars_from: <entry> (deploy/deploy-services.yml) needs all three.
    role = ROOT / "roles" / "dlnet_service"
    assert _entries(role) == ["federation", "compliance", "bridge"]
    for entry in _entries(role):
        for folder in ("tasks", "defaults", "vars"):
            assert (role / folder / f"{entry}.yml").is_file(), f"dlnet_service: {folder}/{entry}.yml missing"


@pytest.mark.parametrize("role, entry", ENTRIES, ids=[f"{r.name}:{e}" for r, e in ENTRIES])
def test_readme_lists_every_variable(role: Path, entry: str) -> None:
    readme = (role / "README.md").read_text()
    for name in _spec(role, entry):
        assert f"`{name}`" in readme, f"{role.name}/README.md does not document {name} (run scripts/role_docs.py)"


def _containers(tasks: list) -> list[dict]:
    out = []
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        for key in ("community.docker.docker_container", "docker_container"):
            module = task.get(key)
            # Tasks comparing nothing ('*': ignore) adopt a running container; they define none.
            if not isinstance(module, dict) or not module.get("image"):
                continue
            if (module.get("comparisons") or {}).get("*") != "ignore":
                out.append(task)
        for nested in ("block", "rescue", "always"):
            out += _containers(task.get(nested))
    return out


CONTAINER_TASKS = [
    (f"{p.parent.parent.name}/{p.name}", task)
    for p in sorted((ROOT / "roles").glob("*/tasks/*.yml"))
    for task in _containers(yaml.safe_load(p.read_text()))
]


@pytest.mark.parametrize("where,task", CONTAINER_TASKS, ids=[f"{w}:{t['name']}" for w, t in CONTAINER_TASKS])
def test_every_container_is_labelled_for_stop_and_remove(where: str, task: dict) -> None:
    # deploy/stop-network.yml and remove-network.yml find containers by these two labels only.
    module = task.get("community.docker.docker_container") or task["docker_container"]
    labels = module.get("labels") or {}
    assert labels.get("dlnet.environment") == "{{ dlnet_env }}", f"{where}: {task['name']}"
    assert labels.get("dlnet.host") == "{{ inventory_hostname }}", f"{where}: {task['name']}"
