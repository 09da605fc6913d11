"""Render a dashboard's panels to PNG from live Prometheus data, without Grafana (`make dashboards-preview`).

    python scripts/dashboards_preview.py --prometheus http://127.0.0.1:9090   # a running network
    python scripts/dashboards_preview.py --demo                               # starts the test stack here

Each panel is drawn where its gridPos puts it, from the same queries Grafana sends (variables on "All"):
timeseries as lines (the close-time panel with its 3-10 s band), stats as their last value coloured by the
thresholds, the heatmap as bucket counts over time, the state timeline as coloured bars.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import colors as mcolors

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "monitoring" / "dashboards" / "json"
GRAFANA_COLORS = {"green": "#56a64b", "red": "#e02f44", "orange": "#ff9830", "blue": "#3274d9", "yellow": "#f2cc0c"}


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
        with urllib.request.urlopen(f"{self.url}/api/v1/query_range?{params}", timeout=30) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"query failed: {expr}: {body}")
        return body["data"]["result"]


def substitute(expr: str, rate_interval: str, range_: str) -> str:
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def legend(fmt: str, metric: dict[str, str]) -> str:
    if not fmt:
        return ", ".join(f"{k}={v}" for k, v in metric.items() if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt)


def color(name: str) -> str:
    return GRAFANA_COLORS.get(name, name if name in mcolors.CSS4_COLORS else "#888888")


def threshold_color(panel: dict[str, Any], value: float) -> str:
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    chosen = "#3d71d9"
    for step in steps:
        if step["value"] is None or value >= step["value"]:
            chosen = color(step["color"])
    return chosen


def mapped_text(panel: dict[str, Any], value: float) -> tuple[str | None, str | None]:
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        hit = mapping.get("options", {}).get(str(int(value))) if value == int(value) else None
        if hit:
            return hit.get("text"), color(hit.get("color", ""))
    return None, None


def fmt_value(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value * 100:.1f} %"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.2f}"


def series_of(prom: Prom, target: dict[str, Any], window: tuple[float, float, float], rate: str, rng: str):
    start, end, step = window
    for s in prom.query_range(substitute(target["expr"], rate, rng), start, end, step):
        xs = [float(t) - end for t, _ in s["values"]]
        ys = [float(v) for _, v in s["values"]]
        yield legend(target.get("legendFormat", ""), s["metric"]), xs, ys


def draw_timeseries(ax, panel, prom, window, rate, rng) -> int:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    overrides = {
        o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
        for o in panel.get("fieldConfig", {}).get("overrides", [])
    }
    right = None
    n = 0
    for target in panel["targets"]:
        for name, xs, ys in series_of(prom, target, window, rate, rng):
            axis = ax
            if overrides.get(name, {}).get("custom.axisPlacement") == "right":
                right = right or ax.twinx()
                axis = right
                axis.set_ylabel(overrides[name].get("unit", ""), fontsize=7)
            axis.plot(xs, ys, linewidth=1.2, label=name, color=f"C{n % 10}")
            n += 1
    steps = defaults.get("thresholds", {}).get("steps", [])
    if defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off") != "off" and steps:
        top = max(ax.get_ylim()[1], (steps[-1]["value"] or 0) * 1.3)
        for i, step in enumerate(steps):
            lo = step["value"] or 0
            hi = steps[i + 1]["value"] if i + 1 < len(steps) else top
            ax.axhspan(lo, hi, color=color(step["color"]), alpha=0.12, linewidth=0)
            if step["value"] is not None:
                ax.axhline(step["value"], color=color(step["color"]), linestyle="--", linewidth=0.8)
        ax.set_ylim(0, top)
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        h2, l2 = right.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        ax.legend(handles, labels, fontsize=6, loc="upper left", ncol=3, frameon=False)
    ax.set_ylabel(defaults.get("unit", "") if defaults.get("unit") not in (None, "none") else "", fontsize=7)
    ax.set_xlabel("seconds before now", fontsize=7)
    return n


def draw_stat(ax, panel, prom, window, rate, rng) -> int:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "none")
    values = []
    for target in panel["targets"]:
        for name, _, ys in series_of(prom, target, window, rate, rng):
            real = [y for y in ys if y == y]
            if real:
                values.append((name, real[-1]))
    ax.axis("off")
    if not values:
        ax.text(0.5, 0.5, "No data", ha="center", va="center", fontsize=12, color="#888")
        return 0
    name, value = values[0]
    text, mapped_color = mapped_text(panel, value)
    background = mapped_color or threshold_color(panel, value)
    ax.add_patch(plt.Rectangle((0, 0), 1, 1, transform=ax.transAxes, color=background, alpha=0.85, zorder=0))
    main = text or fmt_value(value, unit)
    if panel.get("options", {}).get("textMode") == "value_and_name":
        main = " / ".join(f"{n}: {fmt_value(v, unit)}" for n, v in values)
        values = values[:1]
    extra = " / ".join(f"{n} {fmt_value(v, unit)}" for n, v in values[1:])
    ax.text(0.5, 0.55, main, ha="center", va="center", fontsize=16, color="white", weight="bold")
    if extra or len(values) > 1:
        ax.text(0.5, 0.2, f"{name}; {extra}", ha="center", va="center", fontsize=7, color="white")
    return len(values)


def draw_heatmap(ax, panel, prom, window, rate, rng) -> int:
    rows = []
    xs: list[float] = []
    for target in panel["targets"]:
        for name, x, ys in series_of(prom, target, window, rate, rng):
            le = float("inf") if name in ("+Inf", "inf") else float(name)
            rows.append((le, ys))
            xs = x
    if not rows:
        ax.text(0.5, 0.5, "No data", ha="center", va="center", transform=ax.transAxes)
        return 0
    rows.sort()
    counts = [ys for _, ys in rows]
    # cumulative buckets -> per-bucket counts
    per = [counts[0]] + [[b - a for a, b in zip(lo, hi, strict=False)] for lo, hi in itertools.pairwise(counts)]
    width = min(len(r) for r in per)
    matrix = [r[:width] for r in per]
    ax.imshow(matrix, aspect="auto", origin="lower", cmap="inferno", extent=(xs[0], xs[width - 1], 0, len(matrix)))
    ax.set_yticks([i + 0.5 for i in range(len(rows))])
    ax.set_yticklabels(["≤" + (f"{le:g}" if le != float("inf") else "+Inf") for le, _ in rows], fontsize=6)
    ax.set_xlabel("seconds before now", fontsize=7)
    return len(rows)


def draw_state_timeline(ax, panel, prom, window, rate, rng) -> int:
    n = 0
    names = []
    for target in panel["targets"]:
        for name, xs, ys in series_of(prom, target, window, rate, rng):
            for x0, x1, y in zip(xs, [*xs[1:], xs[-1] + window[2]], ys, strict=False):
                _, c = mapped_text(panel, y)
                ax.barh(n, x1 - x0, left=x0, color=c or "#888", height=0.8)
            names.append(name)
            n += 1
    ax.set_yticks(range(n))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("seconds before now", fontsize=7)
    return n


DRAW = {"timeseries": draw_timeseries, "stat": draw_stat, "heatmap": draw_heatmap,
        "state-timeline": draw_state_timeline}


def render(prom: Prom, uid: str, out: Path, minutes: float, rate: str) -> tuple[Path, dict[str, int]]:
    dash = json.loads((DASHBOARDS / f"{uid}.json").read_text())
    panels = dash["panels"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    unit = 0.42  # inches per grid row
    header = 0.9  # inches above the grid for the title
    fig = plt.figure(figsize=(18, bottom * unit + header))
    grid = bottom * unit / (bottom * unit + header)  # fraction of the figure the grid occupies
    fig.suptitle(f"{dash['title']}  (last {minutes:.3g} min, rendered from Prometheus at {prom.url})", fontsize=11)
    end = time.time()
    window = (end - minutes * 60, end, max(1.0, minutes * 60 / 240))
    rng = f"{int(minutes * 60)}s"
    counts: dict[str, int] = {}
    for panel in panels:
        g = panel["gridPos"]
        left, width = g["x"] / 24, g["w"] / 24
        height = g["h"] / bottom * grid
        top = grid - g["y"] / bottom * grid
        if panel["type"] == "row":
            fig.text(left + 0.005, top - height / 2 - 0.01, panel["title"], fontsize=10, weight="bold")
            continue
        ax = fig.add_axes((left + 0.03 * width, top - height + 0.06 * height, width * 0.94, height * 0.80))
        ax.set_title(panel["title"], fontsize=8, loc="left")
        ax.tick_params(labelsize=6)
        counts[panel["title"]] = DRAW[panel["type"]](ax, panel, prom, window, rate, rng)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{uid}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prometheus", help="URL of a running Prometheus, e.g. http://127.0.0.1:9090")
    source.add_argument("--demo", action="store_true", help="start the monitoring test stack here and render it")
    parser.add_argument(
        "--dashboard", default="dlnet-overview", help="dashboard uid(s), comma-separated, or all"
    )
    parser.add_argument("--minutes", type=float, default=None, help="time range (default 15; 1 with --demo)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "dashboards-preview")
    parser.add_argument("--warmup", type=float, default=60.0, help="--demo: seconds of data to collect first")
    args = parser.parse_args(argv)

    uids = sorted(p.stem for p in DASHBOARDS.glob("*.json")) if args.dashboard == "all" else args.dashboard.split(",")
    results = []
    if args.prometheus:
        results = [render(Prom(args.prometheus), uid, args.out, args.minutes or 15, "1m") for uid in uids]
    else:
        sys.path.insert(0, str(ROOT))
        from tests.monitoring.harness import monitoring_stack  # the test stack: doubles, exporters, kubo

        with tempfile.TemporaryDirectory(prefix="dlnet-preview-") as tmp, \
                monitoring_stack(Path(tmp), warmup=args.warmup) as stack:
            minutes = args.minutes or max(0.5, args.warmup / 60)
            results = [render(Prom(stack["prom"].url), uid, args.out, minutes, "10s") for uid in uids]
    failed = False
    for path, counts in results:
        empty = [title for title, n in counts.items() if n == 0]
        failed = failed or bool(empty)
        print(f"wrote {path} ({len(counts)} panels{'; without data: ' + ', '.join(empty) if empty else ''})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
