"""The key rotation order (dlnet.rotation): every step proven with the quorum analysis, and the direct
order (no successor node) proven to halt, so the proof can fail."""

from __future__ import annotations

from dlnet import rotation
from dlnet.cli import main
from dlnet.config import load_network


def test_every_step_of_the_rotation_of_v1_is_safe():
    net = load_network("inventories/local")
    target = net.validators[0].name
    proofs = rotation.prove(net, target)
    assert [p.safe for p in proofs] == [True] * len(proofs), [p.why for p in proofs]
    new = rotation.successor(target)
    final = proofs[-1].step.after
    # At the end nobody names the old key, the new key runs in its place, and each lists the others only.
    assert target not in final.running and new in final.running
    assert all(target not in lists for lists in final.lists.values())
    assert all(new not in final.lists[n] for n in final.lists if n == new)
    # Mid-rotation the network may tolerate no further failure: stated, not hidden.
    assert proofs[0].tolerates_after == 0 and proofs[-1].tolerates_after == 1


def test_the_direct_order_would_halt():
    """Restart the target with its new key first, then the others: the second restart stalls the third."""
    net = load_network("inventories/local")
    names = [v.name for v in net.validators]
    target, a, b = names[0], names[1], names[2]
    new = rotation.successor(target)
    lists0 = {n: frozenset(set(names) - {n}) for n in names}
    s1 = rotation.State(frozenset({new, a, b}), {new: frozenset({a, b}), a: lists0[a], b: lists0[b]})
    s2 = rotation.State(s1.running, {**s1.lists, a: frozenset({new, b})})
    proof = rotation.check(net, target, rotation.Step(f"restart {a}", a, s1, s2))
    assert not proof.safe and not proof.live_while_away
    assert f"while {a} is away, {new}, {b} stall" in proof.why  # the whole network halts


def test_rotation_plan_verb(capsys):
    assert main(["rotation-plan", "v1", "-i", "inventories/local"]) == 0
    out = capsys.readouterr().out
    assert out.count("intersection yes") == 4 and "STALLS" not in out
    assert main(["rotation-plan", "v9", "-i", "inventories/local"]) == 1
    assert "expected one of the validators" in capsys.readouterr().err
