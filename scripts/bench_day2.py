"""Benchmarks of the day-2 CLI against the test doubles (loopback, ephemeral ports; no deployment needed).

1. Exporter scrape time with 3 and with 25 validators (stellar-core admin doubles + a Horizon double).
2. Ledgers `dlnet seed` needs for 1,000 DLC trustlines (holders) at the inventory's max tx set size
   (inventories/local dlnet_upgrade.max_tx_set_size) and at genesis' 100, against the Horizon + ledger double.
Prints numbers and ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import generate_latest  # noqa: E402 - after the path setup

from dlnet import day2  # noqa: E402
from dlnet.cli import main  # noqa: E402
from dlnet.exporter import registry_for  # noqa: E402
from tests.doubles.core import CoreNetwork  # noqa: E402
from tests.doubles.horizon import HorizonDouble  # noqa: E402
from tests.doubles.inventory import write_inventory  # noqa: E402

PASS = "dlnet bench network ; 2026"


def scrape_seconds(n: int, rounds: int = 20) -> tuple[float, float]:
    with CoreNetwork(n, passphrase=PASS, protocol_version=19) as core, HorizonDouble(PASS, idle_close=True) as h, \
            tempfile.TemporaryDirectory() as tmp:
        inv = write_inventory(Path(tmp), passphrase=PASS, validators={k: v.port for k, v in core.nodes.items()},
                              horizon_port=int(h.url.rsplit(":", 1)[1]))
        net, settings = day2.load(inv)
        registry, _ = registry_for(net, settings.admin_timeout_seconds)
        generate_latest(registry)  # warm-up and histogram baseline
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            generate_latest(registry)
            times.append(time.perf_counter() - t0)
        return statistics.median(times), max(times)


def collect_only_seconds(n: int, rounds: int = 20) -> float:
    """The exporter's own work per scrape (parsing, building metrics), with the recorded 19.14 answers
    served from memory: no sockets, no double to share the CPU with."""
    import httpx
    from prometheus_client.registry import CollectorRegistry

    from dlnet.exporter import DlnetCollector
    from tests.doubles.core import reference

    bodies = {"/info": json.dumps(reference("http/info-synced.json")).encode(),
              "/metrics": json.dumps(reference("http/metrics.json")).encode()}
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=bodies[r.url.path])))
    with tempfile.TemporaryDirectory() as tmp:
        inv = write_inventory(Path(tmp), passphrase=PASS, validators={f"v{i}": 20000 + i for i in range(n)})
        net, _ = day2.load(inv)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DlnetCollector(net, timeout=2, client=client))
    generate_latest(registry)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        generate_latest(registry)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def seed_ledgers(max_tx_set_size: int, channels: int, holders: int = 1000) -> dict[str, float]:
    # 0.25 s ledgers: long enough for every channel's transaction to arrive before a close (real ledgers: 1-5 s)
    with HorizonDouble(PASS, max_tx_set_size=max_tx_set_size, close_interval=0.25) as h, \
            tempfile.TemporaryDirectory() as tmp:
        os.environ["DLNET_STATE_DIR"] = str(Path(tmp) / "state")
        inv = write_inventory(Path(tmp), passphrase=PASS, validators={"v1": 1},
                              horizon_port=int(h.url.rsplit(":", 1)[1]),
                              extra={"dlnet_dlc": {"home_domain": "org1.dlnet.test", "holders": holders,
                                                   "holder_starting_balance": "50", "channels": channels}})
        out, err = StringIO(), StringIO()
        t0 = time.perf_counter()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["seed", "-i", inv, "--json"])
        seconds = time.perf_counter() - t0
        if code != 0:
            raise SystemExit(f"bench: dlnet seed failed: {err.getvalue().strip().splitlines()[-1]}")
        res = json.loads(out.getvalue())
        busy = [r for r in h.ledger.ledgers if r["tx_set_operation_count"]]
        return {"ledgers": res["ledger_count"], "transactions": res["transactions"], "operations": res["operations"],
                "max_ops_in_a_ledger": max(r["tx_set_operation_count"] for r in busy), "seconds": seconds}


def main_bench() -> None:
    print("== dlnet exporter: scrape time (median / max of 20 scrapes; info + metrics per validator, + Horizon)")
    s3, m3 = scrape_seconds(3)
    s25, m25 = scrape_seconds(25)
    print(f"  3 validators:  {s3 * 1000:7.1f} ms median, {m3 * 1000:7.1f} ms max")
    print(f"  25 validators: {s25 * 1000:7.1f} ms median, {m25 * 1000:7.1f} ms max")
    print(f"  ratio 25/3: {s25 / s3:.2f}x for {25 / 3:.2f}x the validators (probes run in parallel; the doubles"
          " run in the same process and dominate on a small machine)")
    c3, c25 = collect_only_seconds(3), collect_only_seconds(25)
    print(f"  exporter's own work (recorded answers from memory): 3 validators {c3 * 1000:.1f} ms,"
          f" 25 validators {c25 * 1000:.1f} ms, ratio {c25 / c3:.2f}x")
    _, settings = day2.load(ROOT / "inventories" / "local")
    configured = settings.upgrade.max_tx_set_size or 100
    channels = settings.dlc.channels
    print("== dlnet seed: ledgers needed for 1,000 DLC trustlines (1,000 holders: create + trust + authorize)")
    for size, ch in sorted({(configured, channels), (100, channels), (configured, 1)}):
        r = seed_ledgers(size, ch)
        label = "inventory's" if size == configured else "genesis"
        print(f"  max tx set size {size:5d} ({label}), {ch} channel(s): {r['ledgers']:.0f} ledgers,"
              f" {r['transactions']:.0f} transactions, {r['operations']:.0f} operations,"
              f" at most {r['max_ops_in_a_ledger']:.0f} ops in one ledger,"
              f" {r['operations'] / r['ledgers']:.1f} ops/ledger, {r['seconds']:.1f} s on the double")


if __name__ == "__main__":
    main_bench()
