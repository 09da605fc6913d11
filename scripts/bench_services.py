#!/usr/bin/env python3
"""Benchmarks of the participant services on the real network (run by `make bench`): numbers and ratios,
never pass/fail. inventories/local is deployed as environment `bench` (scripts/benchnet.py: the real
stellar-core and Horizon, PostgreSQL, the services image), then removed.

- federation: SEP-2 name and reverse lookups per second against the deployed federation container (its
  PostgreSQL), p50/p99, 4 clients and 1;
- bridge: the deployed bridge container, holding two accounts funded on the real network, submits
  payments to the real Horizon (each waits for its ledger), p50/p99, against a baseline of the same
  payment built, signed and submitted with stellar-sdk directly; then idempotent replays per second (a
  retried key: no new payment).

The deployment switches the per-client rate limits off (they would measure the limiter, not the service)
and, once the payers are funded, deploys the bridge (off in inventories/local: its seeds exist only
after the network is up). Without the stellar-core and Horizon binaries it prints one skip line.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml
from stellar_sdk import Asset, Keypair, Server, TransactionBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchnet import ENV, INVENTORY, ROOT, SKIP, BenchNetwork, bench_network, have_binaries, other_networks

HOSTS = yaml.safe_load((ROOT / INVENTORY / "hosts.yml").read_text())["all"]["children"]
SERVICES = yaml.safe_load((ROOT / INVENTORY / "group_vars/all/services.yml").read_text())
PASSPHRASE = yaml.safe_load((ROOT / INVENTORY / "group_vars/all/network.yml").read_text())[
    "dlnet_network_passphrase"]
HORIZON = f"http://127.0.0.1:{HOSTS['horizon']['hosts']['horizon1']['horizon_port']}"
FEDERATION = f"http://127.0.0.1:{SERVICES['dlnet_federation_port']}"
BRIDGE = f"http://127.0.0.1:{SERVICES['dlnet_bridge_port']}"
DOMAIN = SERVICES["dlnet_federation_home_domain"]
RECORDS, LOOKUPS = 1000, 2000
PAYMENTS, DIRECT = 60, 30
BRIDGE_DATA = Path("/var/lib/dlnet") / ENV / "bridge"
NO_LIMITS = {"dlnet_federation_rate_limit_per_minute": 0, "dlnet_bridge_rate_limit_per_minute": 0}


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def run(label: str, calls: list[Callable[[], None]], workers: int) -> float:
    lat: list[float] = []
    lock = threading.Lock()

    def one(fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        with lock:
            lat.append(dt)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, calls))
    rate = len(calls) / (time.perf_counter() - t0)
    print(f"  {label:<46} {rate:8.1f} /s   p50 {statistics.median(lat) * 1000:7.2f} ms"
          f"   p99 {pct(lat, 99) * 1000:7.2f} ms   (n={len(calls)}, {workers} clients)")
    return rate


def secret(net: BenchNetwork, name: str) -> str:
    """A token the deployment generated on the controller (never printed)."""
    return (Path(net.state) / ENV / "secrets" / name).read_text().strip()


def write_extra(net: BenchNetwork, extra: dict) -> None:
    fd = os.open(net.extra, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"dlnet_env": ENV, **NO_LIMITS, **extra}, f)


def wait_ingesting(limit: float = 180) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            root = httpx.get(HORIZON, timeout=3).json()
            if root.get("network_passphrase") == PASSPHRASE and root.get("history_latest_ledger", 0) > 1:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    sys.exit(f"error: Horizon at {HORIZON} never ingested the bench network")


def check(r: httpx.Response, what: str) -> None:
    if r.status_code != 200:
        sys.exit(f"error: {what}: HTTP {r.status_code} {r.text[:200]}")


def bench_federation(net: BenchNetwork) -> None:
    auth = {"Authorization": f"Bearer {secret(net, 'federation.admin_token')}"}
    accounts = [Keypair.random().public_key for _ in range(RECORDS)]
    client = httpx.Client(limits=httpx.Limits(max_connections=16), timeout=30)
    t0 = time.perf_counter()
    for i, a in enumerate(accounts):
        check(client.put(f"{FEDERATION}/admin/records/user{i}", json={"account_id": a}, headers=auth),
              "federation admin PUT")
    put_s = time.perf_counter() - t0

    def get(q: str, kind: str, status: int) -> Callable[[], None]:
        def call() -> None:
            r = client.get(f"{FEDERATION}/federation", params={"q": q, "type": kind})
            if r.status_code != status:
                sys.exit(f"error: federation lookup: HTTP {r.status_code}, expected {status}")
        return call

    names = [get(f"user{i % RECORDS}*{DOMAIN}", "name", 200) for i in range(LOOKUPS)]
    ids = [get(accounts[i % RECORDS], "id", 200) for i in range(LOOKUPS)]
    miss = [get(f"nobody{i}*{DOMAIN}", "name", 404) for i in range(LOOKUPS)]
    print(f"federation (container {FEDERATION}, real PostgreSQL): {RECORDS} records stored in {put_s:.1f} s"
          f" ({RECORDS / put_s:.0f} admin PUT/s, one client)")
    name4 = run("name lookups", names, 4)
    run("reverse (id) lookups", ids, 4)
    run("unknown names (404)", miss, 4)
    name1 = run("name lookups, one client", names[:500], 1)
    client.close()
    print(f"  {'4 clients / 1 client':<46} {name4 / name1:8.2f} x")


class Ledger:
    """Accounts on the real network, funded by the kit's funder (`make up` locked the root account)."""

    def __init__(self, funder_seed: str) -> None:
        self.server = Server(HORIZON)
        self.root = Keypair.from_secret(funder_seed)

    def tx(self, source: Keypair, ops: Callable[[TransactionBuilder], object]) -> None:
        b = TransactionBuilder(self.server.load_account(source.public_key), PASSPHRASE, base_fee=100)
        ops(b.set_timeout(60))
        t = b.build()
        t.sign(source)
        self.server.submit_transaction(t)

    def fund(self, *kps: Keypair, amount: str = "10000") -> None:
        self.tx(self.root, lambda b: [b.append_create_account_op(k.public_key, amount) for k in kps])

    def native_balance(self, account: str) -> float:
        acc = self.server.accounts().account_id(account).call()
        return float(next(b["balance"] for b in acc["balances"] if b["asset_type"] == "native"))


