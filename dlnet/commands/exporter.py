"""`dlnet exporter`: serve the network's metrics to Prometheus (or print them once)."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from prometheus_client import generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from dlnet import day2
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.errors import DlnetError
from dlnet.exporter import registry_for


def exporter(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    port: Annotated[
        int | None,
        typer.Option(envvar="DLNET_EXPORTER_PORT", help="Listen port (default: dlnet_exporter_port, 9470)."),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(envvar="DLNET_EXPORTER_LISTEN", help="Listen address (default: dlnet_exporter_listen)."),
    ] = None,
    once: Annotated[bool, typer.Option(help="Scrape once, print the metrics and exit.")] = False,
    as_json: Json = False,
) -> None:
    """Prometheus exporter: ledger close time histogram, ledger, quorum, upgrades, Horizon lag."""
    net, settings = day2.load(inventory, extra_vars)
    registry, _ = registry_for(net, settings.admin_timeout_seconds)
    if once:
        text = generate_latest(registry).decode()
        samples = [
            {"name": s.name, "labels": s.labels, "value": s.value}
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
        ]
        emit(as_json, {"samples": samples}, text.rstrip("\n"))
        return
    bind_port = port if port is not None else settings.exporter_port
    address = listen or settings.exporter_listen
    try:
        server, thread = start_http_server(bind_port, addr=address, registry=registry)
    except OSError as exc:
        raise DlnetError(
            f"exporter: cannot listen on {address}:{bind_port} ({exc.strerror}) — expected a free port — set"
            " dlnet_exporter_port or --port"
        ) from None
    progress(
        f"exporter: serving {len(net.validators)} validator(s) of {net.env} on http://{address}:{bind_port}/metrics"
    )
    try:
        threading.Event().wait()
    finally:
        server.shutdown()
        thread.join(timeout=1)
