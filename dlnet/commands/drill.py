"""`dlnet drill`: scripted faults against the deployed network, a table of measured outcomes (issue 12)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from dlnet import day2
from dlnet import drill as dr
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.errors import DlnetError
from dlnet.keys import secrets_dir
from dlnet.preflight import state_dir


def drill(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    only: Annotated[
        str | None, typer.Option(help=f"Comma-separated faults to run (default: all): {', '.join(dr.FAULTS)}.")
    ] = None,
    deadline: Annotated[float, typer.Option(help="Seconds for the whole drill; every wait is cut to it.")] = 900,
    as_json: Json = False,
) -> None:
    """Stop, wipe and kill parts of the deployed network on purpose, measure what the rest does, put everything
    back. Exit 0 only when every fault that ran passed (faults this inventory cannot run are skipped)."""
    faults = dr.parse_only(only)  # bad input stops here, before the inventory or anything deployed is touched
    seconds = dr.check_deadline(deadline)
    net, settings = day2.load(inventory, extra_vars)
    ops = dr.DockerOps(
        env=net.env, inventory=str(inventory), extra_vars=list(extra_vars or []), log=state_dir(net.env) / "drill.log"
    )
    run = dr.Drill(
        net,
        ops,
        seconds,
        admin_timeout=settings.admin_timeout_seconds,
        progress=progress,
        secrets_dir=secrets_dir(net.env),
    )
    results = _with_sigterm_as_ctrl_c(lambda: run.run(faults))
    failed = [r.fault for r in results if r.outcome == "fail"]
    emit(as_json, {"env": net.env, "ok": not failed, "results": [r.to_json() for r in results]}, dr.table(results))
    if failed:
        raise DlnetError(f"drill: {net.env}: {', '.join(failed)} failed — see the table (DETAIL) and {ops.log}")


def _with_sigterm_as_ctrl_c(work):  # type: ignore[no-untyped-def]
    """SIGTERM (a CI timeout, `kill`) interrupts like Ctrl-C, so the drill still puts back what it stopped."""
    if threading.current_thread() is not threading.main_thread():
        return work()

    def interrupt(_signum, _frame):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        return work()
    finally:
        signal.signal(signal.SIGTERM, previous)
