"""A watcher for day-2 runs on ops_network: every validator's /info and container state, every ~0.3 s.

It records what the tests assert on: how many validators were down at each sample (admin port refusing,
not `Synced!`, or container not running; a running validator that answers slowly is counted apart), and
when each new ledger was first seen (the longest gap between two is the longest time the network closed
nothing)."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from dataclasses import dataclass, field

import httpx

from tests.network import OPS_ENV, ops_ports

VALIDATORS = ("v1", "v2", "v3")


def admin_port(name: str) -> int:
    return ops_ports().peer + 10 * VALIDATORS.index(name) + 1


def core_container(name: str) -> str:
    return f"dlnet-{OPS_ENV}-core-{name}"


def container_ids() -> dict[str, str]:
    """Validator name -> id of its container (recreated = another id)."""
    out = {}
    for v in VALIDATORS:
        proc = subprocess.run(
            ["docker", "inspect", "-f", "{{.Id}}", core_container(v)], capture_output=True, text=True, check=False
        )
        out[v] = proc.stdout.strip()
    return out


def running() -> dict[str, bool]:
    proc = subprocess.run(
        ["docker", "ps", "--filter", f"label=dlnet.environment={OPS_ENV}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    names = set(proc.stdout.split())
    return {v: core_container(v) in names for v in VALIDATORS}


def info(client: httpx.Client, name: str, timeout: float = 0.5) -> dict | None:  # type: ignore[type-arg]
    try:
        return client.get(f"http://127.0.0.1:{admin_port(name)}/info", timeout=timeout).json()["info"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def probe(client: httpx.Client, name: str) -> dict | str:  # type: ignore[type-arg]
    """/info, or "refused" (nothing listens: the process is away), or "slow" (no answer within 1.5 s: on
    this shared 2-core machine a busy validator, not a stopped one; counted apart, never as up)."""
    try:
        return client.get(f"http://127.0.0.1:{admin_port(name)}/info", timeout=1.5).json()["info"]
    except httpx.TimeoutException:
        return "slow"
    except (httpx.HTTPError, ValueError, KeyError):
        return "refused"


@dataclass
class Sample:
    at: float
    down: list[str]  # container not running, admin port refusing, or not Synced!
    ledgers: dict[str, int]
    slow: list[str] = field(default_factory=list)  # running but no answer within 1.5 s


@dataclass
class Watcher:
    every: float = 0.3
    samples: list[Sample] = field(default_factory=list)
    first_seen: dict[int, float] = field(default_factory=dict)  # ledger -> when some validator first showed it
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Watcher:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with httpx.Client(trust_env=False) as client:
            while not self._stop.is_set():
                t = time.monotonic()
                up = running()
                down, slow, ledgers = [], [], {}
                for v in VALIDATORS:
                    i = probe(client, v)
                    if i == "slow" and up[v]:
                        slow.append(v)
                    elif isinstance(i, str) or i.get("state") != "Synced!" or not up[v]:
                        down.append(v)
                    if isinstance(i, dict):
                        num = int(i["ledger"]["num"])
                        ledgers[v] = num
                        self.first_seen.setdefault(num, time.monotonic())
                self.samples.append(Sample(t, down, ledgers, slow))
                self._stop.wait(max(0.0, self.every - (time.monotonic() - t)))

    @property
    def most_down(self) -> int:
        return max((len(s.down) for s in self.samples), default=0)

    def longest_gap(self) -> float:
        """Longest time between two new ledgers being seen (the last gap runs to the end of the watch)."""
        times = sorted(self.first_seen.values())
        if not times:
            return float("inf")
        end = self.samples[-1].at if self.samples else times[-1]
        gaps = [b - a for a, b in itertools.pairwise(times)] + [end - times[-1]]
        return max(gaps)

    def downtime(self, name: str) -> float:
        """Seconds `name` was seen down (samples x interval, approximately)."""
        return sum(self.every for s in self.samples if name in s.down)

    def when_down(self) -> list[tuple[float, list[str], list[str]]]:
        return [(round(s.at, 1), s.down, s.slow) for s in self.samples if s.down or s.slow]

    def overlaps(self) -> list[tuple[float, list[str]]]:
        """Samples with more than one validator down."""
        return [(round(s.at, 1), s.down) for s in self.samples if len(s.down) > 1]

    @property
    def slow_samples(self) -> int:
        return sum(1 for s in self.samples if s.slow)


def all_synced_same_ledger(timeout: float = 60) -> dict[str, tuple[int, str]]:
    """Wait until every validator is Synced! on the same ledger (number and hash); return what they show."""
    deadline = time.monotonic() + timeout
    last: dict[str, tuple[int, str]] = {}
    with httpx.Client(trust_env=False) as client:
        while time.monotonic() < deadline:
            infos = {v: info(client, v) for v in VALIDATORS}
            last = {
                v: (int(i["ledger"]["num"]), str(i["ledger"]["hash"]))
                for v, i in infos.items()
                if i is not None and i.get("state") == "Synced!"
            }
            if len(last) == len(VALIDATORS) and len(set(last.values())) == 1:
                return last
            time.sleep(0.3)
    raise AssertionError(f"validators not all Synced! on one ledger within {timeout:g} s: {last}")
