#!/usr/bin/env python3
"""Benchmarks of the participant services (run by `make bench`): numbers and ratios, never pass/fail.

- federation: SEP-2 name and reverse lookups per second over HTTP (uvicorn, real PostgreSQL), p50/p99;
- bridge: payment submissions per second against the Horizon + ledger double (each waits for its ledger,
  as with real Horizon), p50/p99, and idempotent replays per second (a retried key: no new payment).

Needs PostgreSQL's initdb (Debian postgresql); prints one skip line otherwise.
"""

from __future__ import annotations

import logging
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from stellar_sdk import Keypair  # noqa: E402

from tests.services import pg  # noqa: E402

TOKEN = "bench-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def serve(app) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = pg.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, t


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def run(label: str, calls: list, workers: int) -> tuple[float, list[float]]:
    lat: list[float] = []
    lock = threading.Lock()

    def one(fn) -> None:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        with lock:
            lat.append(dt)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, calls))
    total = time.perf_counter() - t0
    rate = len(calls) / total
    print(f"{label:<44} {rate:9.1f} /s   p50 {statistics.median(lat) * 1000:7.2f} ms"
          f"   p99 {pct(lat, 99) * 1000:7.2f} ms   (n={len(calls)}, {workers} clients)")
    return rate, lat


def quiet() -> None:
    for name in ("dlnet.federation", "dlnet.bridge"):
        logging.getLogger(name).setLevel(logging.WARNING)


def bench_federation(cluster: pg.Cluster) -> dict[str, float]:
    from dlnet.services.federation import create_app
    from dlnet.services.settings import DatabaseSettings, FederationSettings

    db = DatabaseSettings(dsn=cluster.dsn(cluster.new_database()), password_file=cluster.password_file, pool_max=8)
    s = FederationSettings(network_passphrase="bench", database=db, home_domain="org1.bench",
                           public_url="http://127.0.0.1", rate_limit_per_minute=0, log_level="WARNING")
    url, server, t = serve(create_app(s, admin_token=TOKEN))
    quiet()
    accounts = [Keypair.random().public_key for _ in range(1000)]
    with httpx.Client() as c:
        for i, a in enumerate(accounts):
            c.put(f"{url}/admin/records/user{i}", json={"account_id": a}, headers=AUTH).raise_for_status()
    client = httpx.Client(limits=httpx.Limits(max_connections=16))
    n = 2000
    names = [lambda i=i: client.get(f"{url}/federation", params={"q": f"user{i % 1000}*org1.bench", "type": "name"})
             for i in range(n)]
    ids = [lambda i=i: client.get(f"{url}/federation", params={"q": accounts[i % 1000], "type": "id"})
           for i in range(n)]
    miss = [lambda i=i: client.get(f"{url}/federation", params={"q": f"nobody{i}*org1.bench", "type": "name"})
            for i in range(n)]
    out = {}
    out["name"], _ = run("federation: name lookups", names, 4)
    out["id"], _ = run("federation: reverse (id) lookups", ids, 4)
    out["miss"], _ = run("federation: unknown names (404)", miss, 4)
    out["name1"], _ = run("federation: name lookups, one client", names[:500], 1)
    client.close()
    server.should_exit = True
    t.join(10)
    print(f"{'federation: 4 clients / 1 client':<44} {out['name'] / out['name1']:9.2f} x")
    return out


def bench_bridge(cluster: pg.Cluster, tmp: Path) -> dict[str, float]:
    from dlnet.services.bridge import create_app
    from dlnet.services.settings import BridgeSettings, DatabaseSettings
    from tests.doubles.horizon import HorizonDouble
    from tests.services.ledger_setup import Net

    passphrase = "dlnet bench network"
    horizon = HorizonDouble(passphrase, max_tx_set_size=1000)
    horizon.start()
    net = Net(horizon.url, passphrase)
    payers = [Keypair.random() for _ in range(2)]
    dest = Keypair.random()
    net.fund(*payers, dest, amount="100000")
    files = []
    for i, kp in enumerate(payers):
        f = tmp / f"p{i}.seed"
        f.write_text(kp.secret)
        files.append(f)
    hook = tmp / "hook"
    hook.write_text("h" * 32)
    db = DatabaseSettings(dsn=cluster.dsn(cluster.new_database()), password_file=cluster.password_file, pool_max=8)
    s = BridgeSettings(network_passphrase=passphrase, database=db, horizon_url=horizon.url, follow=False,
                       accounts=[{"name": f"p{i}", "seed_file": f} for i, f in enumerate(files)],
                       webhook_secret_file=hook, rate_limit_per_minute=0, log_level="WARNING",
                       # the double's ledger clock runs ahead of the wall clock (>= 1 s per ledger)
                       tx_timeout=86400)
    url, server, t = serve(create_app(s, api_token=TOKEN))
    quiet()
    client = httpx.Client(limits=httpx.Limits(max_connections=16), timeout=60)

    def pay(key: str, src: str):
        def call():
            r = client.post(f"{url}/payments", headers=AUTH | {"Idempotency-Key": key},
                            json={"source": src, "destination": dest.public_key, "asset": "native", "amount": "0.01"})
            if r.status_code != 200:
                raise RuntimeError(f"payment failed: {r.status_code} {r.text[:200]}")
        return call

    out = {}
    n = 150
    from stellar_sdk import Asset

    # Baseline: the same payment built, signed and submitted directly with stellar-sdk (no bridge).
    direct = [lambda: net.tx(payers[1], lambda b: b.append_payment_op(dest.public_key, Asset.native(), "0.01"))
              for _ in range(50)]
    out["direct"], _ = run("baseline: stellar-sdk submit to the double", direct, 1)
    out["one"], _ = run("bridge: payments, one source account", [pay(f"a{i}", "p0") for i in range(n)], 1)
    out["two"], _ = run("bridge: payments, two sources, 4 clients",
                        [pay(f"b{i}", f"p{i % 2}") for i in range(n)], 4)
    out["replay"], _ = run("bridge: retried keys (idempotent replays)", [pay(f"a{i}", "p0") for i in range(n)], 4)
    client.close()
    server.should_exit = True
    t.join(10)
    horizon.stop()
    print(f"{'bridge: one source / direct stellar-sdk':<44} {out['one'] / out['direct']:9.2f} x")
    print(f"{'bridge: replay / first submission':<44} {out['replay'] / out['one']:9.2f} x")
    print(f"{'bridge: two sources / one source':<44} {out['two'] / out['one']:9.2f} x")
    return out


def main() -> int:
    if pg.pg_bindir() is None:
        print("skip  services benchmark: needs PostgreSQL (apt-get install postgresql, see deps/apt-services.txt)")
        return 0
    import tempfile

    with pg.cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        bench_federation(cluster)
        bench_bridge(cluster, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
