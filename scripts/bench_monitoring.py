#!/usr/bin/env python3
"""Monitoring benchmark on the real network (make bench): scrape cost per job, and what a dashboard
refresh costs Prometheus.

inventories/local is deployed as environment `bench` (scripts/benchnet.py: the real stellar-core and
Horizon, kubo, the dlnet exporter, SDF's stellar-core exporters, Prometheus with the inventory's scrape
interval), left to collect for COLLECT_SECONDS once healthy, then measured and removed.

A dashboard refresh is replayed as Grafana does it against the live Prometheus: the template variables
resolved from their label_values() queries, "All" expanded to the real values, $__interval/$__rate_interval
from the dashboard's time range and the scrape interval, then every panel's expression as a range query.
Without the stellar-core and Horizon binaries it prints one skip line.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchnet import ENV, INVENTORY, ROOT, SKIP, bench_network, have_binaries, other_networks

HOSTS = yaml.safe_load((ROOT / INVENTORY / "hosts.yml").read_text())["all"]["children"]
PROM = f"http://127.0.0.1:{HOSTS['prometheus']['hosts']['prom1']['prometheus_port']}"
COLLECT_SECONDS = 75
REFRESHES = 5
# Grafana's default: one data point per pixel, about 1000 on a wide panel; the browser runs 6 at once.
MAX_DATA_POINTS, BROWSER_CONNECTIONS = 1000, 6
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> float:
    return sum(float(n) * UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", duration))


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=30)

    def get(self, path: str, **params: object) -> object:
        r = self.client.get(path, params=params)
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            sys.exit(f"error: Prometheus {path} {params.get('query', '')!r}: {body.get('error', r.status_code)}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def by_job(self, expr: str) -> dict[str, float]:
        return {r["metric"]["job"]: float(r["value"][1]) for r in self.query(expr)}


def wait_for_scrapes(prom: Prometheus, limit: float = 120) -> None:
    """Every target scraped at least once (up is 1), so the collection window starts on a full picture."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        targets = prom.get("/api/v1/targets", state="active")["activeTargets"]
        if targets and all(t["health"] == "up" for t in targets):
            return
        time.sleep(2)
    down = [t["scrapeUrl"] for t in prom.get("/api/v1/targets", state="active")["activeTargets"]
            if t["health"] != "up"]
    print(f"  note: targets not up after {limit:.0f} s: {', '.join(down)}")


def resolve_variables(prom: Prometheus, dash: dict, start: float, end: float) -> dict[str, str]:
    """$name -> regex, as Grafana fills it: label_values(selector, label), All = every value."""
    out: dict[str, str] = {}
    for var in dash.get("templating", {}).get("list", []):
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        for name, value in out.items():
            query = query.replace(f"${name}", value)
        selector, label = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query).groups()
        values = sorted(prom.get(f"/api/v1/label/{label}/values", **{"match[]": selector}, start=start, end=end))
        if var.get("multi") or var.get("includeAll"):
            out[var["name"]] = "(" + "|".join(re.escape(v) for v in values) + ")" if values else "$^"
        else:
            out[var["name"]] = re.escape(values[0]) if values else "$^"
    return out


def refresh(prom: Prometheus, dash: dict, scrape_s: float) -> tuple[float, float, list[float], int]:
    """One refresh: (wall seconds with the browser's parallelism, variable seconds, per-query seconds,
    queries that returned data)."""
    end = time.time()
    span = seconds(dash["time"]["from"].removeprefix("now-"))
    start = end - span
    step = max(scrape_s, span / MAX_DATA_POINTS)
    t0 = time.perf_counter()
    variables = resolve_variables(prom, dash, start, end)
    var_s = time.perf_counter() - t0
    subst = variables | {"__rate_interval": f"{max(step + scrape_s, 4 * scrape_s):.0f}s",
                         "__interval": f"{step:.0f}s", "__range": f"{span:.0f}s"}
    exprs = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in sorted(subst, key=len, reverse=True):
                expr = expr.replace(f"${name}", subst[name])
            exprs.append(expr)

    def one(expr: str) -> tuple[float, bool]:
        t = time.perf_counter()
        data = prom.get("/api/v1/query_range", query=expr, start=start, end=end, step=step)
        return time.perf_counter() - t, bool(data["result"])

    t1 = time.perf_counter()
    with ThreadPoolExecutor(BROWSER_CONNECTIONS) as ex:
        results = list(ex.map(one, exprs))
    wall = var_s + time.perf_counter() - t1
    return wall, var_s, [r[0] for r in results], sum(r[1] for r in results)


