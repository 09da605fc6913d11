"""Early fusion: the new checkpoint is the average of the accepted updates' parameters, weighted by the
sample counts the partners trained on (federated averaging)."""

from __future__ import annotations

import numpy as np

from dlnet.market import checkpoint as ck


def fuse(updates: list[tuple[bytes, int]], shapes: dict[str, tuple[int, ...]],
         metadata: dict[str, str] | None = None) -> bytes:
    """Weighted average of `updates` (checkpoint bytes, sample count); refuses an empty set or bad shapes."""
    if not updates:
        raise ck.InputError("fusion: no accepted updates — expected at least one — keep the current checkpoint")
    total = sum(n for _, n in updates)
    if any(n <= 0 for _, n in updates):
        raise ck.InputError(f"fusion: sample counts {[n for _, n in updates]} — expected each above 0")
    acc = {k: np.zeros(s, np.float64) for k, s in shapes.items()}
    for data, n in updates:
        params, _ = ck.loads(data, shapes)
        for k in acc:
            acc[k] += params[k].astype(np.float64) * (n / total)
    return ck.dumps({k: v.astype(np.float32) for k, v in acc.items()},
                    {**(metadata or {}), "samples": str(total)})
