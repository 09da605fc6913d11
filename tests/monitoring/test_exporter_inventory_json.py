"""`dlnet exporter --inventory-json FILE`: how roles/dlnet_exporter runs the exporter (no Ansible in the image)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dlnet.cli import main
from tests.doubles.inventory import write_inventory

from .conftest import ROOT

BIN = Path(sys.executable).parent


def test_reads_the_resolved_inventory_without_ansible(tmp_path, core_factory, capsys) -> None:
    core = core_factory(protocol_version=19)
    inventory = write_inventory(
        tmp_path, passphrase="dlnet json ; 2026", validators={n: node.port for n, node in core.nodes.items()},
        prometheus_port=29090,
    )
    path = tmp_path / "inventory.json"
    # Exactly what roles/dlnet_exporter installs: the kit's dlnet_inventory_json (deploy/group_vars).
    res = subprocess.run(
        [str(BIN / "ansible"), "-i", inventory, "prom1", "--playbook-dir", str(ROOT / "deploy"),
         "-m", "ansible.builtin.copy", "-a", f"content={{{{ dlnet_inventory_json }}}} dest={path}",
         "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert main(["exporter", "--inventory-json", str(path), "--once", "--json"]) == 0
    samples = json.loads(capsys.readouterr().out)["samples"]
    up = {s["labels"]["validator"]: s["value"] for s in samples if s["name"] == "dlnet_validator_up"}
    assert up == {"v1": 1.0, "v2": 1.0, "v3": 1.0}


def test_unreadable_inventory_json_is_one_clear_error(tmp_path, capsys) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    for path in (tmp_path / "missing.json", tmp_path / "broken.json"):
        assert main(["exporter", "--inventory-json", str(path), "--once"]) == 1
        err = capsys.readouterr().err
        assert f"inventory JSON {path}" in err and "ansible-inventory --list" in err, err
