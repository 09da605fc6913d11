"""Monitoring benchmark (make bench): scrape cost per job, and what a dashboard refresh costs Prometheus.

Starts the monitoring test stack (stellar-core and Horizon doubles, the dlnet exporter, SDF's exporter, two
kubo nodes, Prometheus scraping every second; all on 127.0.0.1), lets it collect, then prints numbers.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.monitoring.harness import monitoring_stack  # noqa: E402 - needs the repository on sys.path

COLLECT_SECONDS = 30
# The test stack scrapes every 2 s.


def main() -> int:
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT / "monitoring" / "dashboards"))
    import generate  # the dashboards-as-code module

    for uid in generate.DASHBOARDS:
        generate.render(uid)
    gen_ms = (time.perf_counter() - t0) * 1000

    with tempfile.TemporaryDirectory(prefix="dlnet-bench-") as tmp, monitoring_stack(
        Path(tmp), warmup=COLLECT_SECONDS
    ) as stack:
        prom = stack["prom"]
        print(f"dashboards generated (4, grafana-foundation-sdk): {gen_ms:.0f} ms")
        print(f"scrape cost per job (avg / max over {COLLECT_SECONDS} s, 2 s interval):")
        avg = {r["metric"]["job"]: float(r["value"][1]) for r in
               prom.query(f"avg by (job) (avg_over_time(scrape_duration_seconds[{COLLECT_SECONDS}s]))")}
        mx = {r["metric"]["job"]: float(r["value"][1]) for r in
              prom.query(f"max by (job) (max_over_time(scrape_duration_seconds[{COLLECT_SECONDS}s]))")}
        samples = {r["metric"]["job"]: float(r["value"][1]) for r in
                   prom.query("sum by (job) (scrape_samples_scraped)")}
        for job in sorted(avg):
            print(f"  {job:<15} {avg[job] * 1000:7.1f} ms / {mx[job] * 1000:7.1f} ms  {samples[job]:6.0f} samples")
        own = prom.query(f"avg by (target) (avg_over_time(dlnet_exporter_scrape_duration_seconds[{COLLECT_SECONDS}s]))")
        if own:
            worst = max(float(r["value"][1]) for r in own)
            print(f"dlnet exporter's own probes: {len(own)} targets, slowest avg {worst * 1000:.1f} ms")
        series = float(prom.query("prometheus_tsdb_head_series")[0]["value"][1])
        print(f"series in Prometheus: {series:.0f}")

        for uid in generate.DASHBOARDS:
            dash = json.loads((ROOT / "monitoring" / "dashboards" / "json" / f"{uid}.json").read_text())
            exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
            times = []
            for expr in exprs:
                expr = expr.replace("$__rate_interval", "10s").replace("$__range", "30s")
                expr = re.sub(r"\$(environment|validator|horizon)\b", ".*", expr)
                t = time.perf_counter()
                prom.query_range(expr, seconds=COLLECT_SECONDS)
                times.append((time.perf_counter() - t) * 1000)
            print(f"refresh of {uid}: {len(exprs)} queries, total {sum(times):.0f} ms, "
                  f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
