"""`dlnet tune`: the largest max tx set size that does not stretch ledger close time, found under real load.

Closed loop, as SDF's supercluster MaxTPS missions (facts.md 20): measure the idle close time p50/p95; then a
binary search on the offered rate, each step upgrading `maxTxSetSize` on every validator to
rate x target close x headroom (the `dlnet upgrade` code), holding the load for a measured window and reading
close times and transaction counts from the ledgers. A step is accepted while p50 and p95 stay within the SLO
of idle (default 5 %), no transaction was refused for queue limits (TRY_AGAIN_LATER) and the accepted
transactions were applied. The chosen size is applied at the end; an interrupt or an error restores the size in
force before the run. `--dry-run` measures at the current size and changes nothing.

The decisions (SLO arithmetic, the search, restoring) are plain functions of measured steps: tests drive them
with doubles; the measurements come from dlnet.load.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dlnet.errors import DlnetError

MIN_WINDOW_LEDGERS = 3


class TuneError(DlnetError):
    """Bad tune input or a failed tune run."""


@dataclass(frozen=True)
class Spec:
    slo: float = 0.05  # allowed stretch of p50 and p95 over idle, as a fraction
    window: float = 30.0  # seconds of load per step
    idle_window: float = 30.0  # seconds of idle measurement
    min_rate: float = 50.0  # tx/s, the lower end of the search (assumed good if never tried)
    max_rate: float = 1600.0  # tx/s, the upper end (the generator's ceiling if it cannot offer more)
    steps: int = 5
    headroom: float = 2.0  # maxTxSetSize = rate x close target x headroom (SDF: rate x 10 at 5 s)
    close_target: float = 5.0  # seconds (1 s on accelerated test networks)
    deadline: float = 1800.0  # seconds for the whole run
    dry_run: bool = False
    min_size: int | None = None
    max_size: int | None = None

    def check(self) -> None:
        """Refuse nonsense before anything is touched."""
        if not self.slo > 0:
            raise TuneError(
                f"tune: --slo {self.slo:g} — expected a positive fraction such as 0.05 (5 % over idle) — pass"
                " --slo 0.05"
            )
        if self.slo >= 10:
            raise TuneError(
                f"tune: --slo {self.slo:g} — expected a fraction (0.05 = 5 %), not a percentage — pass"
                f" --slo {self.slo / 100:g}"
            )
        if not self.close_target > 0:
            raise TuneError(f"tune: close target {self.close_target:g}s — expected a positive number of seconds")
        for value, flag in ((self.window, "--window"), (self.idle_window, "--idle-window")):
            if value < MIN_WINDOW_LEDGERS * self.close_target:
                raise TuneError(
                    f"tune: {flag} {value:g}s — expected at least {MIN_WINDOW_LEDGERS} ledgers"
                    f" ({MIN_WINDOW_LEDGERS * self.close_target:g}s at {self.close_target:g}s per ledger) — pass"
                    f" {flag} {MIN_WINDOW_LEDGERS * self.close_target:g} or more"
                )
        for value, flag in ((self.min_rate, "--min-rate"), (self.max_rate, "--max-rate")):
            if not value > 0:
                raise TuneError(f"tune: {flag} {value:g} — expected a positive rate in tx/s — pass e.g. {flag} 100")
        for size, flag in ((self.min_size, "--min-size"), (self.max_size, "--max-size")):
            if size is not None and size < 1:
                raise TuneError(
                    f"tune: {flag} {size} — expected a max tx set size of at least 1 operation — pass a positive number"
                )
        if self.min_rate >= self.max_rate:
            raise TuneError(
                f"tune: --min-rate {self.min_rate:g} >= --max-rate {self.max_rate:g} — expected min below max —"
                " widen the range"
            )
        if self.steps < 1:
            raise TuneError(f"tune: --steps {self.steps} — expected at least 1 — pass e.g. --steps 5")
        if not self.headroom >= 1:
            raise TuneError(f"tune: --headroom {self.headroom:g} — expected 1 or more — pass e.g. 2")
        if not self.deadline > 0:
            raise TuneError(f"tune: --deadline {self.deadline:g} — expected positive seconds — pass e.g. 1800")

    def size_for(self, rate: float) -> int:
        size = math.ceil(rate * self.close_target * self.headroom)
        if self.min_size is not None:
            size = max(size, self.min_size)
        if self.max_size is not None:
            size = min(size, self.max_size)
        return max(1, size)


def check_protocol(versions: dict[str, int]) -> None:
    low = {n: v for n, v in versions.items() if v < 1}
    if low:
        raise TuneError(
            f"tune: the network is at protocol {', '.join(f'{n} {v}' for n, v in low.items())} — expected 1 or"
            " later (protocol 0 refuses every transaction) — run `dlnet upgrade --to-latest` first"
        )


@dataclass(frozen=True)
class Idle:
    p50: float
    p95: float
    mean: float | None = None
    ledgers: int = 0
    slowest: float | None = None  # the longest idle interval
    header_mean: float | None = None  # mean whole-second closeTime gap (the upstream measurement's yardstick)
    timeouts: int | None = None  # timed-out nomination rounds (watched validator)


@dataclass
class Measured:
    """What one load step measured (dlnet.load.StepResult, reduced)."""

    rate: float
    offered_tps: float
    applied_tps: float | None
    p50: float | None
    p95: float | None
    mean: float | None = None
    accepted: int = 0
    applied: int | None = None
    refused_queue: int = 0
    errors: int = 0
    ledgers: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    header_mean: float | None = None
    timeouts: int | None = None


@dataclass
class Step:
    size: int
    rate: float
    offered_tps: float
    applied_tps: float | None
    p50: float | None
    p95: float | None
    refused_queue: int
    errors: int
    ok: bool
    reason: str
    ledgers: int = 0
    ceiling: bool = False  # the generator could not offer the rate asked
    # Why a step's close time moved, as the watched validator counted it: each timed-out nomination round
    # adds a second; the rest of the stretch is nominating (building, fetching, validating) the tx set.
    timeouts: int | None = None
    header_mean: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def limits(idle: Idle, slo: float) -> tuple[float, float]:
    """The largest p50 and p95 a step may show: idle x (1 + slo), where idle's p95 is at least its slowest
    ledger. Close times are whole seconds, so a 5 s network's intervals are 5 or 6 s (measured, 19.14) and the
    p95 of a dozen idle ledgers is 5.0, 5.45 or 6.0 s as none, one or more of them took 6 s: measured idle
    p95 5.455 s, and every load step with one 6 s ledger failed against it, however light the load. A step
    fails p95 when a ledger takes longer than the slowest idle one did (plus the SLO); p50 catches the share
    of slow ledgers growing."""
    p95 = max(idle.p95, idle.slowest or 0.0)
    return idle.p50 * (1 + slo), p95 * (1 + slo)


IDLE_REMEASURES = 2  # extra idle windows while the network settles (e.g. right after an upgrade)


def settled_idle(idle: Idle, spec: Spec, measure_idle: Callable[[], Idle], progress: Callable[[str], None]) -> Idle:
    """An idle baseline near the network's close target, or TuneError.

    Every limit is idle x (1 + slo): an "idle" network that already closes most ledgers a nomination round
    late (p50 6 s at a 5 s target: measured once on the bench right after deploying and upgrading, while
    the same network's idle p50 was 5.00 s in other runs) would let every step through. Measure again, a
    bounded number of times, then refuse rather than tune against it."""
    for remeasured in range(IDLE_REMEASURES + 1):
        if idle.p50 <= spec.close_target * (1 + spec.slo):
            return idle
        if remeasured == IDLE_REMEASURES:
            break
        progress(
            f"tune: idle close p50 {idle.p50:.2f}s is more than {spec.slo:.0%} above the {spec.close_target:g}s"
            " target — measuring idle again"
        )
        idle = measure_idle()
    raise TuneError(
        f"tune: the idle network closes ledgers in p50 {idle.p50:.2f}s, more than {spec.slo:.0%} above its"
        f" {spec.close_target:g}s target ({IDLE_REMEASURES + 1} windows) — expected an idle network near its"
        " target as the baseline — check `dlnet status` (a validator behind, another load running), or pass"
        " --close-target for this network, then re-run"
    )


def judge(m: Measured, idle: Idle, slo: float, size: int) -> Step:
    """Accept or refuse one step; the reason says which condition decided."""
    p50_max, p95_max = limits(idle, slo)
    ceiling = m.offered_tps < 0.9 * m.rate
    reasons = []
    if m.p50 is None or m.p95 is None or m.ledgers < MIN_WINDOW_LEDGERS:
        reasons.append(f"only {m.ledgers} ledgers measured (need {MIN_WINDOW_LEDGERS})")
    else:
        if m.p50 > p50_max:
            reasons.append(f"p50 {m.p50:.2f}s > {p50_max:.2f}s")
        if m.p95 > p95_max:
            reasons.append(f"p95 {m.p95:.2f}s > {p95_max:.2f}s")
    if m.refused_queue:
        reasons.append(f"{m.refused_queue} refused for queue limits (TRY_AGAIN_LATER)")
    if m.applied is not None and m.applied < m.accepted:
        reasons.append(f"{m.accepted - m.applied} accepted but not applied")
    ok = not reasons
    if ceiling:
        note = f"generator ceiling: offered {m.offered_tps:g} of {m.rate:g} tx/s"
        reasons.append(note)
    return Step(
        size,
        m.rate,
        m.offered_tps,
        m.applied_tps,
        m.p50,
        m.p95,
        m.refused_queue,
        m.errors,
        ok,
        "; ".join(reasons) or "within SLO",
        m.ledgers,
        ceiling,
        m.timeouts,
        m.header_mean,
    )


@dataclass
class Search:
    """Binary search on the offered rate: lo is known good, hi known bad (or the range's end)."""

    lo: float
    hi: float
    hi_tried: bool = False

    def next_rate(self) -> float:
        if not self.hi_tried:
            return self.hi  # try the top first: a network that takes it needs no search
        return round((self.lo + self.hi) / 2, 1)

    def record(self, rate: float, ok: bool, ceiling: bool) -> None:
        if rate >= self.hi:
            self.hi_tried = True
        if ok:
            self.lo = max(self.lo, rate)
            if ceiling:  # cannot offer more than this: no point trying higher
                self.hi = rate
        else:
            self.hi = rate

    @property
    def done(self) -> bool:
        return self.hi_tried and (self.hi - self.lo) <= max(1.0, 0.05 * self.lo)


@dataclass
class Outcome:
    idle: Idle
    steps: list[Step]
    chosen: Step | None
    size_before: int
    size_applied: int | None
    dry_run: bool
    slo: float
    at: str
    stopped: str = ""  # why the search ended (done, steps, deadline, ceiling, top of range)
    plot: str | None = None
    record: str | None = None

    @property
    def next_larger(self) -> Step | None:
        if self.chosen is None:
            return min(self.steps, key=lambda s: s.rate, default=None)
        bigger = [s for s in self.steps if s.rate > self.chosen.rate]
        return min(bigger, key=lambda s: s.rate, default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "slo": self.slo,
            "dry_run": self.dry_run,
            "idle": asdict(self.idle),
            "limits": dict(zip(("p50", "p95"), limits(self.idle, self.slo), strict=True)),
            "steps": [s.to_json() for s in self.steps],
            "chosen": self.chosen.to_json() if self.chosen else None,
            "next_larger": self.next_larger.to_json() if self.next_larger else None,
            "size_before": self.size_before,
            "size_applied": self.size_applied,
            "stopped": self.stopped,
            "generator_ceiling": any(s.ceiling for s in self.steps),
            "plot": self.plot,
            "record": self.record,
        }


def run(
    spec: Spec,
    *,
    size_before: int,
    measure_idle: Callable[[], Idle],
    measure_step: Callable[[float, int], Measured],
    set_size: Callable[[int], None],
    progress: Callable[[str], None] = lambda _m: None,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """The closed loop. `set_size` upgrades every validator; it is never called with --dry-run."""
    spec.check()
    started = clock()
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    current = size_before
    changed = False
    try:
        idle = measure_idle()
        if idle.p50 <= 0 or idle.p95 <= 0:
            raise TuneError(
                f"tune: idle close time p50 {idle.p50} / p95 {idle.p95} — expected positive seconds —"
                " are ledgers closing? check `dlnet status`"
            )
        idle = settled_idle(idle, spec, measure_idle, progress)
        p50_max, p95_max = limits(idle, spec.slo)
        progress(
            f"tune: idle close p50 {idle.p50:.2f}s p95 {idle.p95:.2f}s over {idle.ledgers} ledgers; limits"
            f" p50 {p50_max:.2f}s p95 {p95_max:.2f}s"
        )
        search = Search(spec.min_rate, spec.max_rate)
        steps: list[Step] = []
        stopped = "steps"
        # A step is its load window, an upgrade and the drain at least; once one has run, the longest seen
        # (funding channels for a higher rate included). The final apply is one more upgrade.
        per_step = spec.window + 4 * spec.close_target
        reserve = 4 * spec.close_target
        for _ in range(spec.steps):
            if clock() - started + per_step + reserve > spec.deadline:
                stopped = "deadline"
                break
            step_started = clock()
            rate = search.next_rate()
            size = current if spec.dry_run else spec.size_for(rate)
            if size != current and not spec.dry_run:
                progress(f"tune: max tx set size {current} -> {size} on every validator")
                set_size(size)
                current, changed = size, True
            measured = measure_step(rate, size)
            step = judge(measured, idle, spec.slo, size)
            steps.append(step)
            progress(_row(step))
            per_step = max(per_step, clock() - step_started)
            search.record(rate, step.ok, step.ceiling)
            if search.done:
                if step.ok and step.ceiling:
                    stopped = "ceiling"
                elif step.ok and rate >= spec.max_rate:
                    stopped = "top of range"
                else:
                    stopped = "done"
                break
        good = [s for s in steps if s.ok]
        chosen = max(good, key=lambda s: s.rate, default=None)
        applied: int | None = None
        if not spec.dry_run:
            target = chosen.size if chosen else size_before
            if target != current:
                progress(f"tune: applying max tx set size {target}")
                set_size(target)
                current = target
            applied = target
        return Outcome(idle, steps, chosen, size_before, applied, spec.dry_run, spec.slo, at, stopped)
    except BaseException:
        if changed and current != size_before:
            progress(f"tune: interrupted — restoring max tx set size {size_before}")
            set_size(size_before)
        raise


HEAD = ("SIZE", "OFFERED tx/s", "APPLIED tx/s", "CLOSE p50", "CLOSE p95", "NOM. TIMEOUTS", "REFUSED", "OK", "REASON")


def _timeouts(timeouts: int | None, ledgers: int) -> str:
    return "-" if timeouts is None else f"{timeouts}/{ledgers}"



def _fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:.2f}{unit}" if unit else f"{v:g}"


def _cells(s: Step) -> tuple[str, ...]:
    return (
        str(s.size),
        f"{s.offered_tps:g} ({s.rate:g})",
        _fmt(s.applied_tps),
        _fmt(s.p50, "s"),
        _fmt(s.p95, "s"),
        _timeouts(s.timeouts, s.ledgers),
        str(s.refused_queue),
        "yes" if s.ok else "no",
        s.reason,
    )


def _row(s: Step) -> str:
    c = _cells(s)
    return (
        f"tune: size {c[0]} offered {c[1]} applied {c[2]} p50 {c[3]} p95 {c[4]} nomination timeouts {c[5]}"
        f" refused {c[6]}: {c[7]} ({c[8]})"
    )


def table(out: Outcome) -> str:
    rows = [HEAD, *[_cells(s) for s in out.steps]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD) - 1)]
    lines = ["  ".join([c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)] + [r[-1]]) for r in rows]
    p50_max, p95_max = limits(out.idle, out.slo)
    lines.insert(
        0,
        f"idle close p50 {out.idle.p50:.2f}s p95 {out.idle.p95:.2f}s (nomination timeouts"
        f" {_timeouts(out.idle.timeouts, out.idle.ledgers)}); SLO {out.slo:.0%}: p50 <= {p50_max:.2f}s, p95 <="
        f" {p95_max:.2f}s",
    )
    if out.chosen:
        verb = "would apply" if out.dry_run else "applied"
        lines.append(
            f"chosen: max tx set size {out.chosen.size} at {out.chosen.rate:g} tx/s (close p95"
            f" {_fmt(out.chosen.p95, 's')}); {verb}" + ("" if out.dry_run else f" {out.size_applied}")
        )
    else:
        lines.append(f"no step within the SLO; max tx set size stays {out.size_before}")
    if any(s.ceiling for s in out.steps):
        lines.append("note: the load generator's own ceiling was reached (offered less than asked)")
    if out.stopped == "top of range":
        lines.append("note: the top of the search range passed: the network may take more — raise --max-rate")
    lines.append(f"search ended: {out.stopped}")
    return "\n".join(lines)


