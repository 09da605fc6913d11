"""`dlnet drill`'s decisions on a simulated network (simulated clock, no sleeping): percentiles, close
intervals, halt detection by ledger (not `state`), restore on failure and on Ctrl-C, skips, bad input.
The real faults on the real binaries: tests/deploy/test_drill.py."""

from __future__ import annotations

import time

import pytest

from dlnet import drill as dr
from dlnet.cli import main
from dlnet.config import IpfsNode, Network, Organisation, Validator
from dlnet.core_admin import CoreAdminError, Info, Ledger


class Sim:
    """Three validators of one organisation (2 of 3): a ledger a second while `quorum` of them run."""

    def __init__(self, quorum: int = 2) -> None:
        self.t = 0.0
        self.ledger = 100
        self.last_close = 0.0
        self.quorum = quorum
        self.running = {"v1", "v2", "v3"}
        self.sleeps = 0
        self.interrupt_after: int | None = None

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.interrupt_after is not None and self.sleeps >= self.interrupt_after:
            raise KeyboardInterrupt
        self.t += seconds
        if len(self.running) < self.quorum:
            self.last_close = self.t  # stalled: no close is due
        while len(self.running) >= self.quorum and self.t - self.last_close >= 1.0:
            self.ledger += 1
            self.last_close += 1.0


class Admin:
    def __init__(self, sim: Sim, name: str) -> None:
        self.sim, self.name = sim, name

    def info(self) -> Info:
        if self.name not in self.sim.running:
            raise CoreAdminError(f"{self.name}: cannot reach")
        n = self.sim.ledger
        # Like 19.14: still "Synced!" while stalled (reference README item 7).
        return Info("Synced!", Ledger(n, n, 19, 100, 5000000, 500, 0, f"hash{n}"), 19, "net", 2)


class Ops:
    def __init__(self, sim: Sim, fail_stop_of: str | None = None) -> None:
        self.sim = sim
        self.fail_stop_of = fail_stop_of
        self.calls: list[str] = []

    def containers(self) -> dict[tuple[str, str], str]:
        return {(v, "stellar-core"): f"dlnet-t-core-{v}" for v in ("v1", "v2", "v3")}

    def stop(self, name: str) -> None:
        self.calls.append(f"stop {name}")
        if name == self.fail_stop_of:
            raise dr.DrillError(f"docker stop {name} failed")
        self.sim.running.discard(name.rsplit("-", 1)[1])

    def start(self, name: str) -> None:
        self.calls.append(f"start {name}")

    def kill(self, name: str) -> None:
        self.calls.append(f"kill {name}")

    def running(self, name: str) -> bool:
        return True

    def wipe_validator(self, name: str) -> None:
        self.calls.append(f"wipe {name}")

    def restore_validators(self, reinitialise: bool = False) -> None:
        self.calls.append("restore")
        self.sim.running = {"v1", "v2", "v3"}


def network(**kw: object) -> Network:
    return Network(
        env="t",
        passphrase="drill test",
        organisations=[Organisation(name="org1", home_domain="org1.example")],
        stellar_core_version="19.14.0",
        horizon_version="2.26.1",
        accelerate_time=True,
        validators=[
            Validator(
                name=f"v{i}",
                address="127.0.0.1",
                organisation="org1",
                peer_port=1000 + i,
                http_port=2000 + i,
                history_port=3000 + i,
            )
            for i in (1, 2, 3)
        ],
        **kw,
    )


def drill(sim: Sim, ops: Ops, deadline: float = 600, **kw: object) -> dr.Drill:
    return dr.Drill(
        network(**kw),
        ops,
        deadline,
        clock=dr.Clock(sim.now, sim.sleep),
        admins={v: Admin(sim, v) for v in ("v1", "v2", "v3")},  # type: ignore[misc]
    )


def test_percentiles_are_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert dr.percentile(values, 50) == 50.0
    assert dr.percentile(values, 95) == 95.0
    assert dr.percentile([2.5], 95) == 2.5
    assert dr.percentile([], 50) is None


