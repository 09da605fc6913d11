#!/usr/bin/env python3
"""Issue 10's benchmark, in one run on this machine: the load generator's signing rate, then `dlnet tune` on a
real 3-validator network with normal 5 s ledgers, then the same load through Horizon, then `dlnet seed` with
1,000 holders on that network.

The network is its own validators-only environment `tunebench` (dlnet/testnet.py, the same generated
inventory the tune test deploys), deployed with deploy/site.yml and removed at the end. With the Horizon
artifact, a PostgreSQL and a Horizon are added after tuning (so they do not share the CPU with the tuning
run); Horizon waits for the first checkpoint (ledger 63, ~5 min at 5 s), which tuning outlasts. The run holds
/tmp/dlnet-network.lock for the whole network half. Without the stellar-core artifact the network half is
skipped with one line and the script exits 0. Upstream ceiling: ~800 tx/s within 5 % of idle close time on
2 cores with 19.14 (shared/reference/stellar-core-19.14/load/).

  .venv/bin/python scripts/bench_load.py [--steps 5] [--window 60] [--no-horizon] [--keep]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlnet import load as ld  # noqa: E402
from dlnet.preflight import Artifacts  # noqa: E402
from dlnet.testnet import Deployment, build_images, real_stellar_core, validators_inventory  # noqa: E402

UPSTREAM_CEILING_TPS = 800  # shared/reference/stellar-core-19.14/load/: ~800 tx/s within 5 % of idle
TARGET_DIRECT, TARGET_HORIZON = 0.9, 0.5
LOCK = "/tmp/dlnet-network.lock"
ENV = "tunebench"


def signing_rate(sign=ld.sign_all) -> float:
    channels = [ld.Channel.new() for _ in range(200)]
    job = ld.Job("dlnet bench ; signing", [(c.seed, c.public, 0) for c in channels], 3000, None, 0, 0, [], None,
                 channels[0].public, 0.0, None, 100, 1 << 32)
    sign(ld.Job(**{**job.__dict__, "count": 200}))  # warm up
    t = time.perf_counter()
    blobs, _ = sign(job)
    return len(blobs) / (time.perf_counter() - t)


def upstream_yardstick(step: dict, idle: dict) -> str:
    """The step as the upstream measurement read it: the mean of whole-second closeTime gaps against idle's
    (800 tx/s was +4.6 % there). Coarse and noisy (one timed-out nomination round in 12 ledgers is +1.7 %):
    printed beside the kit's p50/p95 so the two can be compared, never used to decide."""
    if not step.get("header_mean") or not idle.get("header_mean"):
        return "header mean -"
    return f"header mean {step['header_mean']:.2f} s ({step['header_mean'] / idle['header_mean'] - 1:+.1%} of idle)"


def dlnet(dep: Deployment, *args: str, timeout: float = 3600) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "dlnet", *args, "-i", str(dep.inventory), "--json"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "DLNET_STATE_DIR": str(dep.state)},
        timeout=timeout, check=False,
    )
    (dep.logs / f"dlnet-{args[0]}.log").write_text(proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"error: dlnet {args[0]} failed ({dep.logs}/dlnet-{args[0]}.log): {proc.stderr.strip()[-600:]}")
    return dict(json.loads(proc.stdout))