# ---- where the operator finds the result again ---------------------------------------------------------------
def record_path(state: Path) -> Path:
    return state / "tune" / "latest.json"


def save(out: Outcome, state: Path) -> Path:
    """Write the run (table + decision) under the environment's state dir; latest.json points at it."""
    folder = state / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = out.at.replace(":", "").replace("-", "")
    run_file = folder / f"run-{stamp}.json"
    out.record = str(record_path(state))
    payload = out.to_json()
    run_file.write_text(json.dumps(payload, indent=2, sort_keys=True))
    if not out.dry_run:
        tmp = folder / "latest.json.tmp"
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
        tmp.replace(record_path(state))
    return run_file


def load_record(state: Path) -> dict[str, Any] | None:
    """The last applied tune run, or None (never tuned, or unreadable)."""
    try:
        data = json.loads(record_path(state).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("chosen") else None


def summary_line(rec: dict[str, Any]) -> str:
    c = rec["chosen"]
    day = str(rec.get("at", ""))[:10]
    p95 = c.get("p95")
    return (
        f"max tx set size {rec.get('size_applied', c['size'])} (tuned on {day} at {c['rate']:g} tx/s, close p95"
        f" {p95:.2f} s)"
        if p95 is not None
        else f"max tx set size {c['size']} (tuned on {day} at {c['rate']:g} tx/s)"
    )


def plot(out: Outcome, path: Path) -> Path:
    """PNG of close time (p50/p95) and throughput against max tx set size."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TuneError(
            "tune: matplotlib is missing — expected the `tune` extra — pip install 'dlnet[tune]' (or pass --no-plot)"
        ) from None
    steps = sorted(out.steps, key=lambda s: (s.size, s.rate))
    x = [s.size for s in steps]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(x, [s.p50 for s in steps], "o-", label="close p50")
    ax.plot(x, [s.p95 for s in steps], "s-", label="close p95")
    _, p95_max = limits(out.idle, out.slo)
    ax.axhline(p95_max, color="red", linestyle="--", linewidth=1, label=f"p95 limit (idle +{out.slo:.0%})")
    ax.set_xlabel("max tx set size (operations)")
    ax.set_ylabel("ledger close time (s)")
    ax2 = ax.twinx()
    ax2.plot(x, [s.applied_tps or 0 for s in steps], "^:", color="green", label="applied tx/s")
    ax2.set_ylabel("applied tx/s")
    if out.chosen:
        ax.axvline(out.chosen.size, color="grey", linestyle=":", linewidth=1)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    ax.set_title("dlnet tune: close time and throughput against max tx set size")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---- glue to the load engine (dlnet.load) ---------------------------------------------------------------------
def idle_from(closes: list[Any]) -> Idle:
    """Idle close time from watched ledgers (dlnet.load.Close records)."""
    from dlnet.load import close_stats

    st = close_stats(closes)
    if st.p50 is None or st.p95 is None or st.ledgers < MIN_WINDOW_LEDGERS:
        raise TuneError(
            f"tune: only {st.ledgers} ledgers closed during the idle window — expected at least"
            f" {MIN_WINDOW_LEDGERS} — check that ledgers close (dlnet status) or lengthen --idle-window"
        )
    return Idle(
        st.p50, st.p95, st.mean, st.ledgers, max(st.gaps) if st.gaps else None, st.header_mean, st.nomination_timeouts
    )


def measured_from(r: Any, rate: float) -> Measured:
    """dlnet.load.StepResult -> Measured."""
    errors = sum(v for k, v in r.statuses.items() if k not in ("PENDING", "DUPLICATE", "TRY_AGAIN_LATER"))
    return Measured(
        rate=rate,
        offered_tps=r.offered_tps,
        applied_tps=r.applied_tps,
        p50=r.closes.p50,
        p95=r.closes.p95,
        mean=r.closes.mean,
        accepted=r.accepted,
        applied=r.applied_txs,
        refused_queue=r.refused_queue,
        errors=errors,
        ledgers=r.closes.ledgers,
        codes=dict(r.codes),
        header_mean=r.closes.header_mean,
        timeouts=r.closes.nomination_timeouts,
    )
