"""`dlnet keys rotate` and `dlnet rotate-key plan|finish` on the controller's secrets (no network needed for
these paths; the real rotation is tests/deploy/test_rotate_key.py)."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime

from dlnet import keys
from dlnet.cli import main
from dlnet.config import load_network
from tests.doubles.inventory import write_inventory


def _net(tmp_path):
    five = {f"v{i + 1}": i + 1 for i in range(5)}
    inv = write_inventory(tmp_path, passphrase="dlnet test network ; 2026", validators=five)
    net = load_network(inv)
    keys.ensure(net)
    return inv, net


def test_new_key_is_pending_private_and_never_printed(tmp_path, capsys):
    inv, net = _net(tmp_path)
    root = keys.secrets_dir(net.env)
    old = keys.public_key(net.env, "v1")
    assert main(["keys", "rotate", "v1", "-i", inv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    seed = (root / "v1.next.seed").read_text().strip()
    assert out["new_public_key"] == keys.public_key(net.env, "v1", new=True) != old
    assert seed not in json.dumps(out) and stat.S_IMODE((root / "v1.next.seed").stat().st_mode) == 0o600
    assert keys.pending_rotation(net.env) == "v1"
    # One rotation at a time; unknown validators refused.
    assert main(["keys", "rotate", "v2", "-i", inv]) == 1
    assert "already pending" in capsys.readouterr().err
    assert main(["keys", "rotate", "v9", "-i", inv]) == 1
    assert "expected one of the validators" in capsys.readouterr().err
    # The plan follows the pending key.
    assert main(["rotate-key", "plan", "-i", inv]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["pending"] == "v1" and plan["order"] == ["v2", "v1", "v3", "v4", "v5"] and plan["old"] == old


def test_promote_retires_the_old_key(tmp_path):
    _, net = _net(tmp_path)
    root = keys.secrets_dir(net.env)
    old_seed = (root / "v1.seed").read_text()
    new = keys.request_rotation(net, "v1")
    stem = keys.promote(net, "v1", now=datetime(2026, 12, 7, 6, 0, tzinfo=UTC))
    assert stem == "v1.retired-20261207T060000Z"
    assert (root / f"{stem}.seed").read_text() == old_seed
    assert keys.public_key(net.env, "v1") == new and keys.pending_rotation(net.env) is None
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in root.glob("v1.retired-*"))
    assert keys.ensure(net) == []  # the promoted pair is consistent: nothing to regenerate


def test_nothing_pending_changes_nothing(tmp_path, capsys):
    inv, _ = _net(tmp_path)
    assert main(["rotate-key", "plan", "-i", inv]) == 0
    assert json.loads(capsys.readouterr().out) == {"pending": None, "order": []}
    assert main(["rotate-key", "finish", "-i", inv]) == 0
    assert json.loads(capsys.readouterr().out) == {"changed": False, "pending": None}


def test_plan_for_three_validators_goes_through_a_successor(tmp_path, capsys):
    inv = write_inventory(tmp_path, passphrase="dlnet test network ; 2026", validators={"v1": 1, "v2": 2, "v3": 3})
    net = load_network(inv)
    keys.ensure(net)
    assert main(["keys", "rotate", "v1", "-i", inv]) == 0
    capsys.readouterr()
    assert main(["rotate-key", "plan", "-i", inv]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["successor"] is True and plan["order"] == []
    assert plan["add"] == ["v2", "v3"] and plan["drop"] == ["v2", "v3"]
    assert [s["kind"] for s in plan["plan"]] == ["start", *["restart"] * 5, "stop", "move"]
    assert plan["plan"][1] == {"kind": "restart", "host": "v2", "names": ["v1", "v1+new", "v3"]}
    # The successor's admin port sits beside v1's (the kit spaces validators' ports 10 apart).
    v1 = next(v for v in net.validators if v.name == "v1")
    assert plan["successor_name"] == "v1+new"
    assert plan["successor_admin"].endswith(f":{v1.http_port + plan['successor_port_offset']}")
    assert (keys.secrets_dir(net.env) / "v1.next.seed").read_text().strip() not in json.dumps(plan)


def test_plan_refuses_two_validators(tmp_path, capsys):
    inv = write_inventory(tmp_path, passphrase="dlnet test network ; 2026", validators={"v1": 1, "v2": 2})
    keys.ensure(load_network(inv))
    assert main(["keys", "rotate", "v1", "-i", inv]) == 0
    capsys.readouterr()
    assert main(["rotate-key", "plan", "-i", inv]) == 1
    assert "not even through a temporary successor" in capsys.readouterr().err


def test_cancel_drops_the_pending_key(tmp_path, capsys):
    inv, net = _net(tmp_path)
    keys.request_rotation(net, "v1")
    assert main(["keys", "rotate", "v1", "--cancel", "-i", inv]) == 0
    assert "pending new key dropped" in capsys.readouterr().out
    assert keys.pending_rotation(net.env) is None
    assert main(["keys", "rotate", "v1", "--cancel", "-i", inv]) == 0
    assert "no new key pending" in capsys.readouterr().out
