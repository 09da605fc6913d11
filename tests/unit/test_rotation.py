"""The key rotation order (dlnet.rotation): each step proven with the quorum analysis. The proofs must be
able to fail: the target first halts the network; and naming a key before it runs leaves the restarted
validator unable to rejoin (seen on the real ops_network), so three validators of one organisation are
refused while five are not."""

from __future__ import annotations

import pytest

from dlnet import rotation
from dlnet.cli import main
from dlnet.config import load_network
from dlnet.errors import DlnetError
from tests.doubles.inventory import write_inventory


def _net(tmp_path, n: int):
    return load_network(write_inventory(tmp_path, passphrase="p", validators={f"v{i + 1}": i + 1 for i in range(n)}))


def test_five_validators_rotate_in_a_proven_order(tmp_path):
    proofs = rotation.plan(_net(tmp_path, 5), "v1")
    assert all(p.safe for p in proofs), [p.why for p in proofs]
    # v2 names the new key first, then v1 restarts with it, then the rest, one at a time.
    new = rotation.successor("v1")
    assert [p.step.away for p in proofs] == ["v2", new, "v3", "v4", "v5"]
    final = proofs[-1].step.after
    assert "v1" not in final.running and new in final.running
    assert all("v1" not in lists for lists in final.lists.values())
    # While one validator is in transition the network tolerates one failure fewer: stated, not hidden.
    assert [p.tolerates_after for p in proofs] == [1, 1, 1, 1, 2]


def test_three_validators_are_refused_before_anything_changes():
    net = load_network("inventories/local")
    with pytest.raises(DlnetError, match="v2 could not rejoin: v1, v3 do not block its new quorum set"):
        rotation.plan(net, "v1")
    # v2 first: it would wait for the new key that does not run yet (the real network: "Joining SCP").
    first = rotation.attempt(net, "v1")[0]
    assert first.live_while_away and first.live_after and not first.rejoins and not first.safe


def test_the_target_first_would_halt():
    """Restart v1 with its new key first: the others still name the old key, and the next restart stalls."""
    net = load_network("inventories/local")
    proofs = [rotation.check(net, "v1", s) for s in rotation.steps_for(net, "v1", ["v1", "v2", "v3"])]
    assert proofs[0].safe and not proofs[1].safe and not proofs[1].live_while_away
    assert "while v2 is away, v1+new, v3 stall" in proofs[1].why  # the whole network halts


def test_rotation_plan_verb(tmp_path, capsys):
    assert main(["rotation-plan", "v1", "-i", "inventories/local"]) == 1
    out = capsys.readouterr()
    assert "CANNOT REJOIN" in out.out and "no restart order keeps the network live and safe" in out.err
    inv = write_inventory(tmp_path, passphrase="p", validators={f"v{i + 1}": i + 1 for i in range(5)})
    assert main(["rotation-plan", "v1", "-i", inv]) == 0
    assert capsys.readouterr().out.count("intersection yes") == 5
    assert main(["rotation-plan", "v9", "-i", "inventories/local"]) == 1
    assert "expected one of the validators" in capsys.readouterr().err
