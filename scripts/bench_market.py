"""Bench the training market on the running real network (inventories/local): one round's wall time,
ledgers and transactions for 3 and for 20 partners (one malicious each time, two validators).

Measures whatever network answers at the inventory's Horizon with the inventory's passphrase (`make up`,
or the test network while it runs: hold /tmp/dlnet-network.lock then). Without one it says so and exits 0.
Each run creates fresh accounts from the root account, like `dlnet market demo`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlnet import day2  # noqa: E402
from dlnet import seed as sd  # noqa: E402
from dlnet.chain import Horizon, Transactor  # noqa: E402
from dlnet.errors import DlnetError  # noqa: E402
from dlnet.ipfs import Ipfs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-i", "--inventory", default="inventories/local")
    ap.add_argument("--env", default=os.environ.get("DLNET_BENCH_ENV", "test"),
                    help="dlnet_env of the running network (test: the deployment tests' network)")
    ap.add_argument("--partners", default="3,20")
    args = ap.parse_args()
    net, _ = day2.load(args.inventory, [f"dlnet_env={args.env}"])
    url = day2.horizon_url(net)
    h = Horizon(url, retries=2)
    try:
        root = h.root()
    except DlnetError as exc:
        print(f"bench_market: no real network running at {url} ({str(exc)[:100]}) — `make up` first; nothing measured")
        return 0
    if root.get("network_passphrase") != net.passphrase or int(root.get("current_protocol_version") or 0) < 13:
        print(f"bench_market: {url} is not an upgraded network of {args.inventory} (passphrase"
              f" {root.get('network_passphrase')!r}, protocol {root.get('current_protocol_version')})"
              " — nothing measured")
        return 0
    if "horizon-v" not in str(root.get("horizon_version", "")) or not root.get("core_version"):
        print(f"bench_market: {url} is not the real Horizon (version {root.get('horizon_version')!r})"
              " — nothing measured")
        return 0
    stores = [Ipfs(f"http://{n.address}:{n.api_port}") for n in net.ipfs]
    try:
        stores[0].id()
    except (DlnetError, IndexError) as exc:
        print(f"bench_market: no kubo node answers for {args.inventory} ({str(exc)[:100]}) — nothing measured")
        return 0
    from dlnet.market import demo

    tx = Transactor(h, net.passphrase)
    funder, _ = sd.funder_keypair(net, None)
    print(f"bench_market: {url} — {root.get('horizon_version')}, stellar-core {root.get('core_version')},"
          f" protocol {root.get('current_protocol_version')}")
    results = {}
    for n in [int(x) for x in args.partners.split(",")]:
        t = time.monotonic()
        rep = demo.run(tx, (stores[0], stores[-1]), funder, demo.Options(model=f"bench-{n}", partners=n, malicious=1,
                                                                         validators=2, rounds=1, baseline=0.2))
        r = rep["rounds"][0]
        ledgers = r["last_ledger"] - r["first_ledger"] + 1
        results[n] = (r["seconds"], ledgers, r["transactions"])
        print(f"  {n:3d} partners: one round {r['seconds']:.1f} s over {ledgers} ledgers, {r['transactions']}"
              f" transactions ({r['transactions'] / max(r['seconds'], 1e-9):.1f} tx/s); setup"
              f" {rep['setup_transactions']} transactions; whole run {time.monotonic() - t:.1f} s;"
              f" accuracy {rep['initial_accuracy']:.3f} -> {rep['final_accuracy']:.3f}")
    if len(results) >= 2:
        (a, ra), (b, rb) = sorted(results.items())[0], sorted(results.items())[-1]
        print(f"  ratio {b}/{a} partners: wall time x{rb[0] / ra[0]:.2f}, ledgers x{rb[1] / ra[1]:.2f},"
              f" transactions x{rb[2] / ra[2]:.2f} (partners x{b / a:.2f})")
    h.close()
    for s in stores:
        s.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
