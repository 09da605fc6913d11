#!/usr/bin/env python3
"""Time the quorum gate (dlnet.quorum.analyse: intersection + smallest breaking set) on networks of
N organisations x 3 validators, every organisation trusting every other (as [[HOME_DOMAINS]] generates).

Prints one line per size: seconds, and the ratio to the 5x3 time. Issue 9 asks for 30x3 in under 10 s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlnet import quorum


def network(orgs: int, per_org: int = 3) -> dict[str, quorum.QSet]:
    members = [quorum.Member(f"o{o}-v{v}", f"o{o}.example.com", "HIGH") for o in range(orgs) for v in range(per_org)]
    q = quorum.generate_qset(members)
    return {m.name: q for m in members}


def main() -> int:
    base = None
    for orgs in (5, 10, 30):
        qsets = network(orgs)
        start = time.perf_counter()
        analysis = quorum.analyse(qsets)
        took = time.perf_counter() - start
        base = base or took
        print(
            f"quorum {orgs}x3 ({len(qsets)} validators): {took:.3f} s (x{took / base:.1f} of 5x3);"
            f" intersection {analysis.intersection}, tolerates {analysis.tolerates}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
