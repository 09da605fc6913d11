"""Probes of the network's components, shared by `dlnet exporter` and `dlnet status`.

Every probe runs with a short timeout and in parallel, so a dead endpoint costs one timeout, not one per
component; a failed probe is a result (`up=False`, `error=...`), never an exception.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx

from dlnet.core_admin import CoreAdmin, CoreAdminError, Info

T = TypeVar("T")


@dataclass
class ValidatorProbe:
    name: str
    organisation: str
    url: str
    up: bool = False
    error: str | None = None
    info: Info | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class HorizonProbe:
    name: str
    url: str
    up: bool = False
    error: str | None = None
    root: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ingest_lag(self) -> int | None:
        if not self.up:
            return None
        core = int(self.root.get("core_latest_ledger") or 0)
        ingested = int(self.root.get("history_latest_ledger") or 0)
        return max(0, core - ingested)


@dataclass
class Probe:
    name: str
    kind: str
    url: str
    up: bool = False
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def parallel(jobs: list[Callable[[], T]], workers: int = 32) -> list[T]:
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return list(pool.map(lambda job: job(), jobs))


def probe_validator(
    name: str, organisation: str, url: str, timeout: float, client: httpx.Client, with_metrics: bool = True
) -> ValidatorProbe:
    started = time.perf_counter()
    p = ValidatorProbe(name, organisation, url)
    admin = CoreAdmin(name, url, timeout=timeout, client=client)
    try:
        p.info = admin.info()
        p.up = True
        if with_metrics:
            p.metrics = admin.metrics()
    except CoreAdminError as exc:
        p.error = str(exc)
    p.seconds = time.perf_counter() - started
    return p


def probe_horizon(name: str, url: str, timeout: float, client: httpx.Client) -> HorizonProbe:
    started = time.perf_counter()
    p = HorizonProbe(name, url)
    try:
        resp = client.get(url + "/", timeout=timeout)
        resp.raise_for_status()
        p.root = resp.json()
        p.up = "core_latest_ledger" in p.root
        if not p.up:
            p.error = f"{name}: {url}/ answered without core_latest_ledger — expected Horizon's root resource"
    except (httpx.HTTPError, ValueError) as exc:
        p.error = f"{name}: {url}/ unreachable or failing ({type(exc).__name__}) — check Horizon is running"
    p.seconds = time.perf_counter() - started
    return p


def horizon_close_times(
    url: str, after: int, upto: int, timeout: float, client: httpx.Client, pages: int = 5
) -> dict[int, int]:
    """closeTime of ledgers after..upto from Horizon's /ledgers (empty if Horizon cannot tell)."""
    out: dict[int, int] = {}
    cursor = after << 32
    for _ in range(pages):
        try:
            resp = client.get(
                f"{url}/ledgers",
                params={"cursor": str(cursor), "order": "asc", "limit": "200"},
                timeout=timeout,
            )
            resp.raise_for_status()
            records = resp.json()["_embedded"]["records"]
        except (httpx.HTTPError, ValueError, KeyError):
            return out
        try:
            for r in records:
                seq = int(r["sequence"])
                if seq > upto:
                    return out
                out[seq] = parse_time(r["closed_at"])
                cursor = int(r["paging_token"])
        except (KeyError, TypeError, ValueError):  # not Horizon's ledger shape: keep what was read
            return out
        if len(records) < 200:
            return out
    return out


def parse_time(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def probe_postgres(name: str, address: str, port: int, timeout: float) -> Probe:
    """Accepting connections: the server answers an SSLRequest with 'S' or 'N' (as pg_isready checks)."""
    p = Probe(name, "postgres", f"{address}:{port}")
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack("!ii", 8, 80877103))
            answer = s.recv(1)
        p.up = answer in (b"S", b"N")
        if not p.up:
            p.error = f"{name}: {address}:{port} answered {answer!r} — expected PostgreSQL"
    except OSError as exc:
        p.error = f"{name}: {address}:{port} not accepting connections ({exc.__class__.__name__})"
    return p


def probe_ipfs(name: str, address: str, api_port: int, timeout: float, client: httpx.Client) -> Probe:
    url = f"http://{address}:{api_port}"
    p = Probe(name, "ipfs", url)
    try:
        resp = client.post(f"{url}/api/v0/swarm/peers", timeout=timeout)
        resp.raise_for_status()
        peers = resp.json().get("Peers") or []
        p.up = True
        p.detail = {"peers": len(peers)}
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        p.error = f"{name}: kubo RPC {url}/api/v0/swarm/peers failed ({type(exc).__name__})"
    return p


def probe_prometheus(name: str, address: str, port: int, timeout: float, client: httpx.Client) -> Probe:
    url = f"http://{address}:{port}"
    p = Probe(name, "prometheus", url)
    try:
        ready = client.get(f"{url}/-/ready", timeout=timeout)
        targets = client.get(f"{url}/api/v1/targets", timeout=timeout)
        targets.raise_for_status()
        active = targets.json()["data"]["activeTargets"]
        p.up = ready.status_code == 200
        p.detail = {"targets": len(active), "targets_up": sum(1 for t in active if t.get("health") == "up")}
        if not p.up:
            p.error = f"{name}: {url}/-/ready answered HTTP {ready.status_code}"
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        p.error = f"{name}: {url} failed ({type(exc).__name__})"
    return p
