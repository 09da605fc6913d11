"""`dlnet rolling-gate` (the check around each restart of deploy/rolling-upgrade.yml) against the
stellar-core double, and the quorum side of it against real inventories' quorum sets."""

from __future__ import annotations

import time

from dlnet import rolling
from dlnet.cli import main
from dlnet.config import load_network
from tests.doubles.inventory import write_inventory

PASS = "dlnet test network ; 2026"


def _inv(tmp_path, core):
    return write_inventory(tmp_path, passphrase=PASS, validators={n: node.port for n, node in core.nodes.items()})


def _run(capsys, *args):
    code = main(["rolling-gate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_healthy_network_lets_one_validator_go(tmp_path, core_factory, capsys):
    core = core_factory(3, threshold=2, close_interval=0.5)
    code, out, err = _run(capsys, "-i", _inv(tmp_path, core), "--host", "v1")
    assert code == 0, err
    assert "rolling-gate v1: may restart — v2, v3 Synced!" in out


def test_another_validator_down_is_refused_in_one_line(tmp_path, core_factory, capsys):
    core = core_factory(3, threshold=2, close_interval=0.5)
    core.set_mode("v2", "down")
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core), "--host", "v1")
    assert code == 1
    assert "rolling-gate v1: refused — v2 is down" in err and len(err.strip().splitlines()) == 1


def test_another_validator_catching_up_is_refused(tmp_path, core_factory, capsys):
    core = core_factory(3, threshold=2, close_interval=0.5)
    core.set_mode("v3", "lag")
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core), "--host", "v1")
    assert code == 1 and "v3 is 'Catching up'" in err


def test_the_host_itself_may_be_down(tmp_path, core_factory, capsys):
    """Restarting a validator that is already down takes nothing more away."""
    core = core_factory(3, threshold=2, close_interval=0.5)
    core.set_mode("v1", "down")
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core), "--host", "v1")
    assert code == 0, err


def test_unknown_host_is_refused(tmp_path, core_factory, capsys):
    core = core_factory(3, threshold=2)
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core), "--host", "v9")
    assert code == 1 and "expected one of the validators v1, v2, v3" in err


def test_after_waits_for_the_same_ledger_and_gives_up_at_the_deadline(tmp_path, core_factory, capsys):
    core = core_factory(3, threshold=2, close_interval=0.5)
    inv = _inv(tmp_path, core)
    code, out, err = _run(capsys, "-i", inv, "--host", "v2", "--after", "--timeout", "10")
    assert code == 0, err
    assert "rolling-gate v2: back — Synced! on ledger" in out
    core.set_mode("v2", "down")
    start = time.monotonic()
    code, _, err = _run(capsys, "-i", inv, "--host", "v2", "--after", "--timeout", "1.5")
    assert code == 1 and "not back after 1.5 s — v2 does not answer" in err
    assert time.monotonic() - start < 10


def test_quorum_without_a_validator():
    net = load_network("inventories/local")
    assert rolling.quorum_without(net, net.validators[0].name) is None


def test_quorum_that_needs_the_validator_is_refused(tmp_path):
    """Two validators (UNSAFE_QUORUM, 2 of 2): neither may go while the other stays."""
    inv = write_inventory(
        tmp_path, passphrase=PASS, validators={"v1": 1, "v2": 2}, extra={"dlnet_quorum": {"unsafe": True}}
    )
    net = load_network(inv)
    why = rolling.quorum_without(net, "v1")
    assert why == "without v1, v2 would have no quorum (its quorum set needs v1)"


def test_a_rotation_successor_is_checked_too(tmp_path, core_factory, capsys):
    """Mid-rotation the gate checks a node the inventory does not describe (--also) and leaves out a
    validator stopped on purpose (--without)."""
    core = core_factory(4, threshold=3, close_interval=0.5)
    inv = write_inventory(tmp_path, passphrase=PASS, validators={n: core.nodes[n].port for n in ("v1", "v2", "v3")})
    also = ["--also", f"v1+new=http://127.0.0.1:{core.nodes['v4'].port}"]
    code, out, err = _run(capsys, "-i", inv, "--host", "v2", *also)
    assert code == 0, err
    assert "rolling-gate v2: may restart — v1, v3, v1+new Synced!" in out
    core.set_mode("v4", "lag")
    code, _, err = _run(capsys, "-i", inv, "--host", "v2", *also)
    assert code == 1 and "v1+new is 'Catching up'" in err
    core.set_mode("v4", "ok")
    # The old key's validator stopped: the successor is back without it.
    core.set_mode("v1", "down")
    code, out, err = _run(capsys, "-i", inv, "--host", "v1+new", *also, "--without", "v1", "--after", "--timeout", "20")
    assert code == 0, err
    assert "rolling-gate v1+new: back" in out
    code, _, err = _run(capsys, "-i", inv, "--host", "v2", "--also", "v1+new")
    assert code == 1 and "expected NAME=http://ADDRESS:PORT" in err
