"""Load generator's own signing rate (tx/s per core), real stellar-sdk signing, no network.

The network half of issue 10's benchmark (idle close p50/p95, tuned size, applied tx/s against the upstream
ceiling of 800 tx/s, the Horizon ratio) is not built yet: this prints that it is skipped.
"""

from __future__ import annotations

import time

from dlnet import load as ld

UPSTREAM_CEILING_TPS = 800  # shared/reference/stellar-core-19.14/load/: ~800 tx/s within 5 % of idle


def main() -> None:
    channels = [ld.Channel.new() for _ in range(200)]
    job = ld.Job(
        "dlnet bench ; signing",
        [(c.seed, c.public, 0) for c in channels],
        3000,
        None,
        0,
        0,
        [],
        None,
        channels[0].public,
        0.0,
        None,
        100,
        1 << 32,
    )
    ld.sign_all(ld.Job(**{**job.__dict__, "count": 200}))  # warm up
    t = time.perf_counter()
    blobs, _ = ld.sign_all(job)
    rate = len(blobs) / (time.perf_counter() - t)
    print(f"signing: {rate:.0f} tx/s per core (one-operation payments, stellar-sdk, minSeqNum precondition)")
    print(f"signing: {rate / UPSTREAM_CEILING_TPS:.2f} x the upstream ceiling ({UPSTREAM_CEILING_TPS} tx/s) per core")
    print("network (idle close, tuned size, applied tx/s, Horizon ratio): skipped — not built yet (issue 10)")


if __name__ == "__main__":
    main()