def bench_bridge(net: BenchNetwork) -> None:
    ledger = Ledger(secret(net, "funder.seed"))
    payers = [Keypair.random() for _ in range(2)]
    dest, direct_payer = Keypair.random(), Keypair.random()
    ledger.fund(*payers, dest, direct_payer)
    write_extra(net, {
        "dlnet_services_enabled": SERVICES["dlnet_services_enabled"] | {"bridge": True},
        "dlnet_bridge_horizon_url": HORIZON, "dlnet_bridge_follow": False,
        "dlnet_bridge_accounts": [{"name": f"p{i}", "seed": kp.secret} for i, kp in enumerate(payers)]})
    took, _ = net.play("deploy-services.yml")
    auth = {"Authorization": f"Bearer {secret(net, 'bridge.admin_token')}"}
    client = httpx.Client(limits=httpx.Limits(max_connections=16), timeout=120)

    def pay(key: str, src: str) -> Callable[[], None]:
        def call() -> None:
            r = client.post(f"{BRIDGE}/payments", headers=auth | {"Idempotency-Key": key},
                            json={"source": src, "destination": dest.public_key, "asset": "native", "amount": "0.01"})
            check(r, "bridge payment")
        return call

    def direct() -> None:
        ledger.tx(direct_payer, lambda b: b.append_payment_op(dest.public_key, Asset.native(), "0.01"))

    print(f"bridge (container {BRIDGE}, real Horizon {HORIZON}; deployed in {took:.1f} s):")
    before = ledger.native_balance(dest.public_key)
    base = run("baseline: stellar-sdk submit to Horizon", [direct] * DIRECT, 1)
    one = run("payments, one source account", [pay(f"a{i}", "p0") for i in range(PAYMENTS)], 1)
    two = run("payments, two sources, 4 clients", [pay(f"b{i}", f"p{i % 2}") for i in range(PAYMENTS)], 4)
    replay = run("retried keys (idempotent replays)", [pay(f"a{i}", "p0") for i in range(PAYMENTS)], 4)
    client.close()
    paid = round((ledger.native_balance(dest.public_key) - before) / 0.01)
    print(f"  {'payments on the ledger / submitted':<46} {paid} / {DIRECT + 2 * PAYMENTS}"
          f" (replays paid nothing: {paid == DIRECT + 2 * PAYMENTS})")
    print(f"  {'one source / direct stellar-sdk':<46} {one / base:8.2f} x")
    print(f"  {'two sources / one source':<46} {two / one:8.2f} x")
    print(f"  {'replay / first submission':<46} {replay / one:8.2f} x")


def main() -> int:
    if not have_binaries():
        print(f"services benchmark skipped: {SKIP}")
        return 0
    if busy := other_networks():
        sys.exit(f"error: dlnet environment(s) {', '.join(busy)} already run on this Docker engine and may hold"
                 " the ports of inventories/local; expected none; remove them (make clean ENV=...) or wait, re-run")
    try:
        with bench_network(deploy=False) as net:
            write_extra(net, {})
            start = time.monotonic()
            net.play("site.yml")
            net.until_healthy(start)
            wait_ingesting()
            print(f"services benchmark (inventories/local as env '{ENV}', real stellar-core and Horizon;"
                  " rate limits off)")
            bench_federation(net)
            bench_bridge(net)
    finally:
        # deploy/remove-network.yml keeps the services' config folders (dlnet_data_root in
        # deploy/group_vars/all/kit.yml), and the bridge's holds the payers' seeds: throwaway keys of a
        # removed network, removed all the same.
        shutil.rmtree(BRIDGE_DATA, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
