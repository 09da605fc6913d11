"""dlnet tune's decisions (SLO arithmetic, binary search, bad input, restoring the size) and the engine's
statistics, driven by measured steps given by the test (no timing, no network)."""

from __future__ import annotations

import pytest

from dlnet import chain
from dlnet import load as ld
from dlnet import tune as tn
from dlnet.cli import main

IDLE = tn.Idle(p50=5.0, p95=6.0, mean=5.2, ledgers=10)


def _m(rate, p50=5.0, p95=6.0, refused=0, offered=None, ledgers=6, accepted=100, applied=100):
    return tn.Measured(
        rate,
        offered if offered is not None else rate,
        rate,
        p50,
        p95,
        accepted=accepted,
        applied=applied,
        refused_queue=refused,
        ledgers=ledgers,
    )


def test_limits_are_idle_plus_slo():
    assert tn.limits(IDLE, 0.05) == pytest.approx((5.25, 6.3))


def test_p95_limit_starts_from_the_slowest_idle_ledger():
    # 12 idle ledgers of a 5 s network, one of them 6 s (close times are whole seconds): p95 5.455 s.
    idle = tn.idle_from([ld.Close(n, 5 * n, 5.0 * n) for n in range(1, 13)] + [ld.Close(13, 66, 66.0)])
    assert idle.p95 == pytest.approx(5.45, abs=0.01) and idle.slowest == pytest.approx(6.0)
    p50_max, p95_max = tn.limits(idle, 0.05)
    assert p50_max == pytest.approx(5.25) and p95_max == pytest.approx(6.3)
    # One 6 s ledger under load is what idle showed too: accepted; a 7 s one is not.
    assert tn.judge(_m(100, p50=5.0, p95=6.02), idle, 0.05, 1000).ok
    assert not tn.judge(_m(100, p50=5.0, p95=7.0), idle, 0.05, 1000).ok
    # Without a slowest ledger (older records), the p95 is the reference as before.
    assert tn.limits(tn.Idle(5.0, 5.45), 0.05)[1] == pytest.approx(5.7225)


@pytest.mark.parametrize(
    ("m", "ok", "why"),
    [
        (_m(100), True, "within SLO"),
        (_m(100, p50=5.3), False, "p50 5.30s > 5.25s"),
        (_m(100, p95=6.31), False, "p95 6.31s > 6.30s"),
        (_m(100, refused=3), False, "3 refused for queue limits"),
        (_m(100, applied=90), False, "10 accepted but not applied"),
        (_m(100, ledgers=2), False, "only 2 ledgers"),
    ],
)
def test_judge(m, ok, why):
    step = tn.judge(m, IDLE, 0.05, 1000)
    assert step.ok is ok
    assert why in step.reason


def test_generator_ceiling_is_reported():
    step = tn.judge(_m(1000, offered=600), IDLE, 0.05, 10000)
    assert step.ceiling and step.ok and "generator ceiling" in step.reason


def _run(spec, network, size_before=100, set_size=None):
    """network: rate -> Measured; returns the outcome and the sizes set."""
    sizes = []
    out = tn.run(
        spec,
        size_before=size_before,
        measure_idle=lambda: IDLE,
        measure_step=lambda rate, size: network(rate),
        set_size=set_size or sizes.append,
    )
    return out, sizes


def test_binary_search_finds_the_knee_and_applies_its_size():
    spec = tn.Spec(min_rate=100, max_rate=1600, steps=6, window=15, idle_window=15)
    # The close time stretches above 800 tx/s (the upstream measurement's knee).
    out, sizes = _run(spec, lambda r: _m(r, p50=5.0 if r <= 800 else 6.0, p95=6.0 if r <= 800 else 7.0))
    rates = [s.rate for s in out.steps]
    assert rates[:3] == [1600, 850, 475]
    assert out.chosen is not None and out.chosen.rate <= 800
    assert all(s.rate > 800 for s in out.steps if not s.ok)
    assert out.next_larger is not None and not out.next_larger.ok
    assert out.size_applied == spec.size_for(out.chosen.rate) == sizes[-1]
    assert sizes[0] == spec.size_for(1600)


