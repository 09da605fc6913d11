"""`dlnet drill`: scripted faults against a deployed network, each with a measured outcome.

Every fault stops (or wipes, or kills) something real, measures what the rest of the network does, then puts
back what it touched, in a `finally`, so a failed check, an exception or Ctrl-C still restores it. Validators
come back through the stellar_core role itself (`deploy/site.yml --tags stellar_core`, as `make up` would):
the role decides which start plainly and which with `run --wait-for-consensus`, re-initialises a wiped one,
and waits for `Synced!`; the drill does not carry a second copy of that logic. Containers are found by the
kit's labels (dlnet.environment / dlnet.host / dlnet.component), validators are read through their admin
API (dlnet.core_admin). Every wait has a deadline, and the whole run has one (--deadline).

Halts are judged by the ledger, never by `state`: stellar-core 19.14 keeps saying `Synced!` for about 30 s
after it lost its quorum (shared/reference README item 7).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from dlnet.config import Network
from dlnet.core_admin import CoreAdmin, CoreAdminError, Info
from dlnet.errors import DlnetError

KIT_ROOT = Path(__file__).resolve().parent.parent
KILL_ATTEMPTS = 3  # service-kill: kills until one lands while a write is in flight


@dataclass
class KillRun:
    """What one service-kill saw: records wanted, acknowledged before the kill, unanswered (retried), cut
    mid-request, stored after, left after cleanup; seconds until healthy again."""

    want: dict[str, dict[str, str]]
    acked_at_kill: set[str]
    unanswered: set[str]
    interrupted: set[str]
    stored: dict[str, dict[str, Any]]
    left: dict[str, dict[str, Any]]
    recovery: float

    def diff(self) -> dict[str, list[str]]:
        """Records acknowledged but not stored as sent, missing, stored with other content, not ours."""
        want, stored = self.want, self.stored
        return {
            "lost_acknowledged": sorted(n for n in self.acked_at_kill if stored.get(n) != want[n]),
            "missing": sorted(set(want) - set(stored)),
            "wrong_content": sorted(n for n in stored if n in want and stored[n] != want[n]),
            "extra": sorted(set(stored) - set(want)),
        }

    def damage(self) -> list[str]:
        """What the kill broke (empty: every record once, with its content, none left after cleanup)."""
        d, out = self.diff(), []
        if d["lost_acknowledged"]:
            out.append(f"acknowledged writes lost: {d['lost_acknowledged'][:5]}")
        if d["missing"] or d["wrong_content"] or d["extra"]:
            out.append(f"missing {d['missing'][:5]} wrong {d['wrong_content'][:5]} extra {d['extra'][:5]}")
        if self.left:
            out.append(f"{len(self.left)} drill records left after cleanup")
        return out

# name -> what it proves (the order they run in: validator faults first, each leaving the network healthy).
FAULTS: dict[str, str] = {
    "tolerated-failures": "stop f validators (f from the quorum analysis): ledgers keep closing",
    "quorum-loss": "stop the smallest breaking set (f+1): the network halts, and recovers when they return",
    "wipe-validator": "wipe one validator's ledger, buckets and archive: it catches up to the others' ledger hash",
    "horizon-restart": "stop Horizon while ledgers close, start it: no gap in its ingested ledgers",
    "ipfs-node-down": "stop one IPFS bootstrap node: a checkpoint pinned on both is still served by the other",
    "service-kill": "SIGKILL the federation service amid admin writes: no acknowledged write lost, none doubled",
}


class DrillError(DlnetError):
    """A fault's check failed, or a step of it could not be done."""


class DeadlineReached(DrillError):
    """The drill's overall deadline ran out."""


class RestoreFailed(DrillError):
    """What a fault stopped could not be put back: the drill stops there."""


def parse_only(only: str | None) -> list[str]:
    """The faults to run, in the drill's order; unknown names are refused before anything is touched."""
    if only is None or not only.strip():
        return list(FAULTS)
    asked = [x.strip() for x in only.split(",") if x.strip()]
    unknown = [x for x in asked if x not in FAULTS]
    if unknown:
        raise DlnetError(
            f"drill: --only {', '.join(unknown)} — expected fault names from {', '.join(FAULTS)}"
            " — fix the names (comma-separated)"
        )
    return [f for f in FAULTS if f in asked]


def check_deadline(deadline: float) -> float:
    if not deadline > 0 or deadline != deadline:  # also NaN
        raise DlnetError(f"drill: --deadline {deadline:g} — expected seconds > 0 — pass e.g. --deadline 600")
    return float(deadline)


# ---------------------------------------------------------------------------------------------------------
# Measurements


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100), at least 1
    return float(ordered[int(rank) - 1])


