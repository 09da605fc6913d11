#!/usr/bin/env python3
"""Deployment and day-2 benchmark on the real network: inventories/local deployed as environment `bench`
(containers dlnet-bench-*) with the real stellar-core and Horizon artifacts, then removed.

Prints: image builds with a warm cache; `make up` from cached images to all healthy; the idempotent re-run;
`make down && make up` back to the same chain; `dlnet upgrade` arm-to-applied; `dlnet seed` for 1,000
holders (seconds and ledgers); the dlnet exporter's scrape time against the 3 real validators.
Targets (issue 8, 2 cores): first `make up` under 45 s, re-run under 15 s.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchnet import ENV, INVENTORY, ROOT, SKIP, bench_network, build_images, changed, have_binaries

TARGET_UP, TARGET_RERUN = 45.0, 15.0


def validator_ledger() -> tuple[int, str]:
    info = httpx.get("http://127.0.0.1:11626/info", timeout=5).json()["info"]
    return int(info["ledger"]["num"]), info["ledger"]["hash"]


def scrape_ms(rounds: int = 20) -> tuple[float, float]:
    from prometheus_client import generate_latest

    from dlnet import day2
    from dlnet.exporter import registry_for

    net, settings = day2.load(ROOT / INVENTORY, [f"dlnet_env={ENV}"])
    registry, _ = registry_for(net, settings.admin_timeout_seconds)
    generate_latest(registry)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        generate_latest(registry)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, max(times) * 1000


def main() -> int:
    if not have_binaries():
        print(f"deploy benchmark skipped: {SKIP}")
        return 0
    cached = build_images()
    with bench_network(deploy=False) as net:
        start = time.monotonic()
        up, _ = net.play("site.yml")
        to_healthy = net.until_healthy(start)
        rerun, out = net.play("site.yml")
        rerun_changed = changed(out)
        before = validator_ledger()
        down, _ = net.play("stop-network.yml")
        start = time.monotonic()
        net.play("site.yml")
        resumed = net.until_healthy(start)
        after = validator_ledger()
        size = 1000 + int(time.time()) % 500  # a value the header does not hold yet
        upgrade_s, upgrade = net.dlnet("upgrade", "--max-tx-set-size", str(size))
        seed_s, seed = net.dlnet("seed", "--holders", "1000")
        scrape_med, scrape_max = scrape_ms()
    print(f"deploy benchmark (inventories/local as env '{ENV}', real stellar-core and Horizon)")
    print("  image build times with a warm cache (s): " + ", ".join(f"{k} {v:.1f}" for k, v in cached.items()))
    print(f"  make up, cached images -> all healthy:  {to_healthy:6.1f} s (playbook {up:.1f} s;"
          f" target < {TARGET_UP:.0f} s, ratio {to_healthy / TARGET_UP:.2f})")
    print(f"  idempotent re-run:                     {rerun:6.1f} s, changed={rerun_changed}"
          f" (target < {TARGET_RERUN:.0f} s, ratio {rerun / TARGET_RERUN:.2f}; re-run / first {rerun / up:.2f})")
    print(f"  make down, then make up -> all healthy: {down:.1f} s + {resumed:.1f} s; ledger {before[0]} before,"
          f" {after[0]} after ({'same chain, resumed' if after[0] >= before[0] else 'CHAIN RESTARTED'})")
    print(f"  dlnet upgrade max tx set size {size}, arm -> applied on every validator: {upgrade_s:6.1f} s"
          f" (changed={upgrade.get('changed')})")
    print(f"  dlnet seed --holders 1000: {seed_s:6.1f} s, {seed.get('ledger_count')} ledgers,"
          f" {seed.get('transactions')} transactions, {seed.get('operations')} operations")
    print(f"  dlnet exporter scrape, 3 real validators + Horizon: {scrape_med:.1f} ms median, {scrape_max:.1f} ms max")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