def test_an_idle_baseline_above_the_close_target_is_measured_again_then_refused():
    """Limits are idle x (1 + slo): an idle network already a nomination round late (p50 6 s at a 5 s
    target, seen once on the bench) would let every step through."""
    spec = tn.Spec(max_rate=400, steps=2, window=15, idle_window=15)
    late = tn.Idle(p50=6.0, p95=6.0, ledgers=10)
    idles = iter([late, IDLE])
    sizes: list[int] = []
    said: list[str] = []
    out = tn.run(spec, size_before=100, measure_idle=lambda: next(idles), measure_step=lambda r, s: _m(r),
                 set_size=sizes.append, progress=said.append)
    assert out.idle == IDLE and any("measuring idle again" in m for m in said)
    calls = []

    def always_late() -> tn.Idle:
        calls.append(1)
        return late

    sizes.clear()
    with pytest.raises(tn.TuneError, match=r"p50 6.00s, more than 5% above its 5s target"):
        tn.run(spec, size_before=100, measure_idle=always_late, measure_step=lambda r, s: _m(r),
               set_size=sizes.append)
    assert len(calls) == 1 + tn.IDLE_REMEASURES and sizes == []  # bounded, and nothing changed


def test_top_of_range_accepted_stops_at_once():
    out, sizes = _run(tn.Spec(max_rate=400, steps=5, window=15, idle_window=15), lambda r: _m(r))
    assert [s.rate for s in out.steps] == [400]
    assert out.stopped == "top of range" and out.size_applied == 4000 and sizes == [4000]
    assert "raise --max-rate" in tn.table(out)


def test_no_step_within_slo_restores_size_before():
    out, sizes = _run(tn.Spec(steps=3, window=15, idle_window=15), lambda r: _m(r, refused=1), size_before=777)
    assert out.chosen is None and out.size_applied == 777 and sizes[-1] == 777


def test_dry_run_changes_nothing():
    out, sizes = _run(tn.Spec(steps=3, window=15, idle_window=15, dry_run=True), lambda r: _m(r))
    assert sizes == [] and out.size_applied is None
    assert all(s.size == 100 for s in out.steps)


def test_interrupt_restores_the_size_in_force_before():
    calls = {"n": 0}

    def network(rate):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return _m(rate, p50=9.0)

    sizes = []
    with pytest.raises(KeyboardInterrupt):
        tn.run(
            tn.Spec(steps=5, window=15, idle_window=15),
            size_before=321,
            measure_idle=lambda: IDLE,
            measure_step=lambda r, s: network(r),
            set_size=sizes.append,
        )
    assert sizes[0] != 321 and sizes[-1] == 321


def test_deadline_bounds_the_search():
    t = iter(range(0, 100000, 1000))
    out = tn.run(
        tn.Spec(steps=10, window=15, idle_window=15, deadline=2500),
        size_before=100,
        measure_idle=lambda: IDLE,
        measure_step=lambda r, s: _m(r, p50=9),
        set_size=lambda n: None,
        clock=lambda: next(t),
    )
    assert out.stopped == "deadline" and len(out.steps) < 10


@pytest.mark.parametrize(
    ("spec", "msg"),
    [
        (tn.Spec(slo=0), "--slo 0"),
        (tn.Spec(slo=-0.1), "--slo -0.1"),
        (tn.Spec(window=14.9), "expected at least 3 ledgers"),
        (tn.Spec(idle_window=2, close_target=1), "--idle-window 2s"),
        (tn.Spec(min_rate=0), "--min-rate 0"),
        (tn.Spec(max_rate=-5), "--max-rate -5"),
        (tn.Spec(min_size=0), "--min-size 0"),
    ],
)
def test_bad_input_refused_before_anything(spec, msg):
    touched = []
    with pytest.raises(tn.TuneError, match="tune: ") as err:
        tn.run(
            spec,
            size_before=100,
            measure_idle=lambda: touched.append("idle") or IDLE,
            measure_step=lambda r, s: touched.append("step"),
            set_size=touched.append,
        )
    assert msg in str(err.value) and touched == []


def test_protocol_zero_refused():
    with pytest.raises(tn.TuneError, match="protocol v1 0"):
        tn.check_protocol({"v1": 0, "v2": 19})
    tn.check_protocol({"v1": 19})


def test_cli_refuses_bad_input_without_an_inventory(capsys):
    assert main(["tune", "-i", "/nonexistent", "--slo", "0"]) == 1
    assert "--slo 0" in capsys.readouterr().err
    assert main(["load", "-i", "/nonexistent", "--rate", "-1"]) == 1
    assert "--rate -1" in capsys.readouterr().err