def deploy(dep: Deployment, log: str) -> float:
    start = time.monotonic()
    proc = dep.playbook("site.yml", log=log)
    if proc.returncode != 0:
        sys.exit(f"error: deploy failed ({dep.logs}/{log}):\n{proc.stdout[-2000:]}")
    return time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    # Close intervals of a 5 s network are 5 or 6 s (close times are whole seconds): a step's p50 is the
    # share of 6 s ledgers, which a window of four ledgers cannot resolve at a 5 % SLO (measured: 20 s steps
    # swung between 5.19 and 6.00 s at loads 168 and 287 tx/s). Twelve ledgers a step.
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--idle-window", type=float, default=60.0)
    ap.add_argument("--min-rate", type=float, default=50.0)
    ap.add_argument("--max-rate", type=float, default=1000.0)
    ap.add_argument("--holders", type=int, default=1000)
    ap.add_argument("--no-horizon", action="store_true")
    ap.add_argument("--keep", action="store_true", help="leave the environment running")
    a = ap.parse_args()

    sign, sdk = signing_rate(), signing_rate(ld.sign_all_sdk)
    print(f"== load generator (one-operation payments with the minSeqNum precondition; load {os.getloadavg()[0]:.1f}"
          f" on {os.cpu_count()} cores)")
    print(f"  signing: {sign:.0f} tx/s per core ({sign / UPSTREAM_CEILING_TPS:.2f} x the upstream ceiling per core;"
          f" stellar-sdk building every transaction: {sdk:.0f} tx/s)")
    if real_stellar_core() is None:
        print("== network: skipped — no stellar-core artifact (artifacts/stellar-core or STELLAR_CORE_BIN)")
        return 0
    art = Artifacts.resolve(ROOT / "artifacts")
    horizon = not a.no_horizon and art.horizon.is_file()
    dest = ROOT / "build" / ENV
    with open(LOCK, "w") as lock:
        print(f"== network: waiting for {LOCK} (shared with other sessions' real networks)", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        dep = validators_inventory(dest, ENV, upgrade_lead_seconds=4)
        build_images(dep.logs, ["base", "stellar-core", "tools", *(["postgres", "horizon"] if horizon else [])])
        dep.playbook("remove-network.yml", log="remove-before.log")
        subprocess.run(["rm", "-rf", str(dep.state)], check=True)
        try:
            return run(dep, a, sign, horizon, dest)
        finally:
            if not a.keep:
                dep.playbook("remove-network.yml", log="remove-after.log")


def run(dep: Deployment, a: argparse.Namespace, sign: float, horizon: bool, dest: Path) -> int:
    took = deploy(dep, "site.log")
    dlnet(dep, "upgrade", "--to-latest")
    t0 = time.monotonic()
    out = dlnet(
        dep, "tune", "--slo", "0.05", "--idle-window", str(a.idle_window), "--window", str(a.window),
        "--min-rate", str(a.min_rate), "--max-rate", str(a.max_rate), "--steps", str(a.steps),
        "--deadline", "1500",
    )
    tune_s = time.monotonic() - t0
    idle, chosen = out["idle"], out["chosen"]
    print(f"== dlnet tune on 3 real validators, 5 s ledgers (deploy {took:.0f} s, tune {tune_s:.0f} s,"
          f" {len(out['steps'])} steps, search ended: {out['stopped']})")
    print(f"  idle close: p50 {idle['p50']:.3f} s, p95 {idle['p95']:.3f} s, slowest {idle['slowest']:.3f} s over"
          f" {idle['ledgers']} ledgers (the nodes' own ledger.age.closed); limits p50 {out['limits']['p50']:.2f} s,"
          f" p95 {out['limits']['p95']:.2f} s")
    print(f"  idle: {idle.get('timeouts')} timed-out nomination rounds in {idle['ledgers']} ledgers (1 s or more each);"
          f" mean of the headers' whole-second closeTime gaps {idle.get('header_mean')} s (the upstream yardstick)")
    for s in out["steps"]:
        print(f"  step: size {s['size']:6d} asked {s['rate']:7.1f} offered {s['offered_tps']:7.1f} applied"
              f" {s['applied_tps'] or 0:7.1f} tx/s, close p50 {s['p50']:.2f} p95 {s['p95']:.2f} s, nomination"
              f" timeouts {s.get('timeouts')}/{s['ledgers']}, {upstream_yardstick(s, idle)}:"
              f" {'ok' if s['ok'] else 'no'} ({s['reason']})")
    applied = (chosen or {}).get("applied_tps") or 0.0
    if chosen:
        print(f"  tuned max tx set size: {out['size_applied']} (at {chosen['rate']:g} tx/s asked, close p95"
              f" {chosen['p95']:.2f} s <= {out['limits']['p95']:.2f} s)")
    else:
        print(f"  tuned max tx set size: none within the SLO; stays {out['size_applied']}")
    ratio = applied / UPSTREAM_CEILING_TPS
    print(f"  applied at the tuned size: {applied:.1f} tx/s = {ratio:.2f} x the upstream {UPSTREAM_CEILING_TPS} tx/s"
          f" (target >= {TARGET_DIRECT}: {'met' if ratio >= TARGET_DIRECT else 'NOT met'})")
    if out["generator_ceiling"]:
        print("  note: the load generator's own ceiling was reached (it offered less than asked)")
    print(f"  signing: {sign:.0f} tx/s per core, {sign / max(applied, 1):.1f} x the applied rate")
    rate = chosen["rate"] if chosen else a.min_rate
    if not horizon:
        print("== through Horizon: skipped — " + ("--no-horizon" if a.no_horizon else "no Horizon artifact"))
    else:
        hdep = validators_inventory(dest, ENV, upgrade_lead_seconds=4, horizon=True)
        # Horizon's per-client rate limit (the kit's default 360,000 an hour = 100 requests/s, Horizon's own
        # 3,600) caps one client's submissions below the 400 tx/s target: measured without it, and said so.
        hdep.extra_vars["horizon_per_hour_rate_limit"] = 0
        # Adding Horizon lists its captive core in every validator's PREFERRED_PEERS: the role refuses to
        # restart all three at once on a live network unless told (the bench's network carries no value).
        hdep.extra_vars["stellar_core_parallel_restart"] = True
        htook = deploy(hdep, "site-horizon.log")
        direct = dlnet(hdep, "load", "--rate", str(rate), "--duration", str(a.window))
        via = dlnet(hdep, "load", "--rate", str(rate), "--duration", str(a.window), "--via-horizon")
        d_tps, h_tps = direct.get("applied_tps") or 0.0, via.get("applied_tps") or 0.0
        print(f"== through Horizon (Horizon + PostgreSQL added after tuning: {htook:.0f} s), {rate:g} tx/s asked"
              f" for {a.window:g} s")
        print(f"  straight to the validators: applied {d_tps:.1f} tx/s; through Horizon (its rate limit off):"
              f" applied {h_tps:.1f} tx/s (statuses {via.get('statuses')}, codes {via.get('codes')})")
        hr = h_tps / UPSTREAM_CEILING_TPS
        print(f"  Horizon: {hr:.2f} x the upstream {UPSTREAM_CEILING_TPS} tx/s (target >= {TARGET_HORIZON}:"
              f" {'met' if hr >= TARGET_HORIZON else 'NOT met'}); {h_tps / d_tps if d_tps else 0:.2f} x direct")
        seed_bench(hdep, a.holders, out["size_applied"])
    return 0


def seed_bench(dep: Deployment, holders: int, size: int) -> None:
    """`dlnet seed` of `holders` new holders at max tx set size `size`: the ledgers that hold the channels'
    transactions, read through Horizon, against the bound ceil(operations / size) + 1."""
    from stellar_sdk import Keypair

    from dlnet import day2
    from dlnet.chain import Horizon

    net, _ = day2.load(dep.inventory)
    with Horizon(day2.horizon_url(net)) as h:
        start = int(h.latest_ledger()["sequence"])
        t0 = time.monotonic()
        seed = dlnet(dep, "seed", "--holders", str(holders))
        took = time.monotonic() - t0
        secrets = dep.state / net.env / "secrets"
        ledgers: dict[int, int] = {}
        for p in secrets.glob("dlc-channel-*.seed"):
            for tx in h.records(f"/accounts/{Keypair.from_secret(p.read_text().strip()).public_key}/transactions",
                                {"order": "desc"}):
                if int(tx["ledger"]) <= start:
                    break
                if tx["source_account"] != Keypair.from_secret(p.read_text().strip()).public_key:
                    continue  # the funder's, creating the channel
                ledgers[int(tx["ledger"])] = ledgers.get(int(tx["ledger"]), 0) + int(tx["operation_count"])
    ops = seed["holder_operations"]
    bound = math.ceil(ops / size) + 1
    print(f"== dlnet seed, {holders} holders at max tx set size {size} ({took:.0f} s): {ops} holder operations in"
          f" {len(ledgers)} ledgers read through Horizon, per ledger {[ledgers[k] for k in sorted(ledgers)]}; bound"
          f" ceil({ops} / {size}) + 1 = {bound}: {'met' if len(ledgers) <= bound else 'NOT met'}")


if __name__ == "__main__":
    raise SystemExit(main())