@dataclass
class Trace:
    """(monotonic time, highest ledger seen) samples taken while a fault lasts."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def add(self, t: float, ledger: int | None) -> None:
        if ledger is not None:
            self.samples.append((t, ledger))

    @property
    def first(self) -> int | None:
        return self.samples[0][1] if self.samples else None

    @property
    def last(self) -> int | None:
        return max(s[1] for s in self.samples) if self.samples else None

    @property
    def closed(self) -> int:
        return (self.last - self.first) if self.samples else 0  # type: ignore[operator]

    def intervals(self) -> list[float]:
        """Seconds between successive new ledgers, as seen by the sampler; k ledgers that appear between two
        samples share the gap evenly. The first new ledger has no interval (its predecessor's time is unknown)."""
        out: list[float] = []
        seen_t: float | None = None
        top: int | None = None
        for t, n in self.samples:
            if top is None:
                top = n
                continue
            if n > top:
                if seen_t is not None:
                    out += [(t - seen_t) / (n - top)] * (n - top)
                seen_t, top = t, n
        return out

    def stalled_for(self, now: float) -> float:
        """Seconds since the highest ledger last changed (or since sampling began)."""
        if not self.samples:
            return 0.0
        top = self.last
        since = next(t for t, n in self.samples if n == top)
        return now - since


@dataclass
class Result:
    fault: str
    outcome: str  # pass | fail | skipped
    detail: str
    ledgers: int | None = None
    p50: float | None = None
    p95: float | None = None
    recovery_seconds: float | None = None
    seconds: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("p50", "p95", "recovery_seconds", "seconds"):
            if out[k] is not None:
                out[k] = round(out[k], 2)
        return out


def table(results: list[Result]) -> str:
    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    head = ("FAULT", "OUTCOME", "LEDGERS", "CLOSE P50 s", "CLOSE P95 s", "RECOVERY s", "DETAIL")
    rows = [
        (
            r.fault,
            r.outcome.upper() if r.outcome == "fail" else r.outcome,
            "-" if r.ledgers is None else str(r.ledgers),
            num(r.p50),
            num(r.p95),
            num(r.recovery_seconds),
            r.detail,
        )
        for r in results
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    lines = ["  ".join([c.ljust(w) for c, w in zip(r[:6], widths, strict=True)] + [r[6]]) for r in [head, *rows]]
    passed = sum(r.outcome == "pass" for r in results)
    failed = sum(r.outcome == "fail" for r in results)
    skipped = sum(r.outcome == "skipped" for r in results)
    lines.append(f"drill: {passed} passed, {failed} failed, {skipped} skipped")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Side effects: the docker engine and the kit's own playbook (a Protocol, so the unit tests can fake them)


class Ops(Protocol):
    def containers(self) -> dict[tuple[str, str], str]: ...  # (host, component) -> container name
    def stop(self, name: str) -> None: ...
    def start(self, name: str) -> None: ...
    def kill(self, name: str) -> None: ...
    def running(self, name: str) -> bool: ...
    def wipe_validator(self, name: str) -> None: ...
    def restore_validators(self, reinitialise: bool = False) -> None: ...


@dataclass
class DockerOps:
    """The docker CLI on this machine, and `deploy/site.yml --tags stellar_core` for validators."""

    env: str
    inventory: str
    extra_vars: list[str]
    log: Path
    timeout: float = 60.0

    def _docker(self, *args: str, timeout: float | None = None) -> str:
        try:
            proc = subprocess.run(
                ["docker", *args], capture_output=True, text=True, timeout=timeout or self.timeout, check=False
            )
        except FileNotFoundError:
            raise DrillError("drill: no `docker` command — expected the Docker CLI on this host — install it") from None
        except subprocess.TimeoutExpired:
            raise DrillError(
                f"drill: docker {' '.join(args[:2])} did not finish within {timeout or self.timeout:g}s"
            ) from None
        if proc.returncode != 0:
            raise DrillError(f"drill: docker {' '.join(args)} failed: {proc.stderr.strip()[:300]}")
        return proc.stdout

    def containers(self) -> dict[tuple[str, str], str]:
        fmt = '{{.Names}}\t{{.Label "dlnet.host"}}\t{{.Label "dlnet.component"}}'
        out = self._docker("ps", "-a", "--filter", f"label=dlnet.environment={self.env}", "--format", fmt)
        found: dict[tuple[str, str], str] = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                found[(parts[1], parts[2])] = parts[0]
        return found

    def stop(self, name: str) -> None:
        self._docker("stop", "--time", "20", name, timeout=60)

    def start(self, name: str) -> None:
        self._docker("start", name)

    def kill(self, name: str) -> None:
        self._docker("kill", "--signal", "KILL", name)

    def running(self, name: str) -> bool:
        return self._docker("inspect", "--format", "{{.State.Running}}", name).strip() == "true"

    def wipe_validator(self, name: str) -> None:
        """Delete a stopped validator's ledger database, buckets, archive contents and first-start marker; keep
        its configuration (the role renders it again anyway). Done inside the validator's own image, as the
        user that owns the data."""
        data = ""
        for m in json.loads(self._docker("inspect", "--format", "{{json .Mounts}}", name)):
            if m.get("Destination") == "/var/lib/stellar":
                data = m["Source"]
        image = self._docker("inspect", "--format", "{{.Config.Image}}", name).strip()
        if not data:
            raise DrillError(
                f"drill: {name} has no /var/lib/stellar mount — expected the stellar_core role's container"
            )
        script = (
            "set -e; cd /var/lib/stellar; for f in * .dlnet-network; do case $f in config|archive|'*') ;;"
            ' *) rm -rf -- "$f" ;; esac; done; [ -d archive ] && find archive -mindepth 1 -delete; ls -A'
        )
        left = self._docker(
            "run",
            "--rm",
            "--network=none",
            "--entrypoint",
            "busybox",
            "-v",
            f"{data}:/var/lib/stellar",
            image,
            "sh",
            "-c",
            script,
        ).split()
        if sorted(left) != ["archive", "config"]:
            raise DrillError(f"drill: wiping {name} left {left} — expected only config/ and an empty archive/")

    def restore_validators(self, reinitialise: bool = False) -> None:
        """The stellar_core role over every validator: running ones are left as they are, stopped ones start
        (behind or rejoining a running network: `--wait-for-consensus`), and the role waits for Synced!. Only
        its run step (tag stellar_core_run) unless a wiped validator must be initialised again (the whole
        role: configuration, new-db and new-hist exactly as at its first start)."""
        playbook = Path(sys.executable).parent / "ansible-playbook"
        site = KIT_ROOT / "deploy" / "site.yml"
        if not (playbook.is_file() and site.is_file()):
            raise DrillError(
                f"drill: cannot restart validators — expected {site} and {playbook} (the kit's checkout and its"
                " venv with the deploy extra) — run dlnet from the kit's .venv"
            )
        tags = "stellar_core" if reinitialise else "stellar_core_run"
        args = [str(playbook), "-i", self.inventory, str(site), "--tags", tags]
        for ev in self.extra_vars:
            args += ["-e", ev]
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        try:
            proc = subprocess.run(args, capture_output=True, text=True, cwd=KIT_ROOT, env=env, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            raise DrillError("drill: the stellar_core role did not finish within 600s") from None
        self.log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.log.open("a") as fh:  # no_log keeps secrets out of this output; kept beside the state, 0600
            fh.write(proc.stdout + proc.stderr)
        self.log.chmod(0o600)
        if proc.returncode != 0:
            task = ""
            for line in proc.stdout.splitlines():
                if line.startswith("TASK ["):
                    task = line.strip(" *")
                if line.startswith("fatal:"):
                    break
            raise DrillError(
                f"drill: restarting the validators through the stellar_core role failed at {task or 'a task'}"
                f" — see {self.log}"
            )


# ---------------------------------------------------------------------------------------------------------
# The drill


@dataclass
class Clock:
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass
class Plan:
    """What the quorum analysis says and which validators each fault touches."""

    tolerates: int
    tolerated: list[str]  # f validators to stop
    breaking: list[str]  # f+1 validators whose loss stops the rest
    stalled: list[str]  # the validators that stop then
    wiped: str


def plan(net: Network) -> Plan:
    from dlnet import preflight

    problems, analysis = preflight.quorum_gate(net)
    if analysis is None or problems:
        raise DlnetError(
            f"drill: {net.inventory or net.env}: the quorum gate refuses this inventory"
            f" ({'; '.join(problems)[:300] or 'no validators'}) — run `dlnet quorum -i ...` and fix it first"
        )
    names = [v.name for v in net.validators]
    failed, stalled = analysis.breaking or ([], [])
    f = analysis.tolerates
    tolerated = (failed[:f] + [n for n in reversed(names) if n not in failed])[:f]
    return Plan(f, tolerated, list(failed), list(stalled), names[-1])


@dataclass
class Drill:
    net: Network
    ops: Ops
    deadline: float  # seconds for the whole run
    admin_timeout: float = 2.0
    clock: Clock = field(default_factory=Clock)
    progress: Callable[[str], None] = lambda _m: None
    admins: dict[str, CoreAdmin] = field(default_factory=dict)
    ledger_seconds: float = 0.0  # expected close time: 1 s accelerated, 5 s otherwise
    secrets_dir: Path | None = None

    def __post_init__(self) -> None:
        self._end = self.clock.now() + self.deadline
        if not self.admins:
            self.admins = {
                v.name: CoreAdmin(v.name, f"http://{v.address}:{v.http_port}", timeout=self.admin_timeout)
                for v in self.net.validators
            }
        if not self.ledger_seconds:
            self.ledger_seconds = 1.0 if self.net.accelerate_time else 5.0
        self._containers: dict[tuple[str, str], str] | None = None

    # -- time ---------------------------------------------------------------------------------------
    def remaining(self) -> float:
        return self._end - self.clock.now()

    def _bound(self, seconds: float) -> float:
        """A wait's own limit, cut to what is left of the drill's deadline."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineReached(f"the drill's deadline ({self.deadline:g}s) was reached")
        return min(seconds, left)

    def wait(self, what: str, check: Callable[[], Any], seconds: float, every: float = 0.5) -> Any:
        """Poll check() until it returns something truthy; DrillError naming `what` after `seconds`."""
        limit = self._bound(seconds)
        end = self.clock.now() + limit
        last: Any = None
        error: BaseException | None = None
        while True:
            try:
                last = check()
            except (DeadlineReached, RestoreFailed):
                raise
            except (DlnetError, httpx.HTTPError, ValueError) as exc:  # not yet: down, refused, half-started
                last, error = None, exc
            if last:
                return last
            if self.clock.now() >= end:
                if self.remaining() <= 0:
                    raise DeadlineReached(f"{what}: the drill's deadline ({self.deadline:g}s) was reached")
                why = f" (last: {str(error)[:200] or type(error).__name__})" if error else ""
                raise DrillError(f"{what}: not within {limit:.0f}s{why}")
            self.clock.sleep(every)

    # -- validators ---------------------------------------------------------------------------------
    def infos(self, names: list[str] | None = None) -> dict[str, Info | None]:
        out: dict[str, Info | None] = {}
        for n in names or list(self.admins):
            try:
                out[n] = self.admins[n].info()
            except CoreAdminError:
                out[n] = None
        return out

    def top_ledger(self, names: list[str]) -> int | None:
        nums = [i.ledger.num for i in self.infos(names).values() if i]
        return max(nums) if nums else None

    def in_step(self) -> tuple[int, str] | None:
        """(ledger, hash) when every validator is Synced! on the same ledger with the same hash."""
        infos = self.infos()
        if not all(i and i.synced for i in infos.values()):
            return None
        heads = {(i.ledger.num, i.ledger.hash) for i in infos.values() if i}
        return next(iter(heads)) if len(heads) == 1 else None

    def describe(self) -> str:
        """Each validator's state and ledger, for messages."""
        return ", ".join(f"{n} {i.state} at {i.ledger.num}" if i else f"{n} down" for n, i in self.infos().items())

    def healthy(self, seconds: float = 60.0) -> tuple[int, str]:
        """Every validator Synced! on one ledger (sampled until they agree: 1 s ledgers move under a sample)."""
        try:
            return self.wait("every validator Synced! on one ledger hash", self.in_step, seconds, every=0.2)  # type: ignore[no-any-return]
        except DeadlineReached:
            raise
        except DrillError as exc:
            raise DrillError(f"{exc} ({self.describe()})") from None

    def observe(self, names: list[str], until: Callable[[Trace], bool], seconds: float) -> Trace:
        """Sample the highest ledger of `names` every 0.2 s until until(trace) or `seconds` pass."""
        limit = self._bound(seconds)
        trace = Trace()
        end = self.clock.now() + limit
        while True:
            trace.add(self.clock.now(), self.top_ledger(names))
            if until(trace) or self.clock.now() >= end:
                return trace
            self.clock.sleep(0.2)

    @contextmanager
    def sampling(self, names: list[str]) -> Iterator[Trace]:
        """Sample the highest ledger of `names` every 0.2 s in the background while the block runs (a restore
        through the role blocks the drill's own thread)."""
        trace = Trace()
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                trace.add(self.clock.now(), self.top_ledger(names))
                done.wait(0.2)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield trace
        finally:
            done.set()
            thread.join(timeout=10)

    def container(self, host: str, component: str) -> str:
        if self._containers is None:
            self._containers = self.ops.containers()
        name = self._containers.get((host, component))
        if not name:
            raise DrillError(
                f"drill: no container labelled dlnet.environment={self.net.env} dlnet.host={host}"
                f" dlnet.component={component} — expected the deployed network of this inventory (make up)"
            )
        return name

    # -- the run ------------------------------------------------------------------------------------
    def run(self, faults: list[str]) -> list[Result]:
        handlers: dict[str, Callable[[Result], None]] = {
            "tolerated-failures": self.tolerated_failures,
            "quorum-loss": self.quorum_loss,
            "wipe-validator": self.wipe_validator,
            "horizon-restart": self.horizon_restart,
            "ipfs-node-down": self.ipfs_node_down,
            "service-kill": self.service_kill,
        }
        results: list[Result] = []
        broken = ""
        if self.net.components.stellar_core and self.net.validators:
            try:  # faults are measured against a healthy network, never a half-broken one
                self.healthy(30)
            except DrillError:
                raise DrillError(
                    f"drill: {self.net.env} is not healthy before any fault ({self.describe()}) — expected every"
                    " validator Synced! on one ledger — run `make status`, fix it, then drill"
                ) from None
        for name in faults:
            r = Result(name, "pass", "")
            results.append(r)
            skip = self.skip_reason(name)
            if skip:
                r.outcome, r.detail = "skipped", skip
                continue
            if broken:
                r.outcome, r.detail = "fail", f"not run: {broken}"
                continue
            started = self.clock.now()
            self.progress(f"drill: {name}: {FAULTS[name]}")
            try:
                handlers[name](r)
            except KeyboardInterrupt:
                self.progress(f"drill: {name}: interrupted; what it had stopped was put back — the rest did not run")
                raise
            except DeadlineReached as exc:
                r.outcome, r.detail = "fail", str(exc)
                broken = f"the drill's deadline ({self.deadline:g}s) was reached"
            except (DlnetError, httpx.HTTPError, ValueError, KeyError) as exc:
                r.outcome, r.detail = "fail", (str(exc) or type(exc).__name__).removeprefix("drill: ")
                if isinstance(exc, RestoreFailed):
                    broken = f"{name} could not restore what it stopped"
            r.seconds = self.clock.now() - started
            self.progress(f"drill: {name}: {r.outcome} ({r.seconds:.0f}s) {r.detail}")
        return results

    def skip_reason(self, name: str) -> str:
        c, net = self.net.components, self.net
        if name in ("tolerated-failures", "quorum-loss", "wipe-validator"):
            if not (c.stellar_core and net.validators):
                return "no validators in this inventory"
            if name == "tolerated-failures":
                return "" if self._plan().tolerates > 0 else "the quorum tolerates no failure (f = 0)"
            if name == "quorum-loss":
                return "" if self._plan().breaking else "no set of failures stops a validator"
            return "" if len(net.validators) > 1 else "one validator: there is no other archive to catch up from"
        if name == "horizon-restart":
            return "" if c.horizon and net.horizon else "no Horizon in this inventory"
        if name == "ipfs-node-down":
            have = len(net.ipfs) if c.ipfs else 0
            return "" if have >= 2 else f"needs 2 IPFS bootstrap nodes, this inventory has {have}"
        if name == "service-kill":
            if not (c.services and net.services_enabled.federation and net.services):
                return "no federation service in this inventory (the drill's write path is its admin API)"
            return ""
        return ""

    def _plan(self) -> Plan:
        if not hasattr(self, "_plan_cache"):
            self._plan_cache = plan(self.net)
        return self._plan_cache

    @contextmanager
    def stopped_validators(self, names: list[str], reinitialise: bool = False) -> Iterator[list[str]]:
        """Stop validators; whatever happens inside, they are restored (the role) on the way out unless the
        fault restored them itself (by emptying the list)."""
        down: list[str] = []
        try:
            for n in names:
                self.ops.stop(self.container(n, "stellar-core"))
                down.append(n)
            yield down
        finally:
            if down:
                self.progress(f"drill: restoring validators {', '.join(down)}")
                try:
                    self.ops.restore_validators(reinitialise)
                except DlnetError as exc:
                    raise RestoreFailed(str(exc)) from None

    def restore(self, down: list[str], beyond: int = 0, reinitialise: bool = False) -> float:
        """Restore stopped validators (the role); seconds until every validator is Synced! on one ledger hash,
        past ledger `beyond` (a halted network has recovered only once it closes ledgers again)."""
        t0 = self.clock.now()
        try:
            self.ops.restore_validators(reinitialise)
        except DlnetError as exc:
            raise RestoreFailed(str(exc)) from None
        down.clear()

        def moved() -> tuple[int, str] | None:
            head = self.in_step()
            return head if head and head[0] > beyond else None

        self.wait(f"every validator Synced! on one ledger past {beyond}", moved, 120, every=0.2)
        return self.clock.now() - t0

    # -- 1. f validators down --------------------------------------------------------------------------
    def tolerated_failures(self, r: Result) -> None:
        p = self._plan()
        self.healthy()
        up = [v.name for v in self.net.validators if v.name not in p.tolerated]
        target = 6  # few, so the stopped validator rejoins from its peers' recent ledgers, not a long catch-up
        with self.stopped_validators(p.tolerated) as down:
            # Long enough for `target` ledgers at 4x the expected pace, so a slow but live network passes.
            trace = self.observe(up, lambda t: t.closed >= target, target * self.ledger_seconds * 4 + 10)
            r.ledgers = trace.closed
            iv = trace.intervals()
            r.p50, r.p95 = percentile(iv, 50), percentile(iv, 95)
            r.recovery_seconds = self.restore(down)
        r.facts = {"stopped": p.tolerated, "tolerates": p.tolerates, "ledger_seconds_expected": self.ledger_seconds}
        r.detail = f"stopped {', '.join(p.tolerated)} (f={p.tolerates}); {trace.closed} ledgers closed"
        if trace.closed < 3:
            r.outcome = "fail"
            r.detail += " — expected ledgers to keep closing (at least 3)"

    # -- 2. f+1 validators down --------------------------------------------------------------------------
    def quorum_loss(self, r: Result) -> None:
        p = self._plan()
        self.healthy()
        # No new ledger for this long means halted: 5x the expected close time (at least 5 s).
        stall = max(5.0, 5 * self.ledger_seconds)
        with self.stopped_validators(p.breaking) as down:
            trace = self.observe(p.stalled, lambda t: t.stalled_for(self.clock.now()) >= stall, stall + 30)
            halted = trace.stalled_for(self.clock.now()) >= stall
            states = {n: (i.state if i else "down") for n, i in self.infos(p.stalled).items()}
            ages = {n: i.ledger.age for n, i in self.infos(p.stalled).items() if i}
            r.ledgers = trace.closed
            iv = trace.intervals()
            r.p50, r.p95 = percentile(iv, 50), percentile(iv, 95)
            halt_at = trace.last
            r.recovery_seconds = self.restore(down, beyond=halt_at or 0)
            after = self.top_ledger([v.name for v in self.net.validators]) or 0
        r.facts = {
            "stopped": p.breaking,
            "stalled": p.stalled,
            "halted": halted,
            "halted_at_ledger": halt_at,
            "stall_seconds": stall,
            "states_while_halted": states,
            "ledger_age_while_halted": ages,
            "ledger_after_recovery": after,
        }
        said = ", ".join(f"{n} {s}" + (f" with ledger age {ages[n]}s" if n in ages else "") for n, s in states.items())
        if not halted:
            r.outcome = "fail"
            r.detail = f"stopped {', '.join(p.breaking)}: ledgers kept closing ({trace.closed}) — expected a halt"
            return
        r.detail = (
            f"stopped {', '.join(p.breaking)}: halted at ledger {halt_at} (no ledger for {stall:g}s; {said});"
            f" recovered to {after}"
        )
        if after <= (halt_at or 0):
            r.outcome = "fail"
            r.detail += " — expected ledgers to close again after the restore"

    # -- 3. one validator wiped ------------------------------------------------------------------------------
    def wipe_validator(self, r: Result) -> None:
        p = self._plan()
        self.healthy()
        victim = p.wiped
        others = [v.name for v in self.net.validators if v.name != victim]
        name = self.container(victim, "stellar-core")
        with self.sampling(others) as trace, self.stopped_validators([victim], reinitialise=True) as down:
            before = self.top_ledger(others) or 0
            self.ops.wipe_validator(name)
            r.recovery_seconds = self.restore(down, reinitialise=True)
            # The same ledger hash on every validator, the wiped one included: sample until they agree.
            num, digest = self.healthy(60)
            info = self.infos([victim])[victim]
        r.ledgers = trace.closed
        iv = trace.intervals()
        r.p50, r.p95 = percentile(iv, 50), percentile(iv, 95)
        r.facts = {"wiped": victim, "ledger_at_wipe": before, "common_ledger": num, "common_hash": digest}
        if info is None or info.ledger.num < before:
            r.outcome = "fail"
            r.detail = f"{victim} did not catch up past ledger {before}"
            return
        r.detail = f"{victim} wiped at ledger {before}; caught up: every validator on ledger {num} hash {digest[:12]}"

    # -- 4. Horizon restarted ------------------------------------------------------------------------------
    def horizon_restart(self, r: Result) -> None:
        h = self.net.horizon[0]
        url = f"http://{h.address}:{h.port}"
        name = self.container(h.name, "horizon")
        validators = [v.name for v in self.net.validators]
        with httpx.Client(timeout=10, trust_env=False) as client:

            def ingested() -> int:
                return int(client.get(f"{url}/").json().get("history_latest_ledger") or 0)

            h0 = self.wait("Horizon answering before the fault", ingested, 60)
            stopped = False
            try:
                self.ops.stop(name)
                stopped = True
                # Ledgers close while Horizon is away: those are the ones a gap would lose.
                trace = self.observe(validators, lambda t: t.closed >= 5, 5 * self.ledger_seconds * 4 + 10)
                self.ops.start(name)
                stopped = False
                t0 = self.clock.now()
                target = self.top_ledger(validators) or 0
                latest = self.wait(
                    f"Horizon ingesting past ledger {target}",
                    lambda: (lambda x: x if x >= target else 0)(ingested()),
                    240,
                    every=1,
                )
                r.recovery_seconds = self.clock.now() - t0
            finally:
                if stopped:
                    self.ops.start(name)
            seqs, broken_links = self._horizon_ledgers(client, url, h0 - 1, latest)
            # Horizon's ledger is the validators' ledger: compare one hash with a validator's own.
            core = self.infos(validators[:1])[validators[0]]
            core_hash_ok = None
            if core:
                hz = self.wait(
                    f"Horizon serving ledger {core.ledger.num}",
                    lambda: client.get(f"{url}/ledgers/{core.ledger.num}").json().get("hash"),
                    60,
                    every=1,
                )
                core_hash_ok = hz == core.ledger.hash
        r.ledgers = trace.closed
        iv = trace.intervals()
        r.p50, r.p95 = percentile(iv, 50), percentile(iv, 95)
        missing = sorted(set(range(h0 - 1, latest + 1)) - set(seqs))
        doubled = len(seqs) - len(set(seqs))
        r.facts = {
            "ingested_before": h0,
            "ingested_after": latest,
            "ledgers_checked": len(seqs),
            "missing": missing[:20],
            "doubled": doubled,
            "broken_prev_hash_links": broken_links[:20],
            "hash_matches_validator": core_hash_ok,
        }
        problems = []
        if missing:
            problems.append(f"missing ledgers {missing[:10]}")
        if doubled:
            problems.append(f"{doubled} ledgers listed twice")
        if broken_links:
            problems.append(f"prev_hash chain broken at {broken_links[:5]}")
        if core_hash_ok is False:
            problems.append("a ledger hash differs from the validator's")
        r.detail = (
            f"Horizon down for {trace.closed} ledgers; /ledgers {h0 - 1}..{latest} contiguous, hash-chained,"
            " same hash as the validators"
        )
        if problems:
            r.outcome, r.detail = "fail", "; ".join(problems)

    def _horizon_ledgers(self, client: httpx.Client, url: str, lo: int, hi: int) -> tuple[list[int], list[int]]:
        """Sequences of /ledgers lo..hi (ascending, paged) and the sequences whose prev_hash is not the hash of
        the ledger before them."""
        seqs: list[int] = []
        broken: list[int] = []
        prev_hash: str | None = None
        cursor = str((lo - 1) << 32)  # a ledger's paging token is its sequence << 32 (TOID)
        while True:
            page = client.get(f"{url}/ledgers", params={"order": "asc", "limit": 200, "cursor": cursor}).json()
            records = page.get("_embedded", {}).get("records", [])
            if not records:
                break
            for rec in records:
                seq = int(rec["sequence"])
                if seq > hi:
                    return seqs, broken
                if prev_hash is not None and rec.get("prev_hash") != prev_hash:
                    broken.append(seq)
                seqs.append(seq)
                prev_hash = rec.get("hash")
            cursor = records[-1]["paging_token"]
            self._bound(60)
        return seqs, broken

    # -- 5. one IPFS bootstrap node down ---------------------------------------------------------------------
    def ipfs_node_down(self, r: Result) -> None:
        from dlnet.ipfs import Ipfs

        a, b = self.net.ipfs[0], self.net.ipfs[1]
        ia, ib = Ipfs(f"http://{a.address}:{a.api_port}", 30), Ipfs(f"http://{b.address}:{b.api_port}", 30)
        name = self.container(a.name, "ipfs")
        data = b"dlnet drill checkpoint\n" + secrets.token_bytes(256 * 1024)
        digest = hashlib.sha256(data).hexdigest()
        try:
            cid = ia.add(data)
            ib.pin_add(cid)  # B fetches it from A over the private swarm and keeps it
            stopped = False
            try:
                self.ops.stop(name)
                stopped = True
                t0 = self.clock.now()
                got = self.wait(f"{b.name} serving {cid} while {a.name} is down", lambda: ib.cat(cid), 30)
                served = hashlib.sha256(got).hexdigest() == digest
                # Written to B while A is away: A must fetch it once back in the swarm.
                late = b"dlnet drill late checkpoint\n" + secrets.token_bytes(4096)
                late_cid = ib.add(late)
                self.ops.start(name)
                stopped = False
                self.wait(f"{a.name} answering again", lambda: ia.id(), 60)
                back = self.wait(
                    f"{a.name} fetching {late_cid} from {b.name}",
                    lambda: hashlib.sha256(ia.cat(late_cid)).hexdigest() == hashlib.sha256(late).hexdigest(),
                    60,
                    every=1,
                )
                r.recovery_seconds = self.clock.now() - t0
            finally:
                if stopped:
                    self.ops.start(name)
            for node, c in ((ia, cid), (ib, cid), (ib, late_cid), (ia, late_cid)):
                with contextlib.suppress(DlnetError):  # not pinned there; kubo's GC takes the blocks
                    node.pin_rm(c)
        finally:
            ia.close()
            ib.close()
        r.facts = {"stopped": a.name, "served_by": b.name, "cid": cid, "bytes": len(data), "sha256_equal": served}
        r.detail = (
            f"{a.name} down: {cid} ({len(data)} bytes) served by {b.name}, same sha256; {a.name} back in the swarm"
        )
        if not (served and back):
            r.outcome = "fail"
            r.detail = f"{cid}: bytes served by {b.name} differ from those added" if not served else "no re-join"

    # -- 6. a service killed mid-request ---------------------------------------------------------------------
    def service_kill(self, r: Result) -> None:
        svc = self.net.services[0]
        port = svc.ports.get("federation", 8001)
        url = f"http://{svc.address}:{port}"
        name = self.container(svc.name, "federation")
        token_file = (self.secrets_dir or Path()) / "federation.admin_token"
        try:
            token = token_file.read_text().strip()
        except OSError:
            raise DrillError(
                f"drill: cannot read the federation admin token {token_file} — expected the controller's secrets"
                " of this environment (DLNET_STATE_DIR) — run the drill where `make up` ran"
            ) from None
        # A kill that lands between two requests tests nothing mid-request: kill again (bounded).
        attempt = 0
        while True:
            attempt += 1
            k = self._kill_amid_writes(url, name, token)
            if k.interrupted or k.damage() or attempt == KILL_ATTEMPTS:
                break
        r.recovery_seconds = k.recovery
        r.facts = {
            "service": name,
            "attempts": attempt,
            "writes": len(k.want),
            "acknowledged_before_kill": len(k.acked_at_kill),
            "unanswered_retried": len(k.unanswered),
            "interrupted_mid_request": len(k.interrupted),
            "stored": len(k.stored),
            **k.diff(),
            "left_after_cleanup": len(k.left),
        }
        r.detail = (
            f"SIGKILL after {len(k.acked_at_kill)} acknowledged PUTs ({len(k.interrupted)} cut mid-request,"
            f" {len(k.unanswered)} unanswered, retried):"
            f" {len(k.stored)}/{len(k.want)} records stored once with their content; none lost"
        )
        problems = [] if k.interrupted else ["no write was in flight at the kill (nothing was tested mid-request)"]
        problems += k.damage()
        if problems:
            r.outcome, r.detail = "fail", "; ".join(problems)

    def _kill_amid_writes(self, url: str, name: str, token: str) -> KillRun:
        """One SIGKILL of the federation service while writers put records; what each side saw."""
        from stellar_sdk import Keypair

        run = secrets.token_hex(3)
        # Writers keep putting new records until the kill has landed, so requests are in flight when it does.
        kill_after, workers, cap = 12, 4, 5000
        want: dict[str, dict[str, str]] = {}
        acked: set[str] = set()
        unanswered: set[str] = set()
        interrupted: set[str] = set()
        lock = threading.Lock()
        headers = {"Authorization": f"Bearer {token}"}
        ready, killed = threading.Event(), threading.Event()

        def next_record() -> str | None:
            with lock:
                if killed.is_set() or len(want) >= cap:
                    return None
                n = f"drill-{run}-{len(want):04d}"
                want[n] = {"account_id": Keypair.random().public_key, "memo_type": "id", "memo": str(len(want))}
                return n

        def writer() -> None:
            with httpx.Client(timeout=5, trust_env=False, headers=headers) as client:
                while (n := next_record()) is not None:
                    cut = False
                    try:
                        ok = client.put(f"{url}/admin/records/{n}", json=want[n]).status_code == 200
                    except httpx.ConnectError:  # refused: the service was already gone, nothing was sent
                        ok = False
                    except httpx.HTTPError:  # sent, then the connection died: the kill hit this request
                        ok, cut = False, True
                    with lock:
                        (acked if ok else unanswered).add(n)
                        if cut:
                            interrupted.add(n)
                        if len(acked) >= kill_after:
                            ready.set()

        def kill_when_ready() -> float:
            try:
                ready.wait(timeout=self._bound(30))
                self.ops.kill(name)
                return self.clock.now()
            finally:
                killed.set()

        health = httpx.Client(timeout=3, trust_env=False)

        def up() -> bool:
            return health.get(f"{url}/health").status_code == 200

        try:
            self.wait("the federation service healthy before the fault", up, 30)
            stopped = True
            try:
                with concurrent.futures.ThreadPoolExecutor(workers + 1) as pool:
                    k = pool.submit(kill_when_ready)
                    for f in [pool.submit(writer) for _ in range(workers)]:
                        f.result(timeout=self._bound(120))
                    t_kill = k.result(timeout=self._bound(30))
                acked_at_kill = set(acked)
                self.ops.start(name)
                stopped = False
                self.wait("the federation service healthy again", up, 60)
                recovery = self.clock.now() - t_kill
            finally:
                if stopped:
                    self.ops.start(name)
            # A client retries what got no answer: the same PUT, which may or may not have been applied.
            with httpx.Client(timeout=5, trust_env=False, headers=headers) as client:
                for n in sorted(unanswered):
                    self.wait(
                        f"retrying record {n}",
                        lambda n=n: client.put(f"{url}/admin/records/{n}", json=want[n]).status_code == 200,
                        30,
                    )
                stored = self._federation_records(client, url, f"drill-{run}-")
                for n in want:
                    client.delete(f"{url}/admin/records/{n}")
                left = self._federation_records(client, url, f"drill-{run}-")
        finally:
            health.close()
        return KillRun(want, acked_at_kill, unanswered, interrupted, stored, left, recovery)

    def _federation_records(self, client: httpx.Client, url: str, prefix: str) -> dict[str, dict[str, Any]]:
        """Every admin record whose name starts with prefix (the list is ordered by name: page from the prefix)."""
        out: dict[str, dict[str, Any]] = {}
        after = prefix
        while True:
            rows = client.get(f"{url}/admin/records", params={"after": after, "limit": 1000}).json()
            mine = [row for row in rows if row["name"].startswith(prefix)]
            for row in mine:
                if row["name"] in out:  # listed twice would be a doubled record
                    out[row["name"] + "#dup"] = row
                out[row["name"]] = {k: row.get(k) for k in ("account_id", "memo_type", "memo")}
            if len(mine) < len(rows) or len(rows) < 1000:
                return out
            after = rows[-1]["name"]
            self._bound(60)
