"""`dlnet exporter --inventory-json FILE`: how roles/dlnet_exporter runs the exporter (no Ansible in the image)."""

from __future__ import annotations

import json

from dlnet.cli import main
from dlnet.config import ansible_inventory_json
from tests.doubles.inventory import write_inventory


def test_reads_the_resolved_inventory_without_ansible(tmp_path, core_factory, capsys) -> None:
    core = core_factory(protocol_version=19)
    inventory = write_inventory(
        tmp_path, passphrase="dlnet json ; 2026", validators={n: node.port for n, node in core.nodes.items()}
    )
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(ansible_inventory_json(inventory)))
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
