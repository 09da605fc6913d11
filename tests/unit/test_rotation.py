"""The key rotation order (dlnet.rotation): every step proven with the quorum analysis, and the direct
order (the target first) proven to halt, so the proof can fail."""

from __future__ import annotations

import pytest

from dlnet import rotation
from dlnet.cli import main
from dlnet.config import load_network
from dlnet.errors import DlnetError


def test_every_step_of_the_rotation_of_v1_is_safe():
    net = load_network("inventories/local")
    proofs = rotation.plan(net, "v1")
    assert [p.safe for p in proofs] == [True] * 3, [p.why for p in proofs]
    # v2 names the new key first, then v1 restarts with it, then v3.
    assert [p.step.away for p in proofs] == ["v2", rotation.successor("v1"), "v3"]
    final = proofs[-1].step.after
    new = rotation.successor("v1")
    assert "v1" not in final.running and new in final.running
    assert all("v1" not in lists for lists in final.lists.values())
    # Mid-rotation the network tolerates no further failure: stated, not hidden; at the end, one again.
    assert [p.tolerates_after for p in proofs] == [0, 0, 1]


def test_the_target_first_would_halt():
    """Restart v1 with its new key first: the others still name the old key, and the next restart stalls."""
    net = load_network("inventories/local")
    steps = rotation.steps_for(net, "v1", ["v1", "v2", "v3"])
    proofs = [rotation.check(net, "v1", s) for s in steps]
    assert proofs[0].safe and not proofs[1].safe and not proofs[1].live_while_away
    assert "while v2 is away, v1+new, v3 stall" in proofs[1].why  # the whole network halts


def test_no_safe_order_is_refused(tmp_path):
    from tests.doubles.inventory import write_inventory

    inv = write_inventory(
        tmp_path, passphrase="p", validators={"v1": 1, "v2": 2}, extra={"dlnet_quorum": {"unsafe": True}}
    )
    with pytest.raises(DlnetError, match="no restart order keeps the network live"):
        rotation.plan(load_network(inv), "v1")


def test_rotation_plan_verb(capsys):
    assert main(["rotation-plan", "v1", "-i", "inventories/local"]) == 0
    out = capsys.readouterr().out
    assert out.count("intersection yes") == 3 and "STALLS" not in out
    assert main(["rotation-plan", "v9", "-i", "inventories/local"]) == 1
    assert "expected one of the validators" in capsys.readouterr().err