def test_record_and_status_line(tmp_path):
    out, _ = _run(tn.Spec(max_rate=400, steps=1, window=15, idle_window=15), lambda r: _m(r, p95=5.9))
    tn.save(out, tmp_path)
    rec = tn.load_record(tmp_path)
    assert rec is not None
    line = tn.summary_line(rec)
    assert line.startswith("max tx set size 4000 (tuned on ") and "at 400 tx/s, close p95 5.90 s)" in line
    assert tn.plot(out, tmp_path / "p.png").stat().st_size > 1000


def test_close_stats_from_watched_ledgers():
    closes = [ld.Close(10 + i, 1000 + 5 * i, 100.0 + 5 * i + (0.5 if i == 3 else 0), txs=i, ops=i) for i in range(5)]
    st = ld.close_stats(closes)
    assert st.ledgers == 4 and st.txs == 1 + 2 + 3 + 4 and st.header_gaps == [5, 5, 5, 5]
    assert st.gaps == [5.0, 5.0, 5.5, 4.5] and st.p50 == 5.0
    assert ld.percentile([1, 2, 3, 4], 50) == 2.5


def test_result_code_of_a_recorded_error():
    # The recorded 19.14 answer to a transaction at protocol 0 (tests/doubles/reference).
    assert chain.result_code("AAAAAAAAAGT////0AAAAAA==") == "txNOT_SUPPORTED"
    assert chain.horizon_code("txNOT_SUPPORTED") == "tx_not_supported"


def test_plan_refuses_nonsense():
    for plan, msg in (
        (ld.Plan(0, 10), "--rate 0"),
        (ld.Plan(10, 0), "--duration 0"),
        (ld.Plan(10, 5, accounts=0), "--accounts 0"),
        (ld.Plan(10, 5, offers=2), "--offers 2"),
    ):
        with pytest.raises(ld.LoadError, match=msg):
            plan.check()
    assert ld.Plan(100, 30).channels_needed(5) == 1500


def test_status_and_exporter_show_the_tuned_size(tmp_path, monkeypatch):
    from prometheus_client import generate_latest

    from dlnet import status
    from dlnet.config import Network
    from dlnet.exporter import registry_for
    from dlnet.preflight import state_dir

    monkeypatch.setenv("DLNET_STATE_DIR", str(tmp_path))
    out, _ = _run(tn.Spec(max_rate=400, steps=1, window=15, idle_window=15), lambda r: _m(r, p95=5.9))
    net = Network.model_construct(
        env="tunetest",
        validators=[],
        horizon=[],
        postgres=[],
        ipfs=[],
        prometheus=[],
        components=Network.model_fields["components"].default,
    )
    tn.save(out, state_dir("tunetest"))
    text = status.table(status.gather(net, 0.5))
    assert "max tx set size 4000 (tuned on " in text and "close p95 5.90 s)" in text
    metrics = generate_latest(registry_for(net, 0.5)[0]).decode()
    assert 'dlnet_tune_max_tx_set_size{environment="tunetest"} 4000.0' in metrics
    assert 'dlnet_tune_close_p95_seconds{environment="tunetest"} 5.9' in metrics


def test_close_intervals_come_from_the_nodes_own_timer(reference):
    import json

    # The recorded 19.14 `metrics`: ledger.age.closed is a bucketed timer in ms (3 + 9 closes).
    body = json.loads((reference / "normal-5s" / "http" / "metrics.json").read_text())["body"]["metrics"]
    total, count = ld.closed_age_of(body)
    assert count == 12 and total == pytest.approx((12021.1 + 47037.5) / 1000)
    assert ld.closed_age_of({}) is None
    # Where the node timed a ledger, its interval wins over the watcher's poll.
    closes = [ld.Close(1, 0, 0.0), ld.Close(2, 5, 5.3, interval=5.0012), ld.Close(3, 10, 10.1)]
    assert ld.close_stats(closes).gaps == [5.0012, 4.8]


