"""The key rotation order (dlnet.rotation): each step proven with the quorum analysis. The proofs must be
able to fail: the target first halts the network; naming a key before it runs leaves the restarted
validator unable to rejoin (seen on the real ops_network); so five validators rotate in one pass while
three or four go through a temporary successor, and the successor must really run for that to hold."""

from __future__ import annotations

import dataclasses

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


def test_three_validators_have_no_order_without_a_successor():
    net = load_network("inventories/local")
    # v2 first: it would wait for the new key that does not run yet (the real network: "Joining SCP").
    first = rotation.attempt(net, "v1")[0]
    assert first.live_while_away and first.live_after and not first.rejoins and not first.safe


def test_three_validators_rotate_through_a_successor():
    proofs = rotation.plan(load_network("inventories/local"), "v1")
    assert all(p.safe for p in proofs), [p.why for p in proofs]
    steps = [(p.step.kind, p.step.host, p.step.names) for p in proofs]
    assert steps == [
        ("start", "v1", ("v1", "v2", "v3")),  # S (the new key) beside v1; nobody names it yet
        ("restart", "v2", ("v1", "v1+new", "v3")),  # 3 of 4
        ("restart", "v3", ("v1", "v1+new", "v2")),
        ("restart", "v2", ("v1+new", "v3")),  # 2 of 3 again
        ("restart", "v3", ("v1+new", "v2")),
        ("restart", "v1", ("v2", "v3")),  # S drops the old key
        ("stop", "v1", ()),  # the old key retires
        ("move", "v1", ("v2", "v3")),  # v1's own container, data and archive, with the new key
    ]
    final = proofs[-1].step.after
    assert final.running == {"v1+new", "v2", "v3"} and all("v1" not in ls for ls in final.lists.values())
    # One failure tolerated at every step (2 of 3, or 3 of 4 with the successor).
    assert [p.tolerates_after for p in proofs] == [1] * 8


def test_four_validators_rotate_through_a_successor(tmp_path, monkeypatch):
    """Four validators have no order without a successor either; through one every step is proven. It ran on
    a real network of four once validators preferred the keys they name (README); a size that has not run
    on a real network is refused."""
    net = _net(tmp_path, 4)
    proofs = rotation.plan(net, "v2")
    assert all(p.safe for p in proofs), [p.why for p in proofs]
    assert [p.tolerates_after for p in proofs] == [1] * 10
    assert [(p.step.kind, p.step.host) for p in proofs] == [
        ("start", "v2"),
        *[("restart", v) for v in ("v1", "v3", "v4") * 2],
        ("restart", "v2"),
        ("stop", "v2"),
        ("move", "v2"),
    ]
    assert proofs[1].step.names == ("v2", "v2+new", "v3", "v4") and proofs[4].step.names == ("v2+new", "v3", "v4")
    monkeypatch.setattr(rotation, "SUCCESSOR_VERIFIED_ORG_SIZES", frozenset({3}))
    with pytest.raises(DlnetError, match=r"only organisations of 3 have run it on the real network .* nothing was"):
        rotation.plan(net, "v2")


def test_the_successor_must_run(tmp_path):
    """The same restarts with the successor never started: the others wait for a key nobody runs."""
    net = load_network("inventories/local")
    new = rotation.successor("v1")

    def without_successor(st: rotation.State) -> rotation.State:
        return rotation.State(st.running - {new}, st.lists)

    steps = [
        dataclasses.replace(s, before=without_successor(s.before), after=without_successor(s.after))
        for s in rotation.successor_steps(net, "v1")[1:5]
    ]
    proofs = [rotation.check(net, "v1", s) for s in steps]
    assert proofs[0].safe and not proofs[1].safe
    assert "while v3 is away, v1, v2 stall" in proofs[1].why
    assert "v2 could not rejoin" in proofs[2].why


def test_the_target_first_would_halt():
    """Restart v1 with its new key first: the others still name the old key, and the next restart stalls."""
    net = load_network("inventories/local")
    proofs = [rotation.check(net, "v1", s) for s in rotation.steps_for(net, "v1", ["v1", "v2", "v3"])]
    assert proofs[0].safe and not proofs[1].safe and not proofs[1].live_while_away
    assert "while v2 is away, v1+new, v3 stall" in proofs[1].why  # the whole network halts


def test_rotation_plan_verb(tmp_path, capsys):
    assert main(["rotation-plan", "v1", "-i", "inventories/local"]) == 0
    out = capsys.readouterr().out
    assert out.count("intersection yes") == 8 and "CANNOT REJOIN" not in out and "STALLS" not in out
    inv = write_inventory(tmp_path, passphrase="p", validators={f"v{i + 1}": i + 1 for i in range(5)})
    assert main(["rotation-plan", "v1", "-i", inv]) == 0
    assert capsys.readouterr().out.count("intersection yes") == 5
    assert main(["rotation-plan", "v9", "-i", "inventories/local"]) == 1
    assert "expected one of the validators" in capsys.readouterr().err


def test_two_validators_are_refused_even_through_a_successor(tmp_path):
    with pytest.raises(DlnetError, match="not even through a temporary successor — nothing was changed"):
        rotation.plan(_net(tmp_path, 2), "v1")