def test_close_intervals_share_a_gap_between_samples() -> None:
    t = dr.Trace()
    for when, ledger in [(0.0, 10), (0.5, 10), (1.0, 11), (2.0, 12), (2.2, 12), (6.0, 14)]:
        t.add(when, ledger)
    assert t.closed == 4
    # 11 has no predecessor time; 12 after 1 s; 13 and 14 share the 4 s gap.
    assert t.intervals() == [1.0, 2.0, 2.0]
    assert t.stalled_for(10.0) == 4.0


def test_f_validators_down_ledgers_keep_closing() -> None:
    sim = Sim()
    ops = Ops(sim)
    [r] = drill(sim, ops).run(["tolerated-failures"])
    assert r.outcome == "pass", r.detail
    assert r.ledgers is not None and r.ledgers >= 6
    assert r.p50 == pytest.approx(1.0, abs=0.21) and r.p95 == pytest.approx(1.0, abs=0.21)
    assert ops.calls.count("restore") == 1 and sum(c.startswith("stop") for c in ops.calls) == 1


def test_quorum_loss_is_seen_by_the_ledger_although_state_says_synced() -> None:
    sim = Sim()
    ops = Ops(sim)
    [r] = drill(sim, ops).run(["quorum-loss"])
    assert r.outcome == "pass", r.detail
    assert r.facts["halted"] is True
    assert r.facts["states_while_halted"] == {"v1": "Synced!"}
    assert r.facts["ledger_after_recovery"] > r.facts["halted_at_ledger"]
    assert ops.calls == [f"stop dlnet-t-core-{n}" for n in r.facts["stopped"]] + ["restore"]
    assert len(r.facts["stopped"]) == 2 and r.facts["stalled"] == ["v1"]


def test_quorum_loss_fails_when_ledgers_keep_closing() -> None:
    sim = Sim(quorum=1)  # a network that does not halt: the drill must say so, not pass
    ops = Ops(sim)
    [r] = drill(sim, ops).run(["quorum-loss"])
    assert r.outcome == "fail" and "expected a halt" in r.detail
    assert "restore" in ops.calls


def test_a_failure_mid_fault_still_restores_what_was_stopped() -> None:
    sim = Sim()
    first, second = dr.plan(network()).breaking
    ops = Ops(sim, fail_stop_of=f"dlnet-t-core-{second}")  # the first is down when stopping the second fails
    [r] = drill(sim, ops).run(["quorum-loss"])
    assert r.outcome == "fail" and "docker stop" in r.detail
    assert ops.calls == [f"stop dlnet-t-core-{first}", f"stop dlnet-t-core-{second}", "restore"]
    assert sim.running == {"v1", "v2", "v3"}


def test_ctrl_c_restores_then_stops() -> None:
    sim = Sim()
    ops = Ops(sim)
    d = drill(sim, ops)
    d.healthy()
    sim.interrupt_after = sim.sleeps + 5  # in the middle of the observation
    with pytest.raises(KeyboardInterrupt):
        d.run(["tolerated-failures", "quorum-loss"])
    assert ops.calls[-1] == "restore" and sim.running == {"v1", "v2", "v3"}


def test_deadline_stops_the_run_and_fails_the_rest() -> None:
    sim = Sim()
    ops = Ops(sim)
    results = drill(sim, ops, deadline=5).run(["tolerated-failures", "quorum-loss"])
    assert [r.outcome for r in results] == ["fail", "fail"]
    assert "deadline" in results[0].detail and results[1].detail.startswith("not run")
    assert "restore" in ops.calls