def test_nomination_timeouts_are_counted_per_ledger_from_the_nodes_metrics(reference):
    import json
    from types import SimpleNamespace

    # The recorded idle 19.14 network: 3 of its 12 slots timed out in nomination round one.
    body = json.loads((reference / "normal-5s" / "http" / "metrics.json").read_text())["body"]["metrics"]
    assert ld.nomination_timeouts_of(body) == 3
    assert ld.nomination_timeouts_of({}) is None

    class Node:
        """A validator whose `metrics` say 0, 1, 1, 3 timed-out rounds in all after ledgers 10..13."""

        def __init__(self):
            self.timeouts = iter([0, 1, 1, 3])

        def metrics(self):
            return {"scp.timeout.nominate": {"type": "histogram", "sum": next(self.timeouts)}}

    watch = ld.LedgerWatch(Node())  # type: ignore[arg-type]
    for i, close_time in enumerate([100, 105, 111, 116]):
        info = SimpleNamespace(ledger=SimpleNamespace(num=10 + i, close_time=close_time))
        watch._record(info, 1000.0 + close_time, baseline=i == 0)  # type: ignore[arg-type]
    assert [c.timeouts for c in watch.closes] == [None, 1, 0, 2]
    st = ld.close_stats(watch.closes)
    assert st.nomination_timeouts == 3 and st.header_gaps == [5, 6, 5] and st.header_mean == pytest.approx(5.333)
    # A ledger the watcher missed spreads its timeouts over two: the sum is then unknown.
    gap = [watch.closes[0], watch.closes[1], ld.Close(13, 116, 1116.0, timeouts=None)]
    assert ld.close_stats(gap).nomination_timeouts is None


def test_the_table_says_how_many_nomination_rounds_timed_out():
    idle = tn.Idle(p50=5.0, p95=6.0, mean=5.25, ledgers=12, timeouts=3)
    m = _m(300, p50=5.6)
    m.timeouts = 5
    step = tn.judge(m, idle, 0.05, 3000)
    assert step.timeouts == 5 and not step.ok
    out = tn.Outcome(idle, [step], None, 100, 100, False, 0.05, "2026-12-08T00:00:00Z", "done")
    text = tn.table(out)
    assert "(nomination timeouts 3/12)" in text.splitlines()[0]
    assert "NOM. TIMEOUTS" in text and " 5/6 " in text
    assert "nomination timeouts 5/6" in tn._row(step)


def test_applied_rate_counts_only_the_ledgers_that_carried_load():
    closes = [ld.Close(1, 0, 0.0, txs=0), ld.Close(2, 5, 5.0, 250, 250, 5.0), ld.Close(3, 10, 10.0, 250, 250, 5.0),
              ld.Close(4, 15, 15.0, 0, 0, 5.0), ld.Close(5, 20, 20.0, 0, 0, 5.0)]
    assert ld.applied_rate_span(closes) == (500, 10.0)  # 50 tx/s, not 500 / 20 s
    assert ld.applied_rate_span(closes[:1]) == (None, 0.0)
    # The window starts and ends inside the first and last busy ledgers: the full ones in between give the rate.
    ramp = [ld.Close(1, 0, 0.0, txs=0), ld.Close(2, 5, 5.0, 100, 100, 5.0), ld.Close(3, 10, 10.0, 500, 500, 5.0),
            ld.Close(4, 15, 15.0, 500, 500, 5.0), ld.Close(5, 20, 20.0, 50, 50, 5.0), ld.Close(6, 25, 25.0, 0, 0, 5.0)]
    assert ld.applied_rate_span(ramp) == (1000, 10.0)


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["--slo", "-0.05"], "--slo -0.05"),
        (["--window", "10"], "--window 10s"),
        (["--idle-window", "14"], "--idle-window 14s"),
        (["--min-rate", "-1"], "--min-rate -1"),
        (["--max-rate", "0"], "--max-rate 0"),
        (["--min-size", "0"], "--min-size 0"),
        (["--max-size", "-3"], "--max-size -3"),
    ],
)
def test_cli_refuses_bad_tune_input_before_reading_the_network(capsys, args, msg):
    assert main(["tune", "-i", "/nonexistent", *args]) == 1
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1, err


def test_network_below_protocol_1_is_refused_before_any_change(tmp_path, core_factory, capsys, monkeypatch):
    from tests.doubles.inventory import write_inventory

    monkeypatch.setenv("DLNET_STATE_DIR", str(tmp_path / "state"))
    core = core_factory(3, protocol_version=0)  # genesis: protocol 0 refuses every transaction
    inv = write_inventory(tmp_path, passphrase=core.passphrase, validators={k: v.port for k, v in core.nodes.items()})
    assert main(["tune", "-i", inv, "--window", "15", "--idle-window", "15"]) == 1
    err = capsys.readouterr().err
    assert "protocol" in err and "dlnet upgrade --to-latest" in err and len(err.strip().splitlines()) == 1, err
    assert all(not n.armed and not n.upgrade_requests for n in core.nodes.values())
    assert not (tmp_path / "state" / "test" / "tune").exists()


