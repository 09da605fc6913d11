"""`dlnet status`: the health of every component of an inventory, from the same probes as the exporter."""

from __future__ import annotations

from typing import Any

import httpx

from dlnet.config import Network
from dlnet.observe import (
    HorizonProbe,
    Probe,
    ValidatorProbe,
    parallel,
    probe_horizon,
    probe_ipfs,
    probe_postgres,
    probe_prometheus,
    probe_validator,
)


def gather(net: Network, timeout: float) -> dict[str, Any]:
    """Probe everything in parallel; every entry has `up` and, when down, `error`."""
    c = net.components
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        jobs: list[Any] = []
        if c.stellar_core:
            jobs += [
                (
                    lambda v=v: probe_validator(
                        v.name, v.organisation, f"http://{v.address}:{v.http_port}", timeout, client, with_metrics=False
                    )
                )
                for v in net.validators
            ]
        if c.horizon:
            jobs += [
                (lambda h=h: probe_horizon(h.name, f"http://{h.address}:{h.port}", timeout, client))
                for h in net.horizon
            ]
        if c.postgres:
            jobs += [(lambda p=p: probe_postgres(p.name, p.address, p.port, timeout)) for p in net.postgres]
        if c.ipfs:
            # kubo's RPC listens on the node's loopback only (facts.md 10): reachable from its own host.
            jobs += [(lambda n=n: probe_ipfs(n.name, n.address, n.api_port, timeout, client)) for n in net.ipfs]
        if c.prometheus:
            jobs += [(lambda p=p: probe_prometheus(p.name, p.address, p.port, timeout, client)) for p in net.prometheus]
        results = parallel(jobs)
    out: dict[str, Any] = {
        "env": net.env,
        "validators": [],
        "horizon": [],
        "postgres": [],
        "ipfs": [],
        "prometheus": [],
    }
    newest = max((r.info.ledger.num for r in results if isinstance(r, ValidatorProbe) and r.info), default=0)
    for r in results:
        if isinstance(r, ValidatorProbe):
            out["validators"].append(_validator(r))
        elif isinstance(r, HorizonProbe):
            entry: dict[str, Any] = {"name": r.name, "url": r.url, "up": r.up, "error": r.error}
            if r.up:
                ingested = int(r.root.get("history_latest_ledger") or 0)
                entry.update(
                    ingested_ledger=ingested,
                    lag_ledgers=max(0, max(int(r.root.get("core_latest_ledger") or 0), newest) - ingested),
                    protocol=r.root.get("current_protocol_version"),
                )
            out["horizon"].append(entry)
        elif isinstance(r, Probe):
            out[r.kind].append({"name": r.name, "url": r.url, "up": r.up, "error": r.error, **r.detail})
    from dlnet import tune
    from dlnet.preflight import state_dir

    rec = tune.load_record(state_dir(net.env))
    out["tuned"] = (
        {"line": tune.summary_line(rec), "size": rec.get("size_applied"), "at": rec.get("at"), **rec["chosen"]}
        if rec
        else None
    )
    out["healthy"] = all(
        e["up"] for k in ("validators", "horizon", "postgres", "ipfs", "prometheus") for e in out[k]
    ) and all(e.get("synced", True) for e in out["validators"])
    return out


def _validator(r: ValidatorProbe) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": r.name, "organisation": r.organisation, "url": r.url, "up": r.up, "error": r.error}
    if r.info:
        lg, q = r.info.ledger, r.info.qset
        entry.update(
            state=r.info.state,
            synced=r.info.synced,
            ledger=lg.num,
            age_seconds=lg.age,
            protocol=lg.version,
            protocol_supported=r.info.protocol_max,
            max_tx_set_size=lg.max_tx_set_size,
            base_fee=lg.base_fee,
            base_reserve=lg.base_reserve,
            peers=r.info.peers,
            quorum_agree=q.get("agree"),
            quorum_missing=q.get("missing"),
            quorum_fail_at=q.get("fail_at"),
        )
    return entry


def table(status: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    for v in status["validators"]:
        if v["up"]:
            detail = (
                f"ledger {v['ledger']} age {v['age_seconds']}s protocol {v['protocol']}"
                f" (binary {v['protocol_supported']}) max_tx_set {v['max_tx_set_size']} fee {v['base_fee']}"
                f" reserve {v['base_reserve']} peers {v['peers']}"
                f" quorum agree {v['quorum_agree']} missing {v['quorum_missing']}"
            )
            rows.append(("validator", v["name"], v["state"], detail))
        else:
            rows.append(("validator", v["name"], "DOWN", v["error"] or ""))
    for h in status["horizon"]:
        rows.append(
            (
                "horizon",
                h["name"],
                "up" if h["up"] else "DOWN",
                f"ingested {h['ingested_ledger']} lag {h['lag_ledgers']} ledgers" if h["up"] else h["error"],
            )
        )
    for p in status["postgres"]:
        rows.append(
            ("postgres", p["name"], "up" if p["up"] else "DOWN", "accepting connections" if p["up"] else p["error"])
        )
    for n in status["ipfs"]:
        rows.append(("ipfs", n["name"], "up" if n["up"] else "DOWN", f"peers {n['peers']}" if n["up"] else n["error"]))
    for p in status["prometheus"]:
        rows.append(
            (
                "prometheus",
                p["name"],
                "up" if p["up"] else "DOWN",
                f"ready, targets up {p['targets_up']}/{p['targets']}" if p["up"] else p["error"] or "",
            )
        )
    head = ("COMPONENT", "NAME", "STATE", "DETAIL")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    lines = [
        "  ".join([c.ljust(w) for c, w in zip(r[:3], widths, strict=True)] + [r[3]]).rstrip() for r in [head, *rows]
    ]
    if status.get("tuned"):
        lines.append(status["tuned"]["line"])
    lines.append(f"{status['env']}: {'healthy' if status['healthy'] else 'NOT healthy'}")
    return "\n".join(lines)
