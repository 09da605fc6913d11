"""`dlnet tune --slo ...`: find the largest max tx set size that keeps close time within the SLO of idle."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from dlnet import day2, preflight
from dlnet import load as ld
from dlnet import tune as tn
from dlnet import upgrade as up
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.commands.load import admins_for
from dlnet.config import Network
from dlnet.errors import DlnetError


def tune_network(
    net: Network,
    settings: day2.Day2,
    spec: tn.Spec,
    *,
    processes: int = 2,
    plot_path: Path | None = None,
    state: Path | None = None,
    say: Any = progress,
) -> tn.Outcome:
    """Validate, measure, search, apply, record. Nothing changes before every check passed."""
    spec.check()
    admins = admins_for(net, settings.admin_timeout_seconds)
    infos = {}
    for a in admins:
        try:
            infos[a.name] = a.info()
        except DlnetError as exc:
            raise tn.TuneError(f"tune: {exc} — nothing was changed") from None
    tn.check_protocol({n: i.ledger.version for n, i in infos.items()})
    size_before = next(iter(infos.values())).ledger.max_tx_set_size
    horizon = day2.horizon_url(net) if net.components.horizon and net.horizon else None
    u = settings.upgrade

    def set_size(n: int) -> None:
        up.run(
            net,
            up.Request(max_tx_set_size=n),
            timeout=settings.admin_timeout_seconds,
            lead_seconds=u.lead_seconds,
            deadline_seconds=u.deadline_seconds,
            progress=say,
        )

    with ld.Engine(
        net.passphrase,
        admins,
        horizon=horizon,
        processes=processes,
        progress=say,
        ledger_timeout=max(30.0, spec.close_target * 6),
    ) as engine:

        def measure_idle() -> tn.Idle:
            first = engine.watch.latest
            say(f"tune: measuring idle close time for {spec.idle_window:g}s")
            time.sleep(spec.idle_window)
            # A window of exactly three ledger targets holds only two closes when one runs late (5-6 s at a
            # 5 s target): wait for the third, bounded like every other ledger wait.
            engine.watch.wait_for(first + tn.MIN_WINDOW_LEDGERS, spec.close_target * 6)
            return tn.idle_from(engine.watch.between(first, engine.watch.latest))

        def measure_step(rate: float, size: int) -> tn.Measured:
            need = ld.Plan(rate, spec.window).channels_needed(spec.close_target)
            if len(engine.channels) < need:
                engine.fund(need - len(engine.channels), max_ops_per_ledger=size)
                engine.watch.wait_ledgers(1, spec.close_target * 6)  # the funding ledger is not measured
            say(f"tune: offering {rate:g} tx/s for {spec.window:g}s at max tx set size {size}")
            r = engine.step(rate, spec.window)
            return tn.measured_from(r, rate)

        out = tn.run(
            spec,
            size_before=size_before,
            measure_idle=measure_idle,
            measure_step=measure_step,
            set_size=set_size,
            progress=say,
        )
    folder = state or preflight.state_dir(net.env)
    run_file = tn.save(out, folder)
    out.plot = str(tn.plot(out, plot_path or run_file.with_suffix(".png")))
    tn.save(out, folder)  # again, with the plot's path
    return out


def tune(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    slo: Annotated[
        float, typer.Option(help="Allowed stretch of close p50/p95 over idle, a fraction (0.05 = 5 %).")
    ] = 0.05,
    window: Annotated[float, typer.Option(help="Seconds of load per step (at least 3 ledgers).")] = 30.0,
    idle_window: Annotated[float, typer.Option(help="Seconds of idle measurement (at least 3 ledgers).")] = 30.0,
    min_rate: Annotated[float, typer.Option(help="Lower end of the rate search, tx/s.")] = 50.0,
    max_rate: Annotated[float, typer.Option(help="Upper end of the rate search, tx/s (tried first).")] = 1600.0,
    steps: Annotated[int, typer.Option(help="Most load steps to run.")] = 5,
    headroom: Annotated[float, typer.Option(help="max tx set size = rate x close target x headroom.")] = 2.0,
    close_target: Annotated[float, typer.Option(help="Target ledger close time, s (1 on accelerated networks).")] = 5.0,
    deadline: Annotated[float, typer.Option(help="Seconds for the whole run.")] = 1800.0,
    min_size: Annotated[int | None, typer.Option(help="Smallest max tx set size a step may set.")] = None,
    max_size: Annotated[int | None, typer.Option(help="Largest max tx set size a step may set.")] = None,
    processes: Annotated[int, typer.Option(help="Load generator processes.")] = 2,
    dry_run: Annotated[bool, typer.Option(help="Measure at the current size; change nothing.")] = False,
    plot: Annotated[Path | None, typer.Option(help="PNG to write (default: beside the run record).")] = None,
    as_json: Json = False,
) -> None:
    """Closed loop: idle close time, binary search on rate and max tx set size under load, apply, record."""
    spec = tn.Spec(
        slo, window, idle_window, min_rate, max_rate, steps, headroom, close_target, deadline, dry_run,
        min_size, max_size,
    )
    spec.check()  # bad input stops before the inventory or any validator is read
    if not 1 <= processes <= 64:
        raise tn.TuneError(f"tune: --processes {processes} — expected 1 to 64 — pass the number of cores")
    net, settings = day2.load(inventory, extra_vars)
    out = tune_network(net, settings, spec, processes=processes, plot_path=plot)
    emit(as_json, out.to_json(), tn.table(out) + f"\nrecord: {out.record}\nplot: {out.plot}")