def test_what_the_inventory_lacks_is_skipped_with_the_reason() -> None:
    sim = Sim()
    d = drill(
        sim, Ops(sim), ipfs=[IpfsNode(name="ipfs1", address="127.0.0.1", swarm_port=1, api_port=2, gateway_port=3)]
    )
    rs = d.run(["horizon-restart", "ipfs-node-down", "service-kill"])
    assert [r.outcome for r in rs] == ["skipped"] * 3
    assert "no Horizon" in rs[0].detail and "has 1" in rs[1].detail and "federation" in rs[2].detail
    assert "skipped" in dr.table(rs) and "0 failed" in dr.table(rs)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--only", "quorum-loss,reboot-the-moon"], "--only reboot-the-moon — expected fault names"),
        (["--deadline", "0"], "--deadline 0 — expected seconds > 0"),
        (["--deadline", "-3"], "--deadline -3 — expected seconds > 0"),
    ],
)
def test_bad_input_is_refused_before_the_inventory_is_read(args, says, capsys) -> None:
    assert main(["drill", "-i", "/nonexistent/inventory", *args]) == 1
    err = capsys.readouterr().err
    assert says in err and "nonexistent" not in err


def test_sigterm_interrupts_like_ctrl_c_so_the_restore_runs() -> None:
    import os
    import signal

    from dlnet.commands.drill import _with_sigterm_as_ctrl_c

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        _with_sigterm_as_ctrl_c(lambda: os.kill(os.getpid(), signal.SIGTERM) or time.sleep(5))
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize(
    ("cut", "attempts", "outcome"),
    [([0, 3], 2, "pass"), ([0, 0, 0], 3, "fail"), ([5], 1, "pass")],
)
def test_service_kill_kills_again_when_no_write_was_in_flight(tmp_path, monkeypatch, cut, attempts, outcome) -> None:
    """A kill that lands between two requests tests nothing mid-request: the fault kills again, at most
    KILL_ATTEMPTS times, and says it failed only when no kill ever hit a request."""
    from dlnet.config import ServicesNode

    sim = Sim()
    d = drill(sim, Ops(sim), services=[ServicesNode(name="svc1", address="127.0.0.1")])
    d.secrets_dir = tmp_path
    (tmp_path / "federation.admin_token").write_text("token\n")
    monkeypatch.setattr(d, "container", lambda host, component: f"dlnet-t-{component}-{host}")
    runs = iter(cut)

    def one_kill(url: str, name: str, token: str) -> dr.KillRun:
        n = next(runs)
        want = {f"r{i}": {"account_id": "G", "memo_type": "id", "memo": str(i)} for i in range(10)}
        return dr.KillRun(want, set(list(want)[:4]), set(), {f"r{i}" for i in range(n)}, dict(want), {}, 1.5)

    monkeypatch.setattr(d, "_kill_amid_writes", one_kill)
    r = dr.Result("service-kill", "pass", "")
    d.service_kill(r)
    assert r.outcome == outcome and r.facts["attempts"] == attempts
    assert ("no write was in flight" in r.detail) == (outcome == "fail")


def test_service_kill_does_not_kill_again_over_a_lost_write(tmp_path, monkeypatch) -> None:
    from dlnet.config import ServicesNode

    sim = Sim()
    d = drill(sim, Ops(sim), services=[ServicesNode(name="svc1", address="127.0.0.1")])
    d.secrets_dir = tmp_path
    (tmp_path / "federation.admin_token").write_text("token\n")
    monkeypatch.setattr(d, "container", lambda host, component: f"dlnet-t-{component}-{host}")
    want = {"r0": {"account_id": "G", "memo_type": "id", "memo": "0"}}
    calls = []

    def lost(url: str, name: str, token: str) -> dr.KillRun:
        calls.append(1)
        return dr.KillRun(want, {"r0"}, set(), set(), {}, {}, 1.0)  # acknowledged, then gone

    monkeypatch.setattr(d, "_kill_amid_writes", lost)
    r = dr.Result("service-kill", "pass", "")
    d.service_kill(r)
    assert len(calls) == 1 and r.outcome == "fail" and "acknowledged writes lost" in r.detail