@pytest.mark.parametrize("offers", [0.0, 0.25])
def test_fast_signer_makes_the_envelopes_stellar_sdk_makes(offers):
    """The generator packs each channel's transaction once and rewrites only its sequence number: the
    envelopes must be byte for byte those stellar-sdk builds and signs (payments and DEX offers)."""
    from stellar_sdk import Keypair

    channels = [ld.Channel.new() for _ in range(7)]
    known = [(c.seed, c.public, 0 if i % 2 else (77 << 32) + 5) for i, c in enumerate(channels)]
    issuer = Keypair.random().public_key if offers else None
    job = ld.Job("dlnet test ; signer", known, 60, None, 0, 0, [], None, channels[0].public, offers, issuer, 100,
                 1 << 32, index=1)
    fast, sdk = ld.sign_all(job), ld.sign_all_sdk(job)
    assert fast == sdk and len(set(fast[0])) == 60


def test_horizon_submission_reads_horizon_2_26_answers():
    """Through Horizon: 200 applied, 400 with result codes refused, 504 timed out, no answer unreachable."""
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from dlnet import load as ld

    seen: list[str] = []
    answers = {"AAAA": (200, b'{"successful": true}'),
               "BBBB": (400, b'{"extras": {"result_codes": {"transaction": "tx_bad_seq"}}}'),
               "CCCC": (400, b'{"extras": {"result_codes": {"transaction": "tx_try_again_later"}}}'),
               "DDDD": (504, b'{"status": 504}'), "EEEE": (500, b"oops")}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = self.rfile.read(int(self.headers["Content-Length"])).decode()
            seen.append(self.path + " " + form + " " + self.headers["Content-Type"])
            code, body = answers[form.removeprefix("tx=")]
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ep = ld.Endpoint("127.0.0.1", srv.server_address[1], timeout=5)

        async def every() -> list[tuple[str, str | None]]:
            return list(await asyncio.gather(*(ep.horizon_submit(b) for b in answers)))

        got = asyncio.run(every())
    finally:
        srv.shutdown()
    assert got == [("PENDING", None), ("ERROR", "tx_bad_seq"), ("TRY_AGAIN_LATER", "tx_try_again_later"),
                   ("TIMEOUT", None), ("ERROR", "HTTP 500")]
    assert sorted(seen)[0] == "/transactions tx=AAAA application/x-www-form-urlencoded"


def test_horizon_clients_drop_idle_connections_before_horizon_does():
    from dlnet.chain import HORIZON_KEEPALIVE_SECONDS, Horizon

    assert HORIZON_KEEPALIVE_SECONDS < 5.0  # Horizon's http.Server ReadTimeout (its idle limit)
    with Horizon("http://horizon.invalid") as h:
        assert h.client._transport._pool._keepalive_expiry == HORIZON_KEEPALIVE_SECONDS


def test_core_endpoint_speaks_one_request_per_connection_as_stellar_core_does(core_factory):
    """The load generator's own submitter: stellar-core (and its double) answer one request per connection."""
    import asyncio
    import socket

    from stellar_sdk import Account, Keypair, TransactionBuilder

    from dlnet import load as ld

    core = core_factory(1, protocol_version=19)
    [node] = core.nodes.values()
    kp = Keypair.random()
    env = (TransactionBuilder(Account(kp.public_key, 1), core.passphrase, base_fee=100)
           .append_bump_sequence_op(5).set_timeout(0).build())
    env.sign(kp)
    ep = ld.Endpoint.of(core.url(node.name))

    async def both() -> list[tuple[str, str | None]]:
        return [await ep.core_submit(b) for b in (env.to_xdr(), env.to_xdr(), "not+xdr/==")]

    assert asyncio.run(both()) == [("PENDING", None), ("DUPLICATE", None), ("ERROR", "exception")]
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = ld.Endpoint("127.0.0.1", s.getsockname()[1], timeout=2)
    with pytest.raises(OSError):
        asyncio.run(closed.core_submit(env.to_xdr()))
    with pytest.raises(ld.LoadError, match="expected http://HOST:PORT"):
        ld.Endpoint.of("https://core:11626")