def main() -> int:
    if not have_binaries():
        print(f"monitoring benchmark skipped: {SKIP}")
        return 0
    if busy := other_networks():
        sys.exit(f"error: dlnet environment(s) {', '.join(busy)} already run on this Docker engine and may hold"
                 " the ports of inventories/local; expected none; remove them (make clean ENV=...) or wait, re-run")
    sys.path.insert(0, str(ROOT / "monitoring" / "dashboards"))
    import generate  # the dashboards-as-code module

    t0 = time.perf_counter()
    dashboards = {uid: json.loads(generate.render(uid)) for uid in generate.DASHBOARDS}
    gen_ms = (time.perf_counter() - t0) * 1000

    with bench_network():
        prom = Prometheus(PROM)
        wait_for_scrapes(prom)
        time.sleep(COLLECT_SECONDS)
        config = yaml.safe_load(prom.get("/api/v1/status/config")["yaml"])
        scrape_s = seconds(config["global"]["scrape_interval"])
        window = f"{COLLECT_SECONDS}s"
        print(f"monitoring benchmark (inventories/local as env '{ENV}', real stellar-core and Horizon,"
              f" Prometheus {PROM})")
        print(f"  dashboards generated ({len(dashboards)}, grafana-foundation-sdk): {gen_ms:.0f} ms")
        print(f"  scrape cost per job (avg / max over {COLLECT_SECONDS} s, {scrape_s:.0f} s interval):")
        avg = prom.by_job(f"avg by (job) (avg_over_time(scrape_duration_seconds[{window}]))")
        mx = prom.by_job(f"max by (job) (max_over_time(scrape_duration_seconds[{window}]))")
        samples = prom.by_job("sum by (job) (scrape_samples_scraped)")
        targets = prom.by_job("count by (job) (up)")
        up = prom.by_job("sum by (job) (up)")
        for job in sorted(avg):
            print(f"    {job:<15} {avg[job] * 1000:7.1f} ms / {mx[job] * 1000:7.1f} ms  {samples[job]:6.0f} samples"
                  f"  {up[job]:.0f}/{targets[job]:.0f} targets up"
                  f"  ({avg[job] / scrape_s * 100:.2f} % of the interval)")
        own = prom.query(f"avg by (target) (avg_over_time(dlnet_exporter_scrape_duration_seconds[{window}]))")
        if own:
            worst = max(own, key=lambda r: float(r["value"][1]))
            print(f"  dlnet exporter's own probes: {len(own)} targets, slowest avg"
                  f" {float(worst['value'][1]) * 1000:.1f} ms ({worst['metric'].get('target', '?')})")
        series = float(prom.query("prometheus_tsdb_head_series")[0]["value"][1])
        print(f"  series in Prometheus: {series:.0f}")

        print(f"  dashboard refresh against the live Prometheus (median of {REFRESHES}; variables resolved,"
              f" {BROWSER_CONNECTIONS} queries at once):")
        for uid, dash in dashboards.items():
            runs = [refresh(prom, dash, scrape_s) for _ in range(REFRESHES)]
            wall = statistics.median(r[0] for r in runs)
            var_s = statistics.median(r[1] for r in runs)
            per_query = [statistics.median(q) for q in zip(*(r[2] for r in runs), strict=True)]
            with_data = min(r[3] for r in runs)
            every = seconds(dash.get("refresh") or "30s")
            print(f"    {uid:<16} {len(per_query)} queries ({with_data} with data): refresh {wall * 1000:6.1f} ms"
                  f" (variables {var_s * 1000:.1f} ms), query sum {sum(per_query) * 1000:6.1f} ms,"
                  f" median {statistics.median(per_query) * 1000:.1f} ms, max {max(per_query) * 1000:.1f} ms;"
                  f" {sum(per_query) / every * 100:.2f} % of its {every:.0f} s auto-refresh")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
