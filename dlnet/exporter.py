"""`dlnet exporter`: Prometheus metrics for every validator and Horizon of an inventory.

prometheus-client Collector pattern: each scrape probes every validator's admin port and Horizon in
parallel with a short timeout; a dead endpoint shows as `dlnet_validator_up 0` and the others keep
reporting. Names are a contract with the monitoring roles (docs/day2.md lists them).

Ledger close time is a histogram of the gaps between *consecutive* ledger close times. Each scrape sees a
validator's latest ledger; when ledgers closed in between, their close times come from Horizon's /ledgers,
so every closed ledger is counted once. Without Horizon, the gap is spread evenly over the missed ledgers
(the count stays exact, the distribution is approximate).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from dlnet.config import Network
from dlnet.core_admin import PARAMS, armed_from_status
from dlnet.observe import (
    HorizonProbe,
    ValidatorProbe,
    horizon_close_times,
    parallel,
    probe_horizon,
    probe_validator,
)

CLOSE_BUCKETS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0)
UPGRADE_NAMES = {
    "protocolversion": "protocol_version",
    "basefee": "base_fee",
    "basereserve": "base_reserve",
    "maxtxsetsize": "max_tx_set_size",
}
V_LABELS = ["validator", "organisation", "environment"]


@dataclass
class CloseHistogram:
    """Close-time histogram of one validator plus the last ledger it has seen."""

    last_num: int = 0
    last_close: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * (len(CLOSE_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(CLOSE_BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += seconds
        self.n += 1

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, c in zip(CLOSE_BUCKETS, self.counts, strict=False):
            running += c
            out.append((floatToGoString(bound), running))
        out.append(("+Inf", self.n))
        return out

    def advance(self, num: int, close_time: int, known: dict[int, int]) -> None:
        """Account for every ledger after the last seen one up to `num` (close times from `known`)."""
        if close_time <= 0 or num <= 0:
            return
        if self.last_num == 0 or num < self.last_num:  # first sight, or the node was reset: new baseline
            self.last_num, self.last_close = num, close_time
            return
        prev_num, prev_close = self.last_num, self.last_close
        seq = prev_num + 1
        while seq <= num:
            ct = close_time if seq == num else known.get(seq)
            if ct is None:  # unknown in between: spread the remaining gap evenly over the missing ledgers
                remaining = num - prev_num
                step = (close_time - prev_close) / remaining
                for _ in range(remaining):
                    self.observe(step)
                break
            self.observe(float(ct - prev_close))
            prev_num, prev_close = seq, ct
            seq += 1
        self.last_num, self.last_close = num, close_time


class DlnetCollector(Collector):
    def __init__(
        self,
        net: Network,
        *,
        timeout: float = 2.0,
        client: httpx.Client | None = None,
        clock: object = time.time,
    ) -> None:
        self.net = net
        self.timeout = timeout
        self.client = client or httpx.Client(timeout=timeout, trust_env=False, limits=httpx.Limits(max_connections=100))
        self.clock = clock
        self._lock = threading.Lock()  # scrapes may overlap; the histograms must not
        self.hist: dict[str, CloseHistogram] = {}
        self._ops_per_ledger: dict[int, int] = {}  # ledger -> operations in it (the latest few, from Horizon)

    def describe(self) -> Iterable[Metric]:
        return []  # no work at registration time

    def _horizon_urls(self) -> list[tuple[str, str]]:
        return (
            [(h.name, f"http://{h.address}:{h.port}") for h in self.net.horizon] if self.net.components.horizon else []
        )

    def collect(self) -> Iterator[Metric]:
        env = self.net.env
        jobs = [
            (
                lambda v=v: probe_validator(
                    v.name, v.organisation, f"http://{v.address}:{v.http_port}", self.timeout, self.client
                )
            )
            for v in self.net.validators
        ]
        jobs += [(lambda n=n, u=u: probe_horizon(n, u, self.timeout, self.client)) for n, u in self._horizon_urls()]
        results = parallel(jobs)  # type: ignore[arg-type]
        vprobes = [r for r in results if isinstance(r, ValidatorProbe)]
        hprobes = [r for r in results if isinstance(r, HorizonProbe)]
        with self._lock:
            yield from self._validator_metrics(env, vprobes, hprobes)
        yield from self._horizon_metrics(vprobes, hprobes)
        yield from self._tune_metrics(env)
        scrape = GaugeMetricFamily(
            "dlnet_exporter_scrape_duration_seconds",
            "Time the exporter spent probing one target during this scrape.",
            labels=["target"],
        )
        for p in [*vprobes, *hprobes]:
            scrape.add_metric([p.name], p.seconds)
        yield scrape

    def _tune_metrics(self, env: str) -> Iterator[Metric]:
        """The last `dlnet tune` result, from the environment's state dir (absent until a run applied one)."""
        from dlnet import tune
        from dlnet.preflight import state_dir

        rec = tune.load_record(state_dir(env))
        if not rec:
            return
        c = rec["chosen"]
        when = datetime.strptime(str(rec["at"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        for name, doc, value in (
            (
                "dlnet_tune_max_tx_set_size",
                "max tx set size chosen by the last dlnet tune run.",
                rec.get("size_applied"),
            ),
            ("dlnet_tune_timestamp_seconds", "When the last dlnet tune run started (Unix time).", when),
            ("dlnet_tune_rate_tps", "Offered tx/s of the chosen step.", c.get("rate")),
            ("dlnet_tune_applied_tps", "Applied tx/s of the chosen step.", c.get("applied_tps")),
            ("dlnet_tune_close_p50_seconds", "Close time p50 of the chosen step.", c.get("p50")),
            ("dlnet_tune_close_p95_seconds", "Close time p95 of the chosen step.", c.get("p95")),
            ("dlnet_tune_idle_close_p95_seconds", "Idle close time p95 measured by the run.", rec["idle"].get("p95")),
        ):
            if value is not None:
                g = GaugeMetricFamily(name, doc, labels=["environment"])
                g.add_metric([env], float(value))
                yield g

    def _known_close_times(self, vprobes: list[ValidatorProbe], hprobes: list[HorizonProbe]) -> dict[int, int]:
        horizon = next((h for h in hprobes if h.up), None)
        if horizon is None:
            return {}
        gaps = []
        for p in vprobes:
            h = self.hist.get(p.name)
            if p.info and h and h.last_num and p.info.ledger.num > h.last_num + 1:
                gaps.append((h.last_num, p.info.ledger.num))
        if not gaps:
            return {}
        return horizon_close_times(
            horizon.url, min(a for a, _ in gaps), max(b for _, b in gaps), self.timeout, self.client
        )

    def _validator_metrics(
        self, env: str, vprobes: list[ValidatorProbe], hprobes: list[HorizonProbe]
    ) -> Iterator[Metric]:
        def g(name: str, doc: str, extra: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=V_LABELS + (extra or []))

        up = g("dlnet_validator_up", "1 if the validator's admin endpoint answered this scrape.")
        synced = g("dlnet_validator_synced", "1 if stellar-core reports state Synced!.")
        peers = g("dlnet_validator_peers", "Authenticated peers of the validator.")
        seq = g("dlnet_ledger_sequence", "Latest closed ledger the validator knows.")
        age = g("dlnet_ledger_age_seconds", "Seconds since the validator's latest ledger closed.")
        proto = g("dlnet_ledger_protocol_version", "Ledger protocol version in the latest ledger header.")
        maxtx = g("dlnet_ledger_max_tx_set_size", "maxTxSetSize in the latest ledger header (operations).")
        fee = g("dlnet_ledger_base_fee_stroops", "Base fee in the latest ledger header, in stroops.")
        reserve = g("dlnet_ledger_base_reserve_stroops", "Base reserve in the latest ledger header, in stroops.")
        ops_last = g("dlnet_ledger_operations_per_ledger", "Operations applied in the latest ledger.")
        agree = g("dlnet_quorum_agree", "Validators of the quorum set agreeing with this one.")
        missing = g("dlnet_quorum_missing", "Validators of the quorum set missing.")
        fail_at = g("dlnet_quorum_fail_at", "How many more validator failures the quorum set survives.")
        inter = g("dlnet_quorum_intersection", "1 if stellar-core found that all quorums intersect.")
        armed = g(
            "dlnet_upgrade_armed",
            "1 if the validator is armed with an upgrade of this parameter.",
            ["upgrade"],
        )
        txs = CounterMetricFamily(
            "dlnet_ledger_transactions", "Transactions applied since the node started.", labels=V_LABELS
        )
        ops = CounterMetricFamily(
            "dlnet_ledger_operations", "Operations applied since the node started.", labels=V_LABELS
        )
        close = HistogramMetricFamily(
            "dlnet_ledger_close_seconds",
            "Time between consecutive ledger closes (closeTime deltas).",
            labels=V_LABELS,
        )
        known = self._known_close_times(vprobes, hprobes)
        ledger_ops = self._ledger_ops(vprobes, hprobes)
        for p in vprobes:
            labels = [p.name, p.organisation, env]
            up.add_metric(labels, 1 if p.up else 0)
            hist = self.hist.setdefault(p.name, CloseHistogram())
            if p.info is not None:
                info, lg = p.info, p.info.ledger
                hist.advance(lg.num, lg.close_time, known)
                synced.add_metric(labels, 1 if info.synced else 0)
                peers.add_metric(labels, info.peers)
                seq.add_metric(labels, lg.num)
                age.add_metric(labels, lg.age)
                proto.add_metric(labels, lg.version)
                maxtx.add_metric(labels, lg.max_tx_set_size)
                fee.add_metric(labels, lg.base_fee)
                reserve.add_metric(labels, lg.base_reserve)
                q = info.qset
                for fam, key in ((agree, "agree"), (missing, "missing"), (fail_at, "fail_at")):
                    if isinstance(q.get(key), int):
                        fam.add_metric(labels, q[key])
                if info.intersection is not None:
                    inter.add_metric(labels, 1 if info.intersection else 0)
                armed_now = armed_from_status(info.status)
                for param in PARAMS:
                    armed.add_metric([*labels, UPGRADE_NAMES[param]], 1 if param in armed_now else 0)
                for fam, key in ((txs, "ledger.transaction.count"), (ops, "ledger.operation.count")):
                    metric = p.metrics.get(key) or {}
                    if "sum" in metric:
                        fam.add_metric(labels, float(metric["sum"]))
                if lg.num in ledger_ops:
                    ops_last.add_metric(labels, ledger_ops[lg.num])
            else:
                synced.add_metric(labels, 0)
            if hist.n or p.info is not None:  # the series exists from the first scrape on
                close.add_metric(labels, hist.buckets(), hist.total)
        yield from (
            up,
            synced,
            peers,
            seq,
            age,
            proto,
            maxtx,
            fee,
            reserve,
            txs,
            ops,
            ops_last,
            close,
            agree,
            missing,
            fail_at,
            inter,
            armed,
        )

    def _ledger_ops(self, vprobes: list[ValidatorProbe], hprobes: list[HorizonProbe]) -> dict[int, int]:
        """Operations in each validator's latest ledger, from Horizon (cached per ledger)."""
        horizon = next((h for h in hprobes if h.up), None)
        wanted = {p.info.ledger.num for p in vprobes if p.info}
        out = {num: ops for num, ops in self._ops_per_ledger.items() if num in wanted}
        if horizon is None:
            return out
        for num in sorted(wanted - set(out))[-3:]:
            try:
                resp = self.client.get(f"{horizon.url}/ledgers/{num}", timeout=self.timeout)
                if resp.status_code == 200:
                    out[num] = int(resp.json()["operation_count"])
            except (httpx.HTTPError, ValueError, KeyError):
                continue
        self._ops_per_ledger = out
        return out

    def _horizon_metrics(self, vprobes: list[ValidatorProbe], hprobes: list[HorizonProbe]) -> Iterator[Metric]:
        hup = GaugeMetricFamily("dlnet_horizon_up", "1 if Horizon's root resource answered.", labels=["horizon"])
        lag = GaugeMetricFamily(
            "dlnet_horizon_ingest_lag_ledgers",
            "Ledgers the validators closed that Horizon has not ingested yet.",
            labels=["horizon"],
        )
        newest = max((p.info.ledger.num for p in vprobes if p.info), default=0)
        for h in hprobes:
            hup.add_metric([h.name], 1 if h.up else 0)
            if h.up:
                ingested = int(h.root.get("history_latest_ledger") or 0)
                core = max(int(h.root.get("core_latest_ledger") or 0), newest)
                lag.add_metric([h.name], max(0, core - ingested))
        yield hup
        yield lag


def registry_for(net: Network, timeout: float) -> tuple[CollectorRegistry, DlnetCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = DlnetCollector(net, timeout=timeout)
    registry.register(collector)
    return registry, collector
