"""Load generator: channel accounts, payments (optionally DEX offers) signed in several processes, submitted
straight to the validators' admin `tx` endpoint (or through Horizon), counted by result code and by ledger.

Method of the upstream measurement (shared/reference/stellar-core-19.14/load/): one-operation payments, signed
ahead of time, offered at a fixed rate for a bounded window, one transaction per source account in flight;
then the ledgers say how many were applied and how far apart they closed.

stellar-core 19.14 has no account query endpoint, so sequence numbers are never read: every transaction
carries the protocol-19 precondition `minSeqNum = 0` (CAP-21), which makes it valid whenever its sequence
number is above the account's, whatever that is. A new account starts at (ledger of creation << 32), so its
first transaction uses (current ledger << 32) + 1; a transaction that was never applied leaves a gap the next
one jumps. The funder (root account by default: its seed is sha256(passphrase), facts.md 2) is used the same
way. Applied counts come from the validators' `metrics` (`ledger.transaction.count` / `ledger.operation.count`
sums) or from Horizon's /ledgers; close times from watching a validator's `info`, ledger by ledger.

Channel seeds live in memory only (never written, never logged): every run creates fresh channels.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import math
import multiprocessing
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

from dlnet.chain import CoreTx, core_verdict
from dlnet.core_admin import CoreAdmin, CoreAdminError, Info
from dlnet.errors import DlnetError

MIN_PROTOCOL = 19  # minSeqNum preconditions (CAP-21) exist from protocol 19
MAX_OPS_PER_TX = 100
LOAD_ASSET_CODE = "LOAD"
STATUSES = ("PENDING", "DUPLICATE", "TRY_AGAIN_LATER", "ERROR")
CORE_CONCURRENCY = 24  # requests in flight per worker process to stellar-core's admin port
HORIZON_CONCURRENCY = 4000  # per process: Horizon 2.26 answers a submission once its ledger is ingested (5-12 s)
HORIZON_WAIT_SECONDS = 60.0  # longest wait for Horizon's answer to one submission


class LoadError(DlnetError):
    """The load generator could not set up or run (what, expected, got, how to fix)."""


def root_keypair(passphrase: str) -> Keypair:
    """The genesis root account: ed25519 seed sha256(passphrase) (facts.md 2)."""
    return Keypair.from_raw_ed25519_seed(hashlib.sha256(passphrase.encode()).digest())


def funder_from_file(path: str) -> Keypair:
    p = Path(path)
    try:
        text = p.read_text().strip()
    except OSError as exc:
        raise LoadError(
            f"load: cannot read the funder secret file {path} ({exc.strerror}) — expected a file"
            " holding one secret seed (S...) — check the path"
        ) from None
    if p.stat().st_mode & 0o077:
        raise LoadError(f"load: {path} is readable by others — expected mode 0600 — chmod 600 {path}")
    try:
        return Keypair.from_secret(text)
    except Exception:
        raise LoadError(
            f"load: {path} does not hold a Stellar secret seed — expected one line S... (56"
            " characters) — write the funder's seed into it"
        ) from None


# ---- the plan ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    rate: float | None  # offered transactions per second; None: as fast as they are accepted
    duration: float  # seconds of submission
    accounts: int | None = None  # channel accounts; default: enough for one tx per account per 3 ledgers
    processes: int = 2
    offers: float = 0.0  # share of transactions that are DEX offers (0..1)
    via_horizon: bool = False
    max_txs: int | None = None  # as-fast-as-accepted: how many to sign (default: one per channel)

    def check(self) -> None:
        if self.rate is not None and not self.rate > 0:
            raise LoadError(
                f"load: --rate {self.rate:g} — expected a positive rate in tx/s (or `max`) — pass e.g. --rate 200"
            )
        if not self.duration > 0:
            raise LoadError(
                f"load: --duration {self.duration:g} — expected a positive number of seconds — pass e.g. --duration 30"
            )
        if self.accounts is not None and self.accounts < 1:
            raise LoadError(
                f"load: --accounts {self.accounts} — expected at least 1 channel account — pass e.g."
                " --accounts 1000 or leave it out"
            )
        if not 1 <= self.processes <= 64:
            raise LoadError(f"load: --processes {self.processes} — expected 1 to 64 — pass the number of cores")
        if not 0 <= self.offers <= 1:
            raise LoadError(f"load: --offers {self.offers:g} — expected a share between 0 and 1 — pass e.g. 0.2")
        if self.max_txs is not None and self.max_txs < 1:
            raise LoadError(f"load: --max-txs {self.max_txs} — expected a positive count — pass e.g. 10000")

    def channels_needed(self, close_seconds: float = 5.0) -> int:
        if self.accounts is not None:
            return self.accounts
        if self.rate is None:
            return max(100, self.max_txs or 1000)
        # One transaction per channel every three ledgers: never two of one account in the queue.
        return max(10, math.ceil(self.rate * close_seconds * 3))

    def total(self, channels: int) -> int:
        if self.rate is None:
            return self.max_txs or channels
        return max(1, round(self.rate * self.duration))


# ---- reading the ledgers -----------------------------------------------------------------------------------
@dataclass
class Close:
    num: int
    close_time: int  # ledger header closeTime (s)
    seen: float  # wall clock when the watcher first saw it (s, time.time())
    txs: int | None = None  # transactions applied in it (None when aggregated with a missed ledger)
    ops: int | None = None
    interval: float | None = None  # seconds since the previous close, as the node timed it (ledger.age.closed)
    timeouts: int | None = None  # nomination rounds that timed out (watched node) while this ledger was agreed


def counts_of(metrics: dict[str, Any]) -> tuple[int, int]:
    """(transactions, operations) applied since the node started, from `metrics`."""

    def total(name: str) -> int:
        m = metrics.get(name) or {}
        return int(float(m.get("sum", 0) or 0))

    return total("ledger.transaction.count"), total("ledger.operation.count")


def closed_age_of(metrics: dict[str, Any]) -> tuple[float, int] | None:
    """(sum of seconds, count) of the node's `ledger.age.closed` timer: the time between consecutive
    closes, timed by the node itself in ms (a bucketed timer in 19.x, a plain timer elsewhere)."""
    m = metrics.get("ledger.age.closed")
    if not isinstance(m, dict):
        return None
    parts = m.get("buckets") if m.get("type") == "buckets" else [m]
    try:
        total = sum(float(b.get("sum", 0) or 0) for b in parts or [])
        count = sum(int(b.get("count", 0) or 0) for b in parts or [])
    except (TypeError, ValueError, AttributeError):
        return None
    unit = str((parts or [{}])[0].get("duration_unit", "ms"))
    return (total / 1000.0 if unit == "ms" else total), count


def nomination_timeouts_of(metrics: dict[str, Any]) -> int | None:
    """Nomination rounds that timed out since the node started: the sum of the `scp.timeout.nominate`
    histogram (one sample per slot, the slot's timeouts). Each costs a round of at least 1 s (19.14:
    round n times out after n s); with three validators round one's leaders disagree in about a quarter of
    the slots even when idle (measured 3 of 12, shared/reference/stellar-core-19.14/normal-5s)."""
    m = metrics.get("scp.timeout.nominate")
    if not isinstance(m, dict) or m.get("sum") is None:
        return None
    try:
        return int(float(m["sum"]))
    except (TypeError, ValueError):
        return None


class LedgerWatch:
    """Watches one validator's `info` and records every new ledger (close time, wall clock, tx/op counts)."""

    def __init__(self, admin: CoreAdmin, *, poll: float = 0.1, with_counts: bool = True) -> None:
        self.admin = admin
        self.poll = poll
        self.with_counts = with_counts
        self.closes: list[Close] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_counts: tuple[int, int] | None = None
        self._last_age: tuple[float, int] | None = None
        self._last_timeouts: int | None = None
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def start(self) -> LedgerWatch:
        info = self.admin.info()
        self._record(info, time.time(), baseline=True)
        self._thread = threading.Thread(target=self._run, name="ledger-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _record(self, info: Info, seen: float, baseline: bool = False) -> None:
        counts = age = timeouts = None
        if self.with_counts:
            try:
                metrics = self.admin.metrics()
                counts, age, timeouts = counts_of(metrics), closed_age_of(metrics), nomination_timeouts_of(metrics)
            except CoreAdminError:
                counts = None
        with self.lock:
            last = self.closes[-1] if self.closes else None
            c = Close(info.ledger.num, info.ledger.close_time, seen)
            consecutive = last is not None and c.num == last.num + 1
            if counts is not None and self._last_counts is not None and not baseline:
                c.txs, c.ops = counts[0] - self._last_counts[0], counts[1] - self._last_counts[1]
                if not consecutive:
                    c.txs = c.ops = None  # spread over ledgers the watcher missed
            # exactly one close timed since the last read: this ledger's own interval
            if age is not None and self._last_age is not None and consecutive and age[1] - self._last_age[1] == 1:
                c.interval = round(age[0] - self._last_age[0], 4)
            if timeouts is not None and self._last_timeouts is not None and consecutive and not baseline:
                c.timeouts = timeouts - self._last_timeouts
            if timeouts is not None:
                self._last_timeouts = timeouts
            if counts is not None:
                self._last_counts = counts
            if age is not None:
                self._last_age = age
            self.closes.append(c)
            self.changed.notify_all()

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                info = self.admin.info()
            except CoreAdminError:
                self.errors += 1
                continue
            seen = time.time()
            with self.lock:
                last = self.closes[-1].num
            if info.ledger.num > last:
                self._record(info, seen)

    @property
    def latest(self) -> int:
        with self.lock:
            return self.closes[-1].num

    def totals(self) -> tuple[int, int] | None:
        with self.lock:
            return self._last_counts

    def wait_for(self, num: int, timeout: float) -> bool:
        """Block until ledger `num` was seen; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.closes[-1].num < num:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))
        return True

    def wait_ledgers(self, n: int, timeout: float) -> bool:
        return self.wait_for(self.latest + n, timeout)

    def between(self, first: int, last: int) -> list[Close]:
        with self.lock:
            return [c for c in self.closes if first <= c.num <= last]


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not values:
        return None
    s = sorted(values)
    if len(s) == 1:
        return float(s[0])
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


@dataclass
class CloseStats:
    ledgers: int
    # seconds between consecutive closes: as the node timed them (ledger.age.closed, ms) where the watcher
    # read its metrics right after each close, else as the watcher saw them (0.1 s poll)
    gaps: list[float]
    header_gaps: list[int]  # closeTime deltas from the ledger headers (whole seconds)
    p50: float | None
    p95: float | None
    mean: float | None
    txs: int | None
    ops: int | None
    max_txs_in_ledger: int | None
    # The upstream measurement's yardstick (shared/reference/.../load/): the mean of the headers' whole-second
    # closeTime gaps. Coarse: a ledger 0.4 s late reads 5 or 6 s by the second it started in.
    header_mean: float | None = None
    nomination_timeouts: int | None = None  # timed-out nomination rounds in these ledgers (watched node)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def close_stats(closes: list[Close]) -> CloseStats:
    """Statistics of a run of consecutive ledgers (the first one only anchors the first gap)."""
    gaps, header = [], []
    for a, b in itertools.pairwise(closes):
        if b.num == a.num + 1:
            gaps.append(b.interval if b.interval is not None else round(b.seen - a.seen, 3))
            header.append(b.close_time - a.close_time)
    counted = closes[1:]
    txs = [c.txs for c in counted]

    def total(values: list[int | None]) -> int | None:
        """The sum over every counted ledger, or None when there are none or one is unknown."""
        return sum(v for v in values if v is not None) if values and None not in values else None

    return CloseStats(
        ledgers=len(counted),
        gaps=gaps,
        header_gaps=header,
        p50=percentile(gaps, 50),
        p95=percentile(gaps, 95),
        mean=round(statistics.fmean(gaps), 3) if gaps else None,
        txs=total(txs),
        ops=total([c.ops for c in counted]),
        max_txs_in_ledger=max((t for t in txs if t is not None), default=None),
        header_mean=round(statistics.fmean(header), 3) if header else None,
        nomination_timeouts=total([c.timeouts for c in counted]),
    )


def applied_rate_span(closes: list[Close]) -> tuple[int | None, float]:
    """(transactions, seconds) of the ledgers that applied the load at its steady rate: the ledgers with
    transactions, less the first and the last when there are three or more (the load window starts and ends
    inside them, so they hold only part of a ledger's worth), and never the empty drain ledgers after it.
    Seconds are the node's own intervals where known."""
    busy = [i for i, c in enumerate(closes) if i and c.txs]
    if not busy or any(c.txs is None for c in closes[1:]):
        return None, 0.0
    first, last = (busy[1], busy[-2]) if len(busy) >= 3 else (busy[0], busy[-1])
    txs = sum(c.txs or 0 for c in closes[first : last + 1])
    span = sum(
        c.interval if c.interval is not None else c.seen - closes[k - 1].seen
        for k, c in enumerate(closes[first : last + 1], start=first)
    )
    return txs, span


# ---- channels ----------------------------------------------------------------------------------------------
@dataclass
class Channel:
    seed: bytes  # raw ed25519 seed (memory only)
    public: str
    seq: int  # last sequence number used; the next transaction uses seq + 1

    @classmethod
    def new(cls) -> Channel:
        kp = Keypair.random()
        return cls(kp.raw_secret_key(), kp.public_key, 0)


def _builder(source: str, seq: int, passphrase: str, fee: int) -> TransactionBuilder:
    b = TransactionBuilder(Account(source, seq), passphrase, base_fee=fee)
    b.add_time_bounds(0, 0)
    b.set_min_sequence_number(0)
    return b


# ---- the worker process ------------------------------------------------------------------------------------
@dataclass
class Job:
    passphrase: str
    channels: list[tuple[bytes, str, int]]  # (seed, public, last seq)
    count: int
    rate: float | None  # this worker's share
    start_at: float  # wall clock
    stop_at: float
    urls: list[str]
    horizon: str | None
    destination: str
    offers: float
    asset_issuer: str | None
    fee: int
    first_seq: int  # for channels whose seq is 0: (current ledger << 32)
    index: int = 0


@dataclass
class WorkerResult:
    signed: int = 0
    sign_seconds: float = 0.0
    submitted: int = 0
    submit_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)
    late: int = 0  # transactions not offered because the window ended


ENVELOPE_TYPE_TX = b"\x00\x00\x00\x02"
SEQ_AT = slice(40, 48)  # seqNum in a Transaction's XDR after an ed25519 source (4 + 32 bytes) and the fee (4)


def _template(job: Job, source: str, offer: bool) -> bytes:
    """One channel's transaction XDR (stellar-sdk builds it once); only its sequence number changes after."""
    b = _builder(source, 0, job.passphrase, job.fee)
    if offer:
        asset = Asset(LOAD_ASSET_CODE, str(job.asset_issuer))
        b.append_manage_sell_offer_op(Asset.native(), asset, "0.0000100", "1")  # crosses the market's standing offer
    else:
        b.append_payment_op(job.destination, Asset.native(), "0.0000001")
    tx = b.build().transaction.to_xdr_object().to_xdr_bytes()
    assert tx[SEQ_AT] == (1).to_bytes(8, "big"), "unexpected Transaction XDR layout"
    return bytes(tx)


def sign_all(job: Job) -> tuple[list[str], list[int]]:
    """Sign `job.count` transactions round-robin over the job's channels; return blobs and new seqs.

    Building every transaction with stellar-sdk costs ~1.3 ms of CPU, nearly all XDR packing and strkey
    decoding (profiled; ed25519 is ~0.05 ms), so each channel's transaction is packed once and then only its
    sequence number is rewritten: the envelope is the same bytes stellar-sdk would produce (tests check),
    hashed (sha256 of network id, envelope type, transaction) and signed as stellar-sdk does."""
    kps = [Keypair.from_raw_ed25519_seed(s) for s, _, _ in job.channels]
    hints = [kp.signature_hint() for kp in kps]
    seqs = [seq if seq else job.first_seq for _, _, seq in job.channels]
    every = round(1 / job.offers) if job.offers and job.asset_issuer else 0
    network_id = hashlib.sha256(job.passphrase.encode()).digest()
    templates: dict[tuple[int, bool], bytes] = {}
    blobs = []
    for i in range(job.count):
        k = i % len(kps)
        offer = bool(every) and (i + job.index) % every == 0
        tpl = templates.get((k, offer))
        if tpl is None:
            tpl = templates[(k, offer)] = _template(job, job.channels[k][1], offer)
        seqs[k] += 1
        tx = tpl[: SEQ_AT.start] + seqs[k].to_bytes(8, "big", signed=True) + tpl[SEQ_AT.stop :]
        signature = kps[k].sign(hashlib.sha256(network_id + ENVELOPE_TYPE_TX + tx).digest())
        one_signature = b"\x00\x00\x00\x01" + hints[k] + len(signature).to_bytes(4, "big") + signature
        envelope = ENVELOPE_TYPE_TX + tx + one_signature
        blobs.append(base64.b64encode(envelope).decode())
    return blobs, seqs


def sign_all_sdk(job: Job) -> tuple[list[str], list[int]]:
    """What sign_all does, with stellar-sdk building every transaction (the reference the tests compare to)."""
    kps = [Keypair.from_raw_ed25519_seed(s) for s, _, _ in job.channels]
    seqs = [seq if seq else job.first_seq for _, _, seq in job.channels]
    asset = Asset(LOAD_ASSET_CODE, job.asset_issuer) if job.asset_issuer else None
    every = round(1 / job.offers) if job.offers and asset else 0
    blobs = []
    native = Asset.native()
    for i in range(job.count):
        k = i % len(kps)
        b = _builder(job.channels[k][1], seqs[k], job.passphrase, job.fee)
        if every and (i + job.index) % every == 0:
            b.append_manage_sell_offer_op(native, asset, "0.0000100", "1")
        else:
            b.append_payment_op(job.destination, native, "0.0000001")
        tx = b.build()
        tx.sign(kps[k])
        blobs.append(tx.to_xdr())
        seqs[k] += 1
    return blobs, seqs


async def _submit_all(job: Job, blobs: list[str], res: WorkerResult) -> None:
    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    limit = asyncio.Semaphore(HORIZON_CONCURRENCY if job.horizon else CORE_CONCURRENCY)
    if job.horizon:
        horizon = Endpoint.of(job.horizon, timeout=HORIZON_WAIT_SECONDS)
        submitters = [horizon.horizon_submit]
    else:
        submitters = [Endpoint.of(u).core_submit for u in job.urls]

    async def one(i: int, blob: str) -> None:
        try:
            status, code = await submitters[i % len(submitters)](blob)
        except TimeoutError:
            status, code = "TIMEOUT", None
        except OSError as exc:
            status, code = "UNREACHABLE", type(exc).__name__
        finally:
            limit.release()
        statuses[status] += 1
        if code:
            codes[code] += 1

    tasks = []
    delay = max(0.0, job.start_at - time.time())
    await asyncio.sleep(delay)
    t0 = time.monotonic()
    for i, blob in enumerate(blobs):
        if job.rate:
            due = t0 + i / job.rate
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        if time.time() >= job.stop_at:
            res.late = len(blobs) - i
            break
        await limit.acquire()
        tasks.append(asyncio.create_task(one(i, blob)))
    res.submitted = len(tasks)
    if tasks:
        await asyncio.wait(tasks, timeout=max(5.0, job.stop_at - time.time() + 65))
    res.submit_seconds = time.monotonic() - t0
    res.statuses, res.codes = dict(statuses), dict(codes)


class _OneRequest(asyncio.Protocol):
    """Sends one request as soon as connected and collects the answer until the server closes."""

    def __init__(self, request: bytes, answer: asyncio.Future[bytes]) -> None:
        self.request, self.answer, self.got = request, answer, bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.got += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            if exc is None:
                self.answer.set_result(bytes(self.got))
            else:
                self.answer.set_exception(exc)


@dataclass(frozen=True)
class Endpoint:
    """An HTTP endpoint spoken to one connection per request (`Connection: close`).

    stellar-core's admin server answers one request and closes the connection anyway (lib/http/connection.cpp,
    do_write: "Initiate graceful connection closure"), and Horizon 2.26 holds each submission until its ledger
    is ingested, so thousands wait at once: a general HTTP client's pool and keep-alive machinery is pure cost
    here. Measured on this 2-core machine: httpx spent 1.26 ms of CPU per request, this 0.16 ms; under load the
    generator's two processes used 1.2 cores through httpx while the three validators together used 0.7. A
    request is one pre-formed message written as soon as the connection opens (never idle, so Horizon's 5 s
    read timeout cannot close it first); the answer is read until the server closes."""

    host: str
    port: int
    timeout: float = 10.0

    @classmethod
    def of(cls, url: str, timeout: float = 10.0) -> Endpoint:
        u = urlsplit(url)
        if u.scheme != "http" or not u.hostname or not u.port:
            raise LoadError(f"load: endpoint URL {url!r} — expected http://HOST:PORT")
        return cls(u.hostname, u.port, timeout)

    async def request(self, method: str, target: str, form: str | None = None) -> tuple[int, bytes]:
        """(HTTP status, body) of one request; OSError or TimeoutError when there is no answer."""
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nConnection: close\r\n"
        body = b""
        if form is not None:
            body = form.encode()
            head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()
        async with asyncio.timeout(self.timeout):
            transport, _ = await loop.create_connection(
                lambda: _OneRequest(head.encode() + b"\r\n" + body, answer), self.host, self.port
            )
            try:
                raw = await answer
            finally:
                transport.close()
        status_line, _, rest = raw.partition(b"\r\n")
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise ConnectionResetError(f"no HTTP answer from {self.host}:{self.port}") from None
        return status, rest.partition(b"\r\n\r\n")[2]

    async def core_submit(self, blob: str) -> tuple[str, str | None]:
        """A validator's admin `tx?blob=`."""
        status, body = await self.request("GET", f"/tx?blob={quote(blob, safe='')}")
        try:
            parsed = json.loads(body)
        except ValueError:
            return "ERROR", f"HTTP {status}"
        return core_verdict(parsed)  # the same reading of stellar-core's answer as dlnet seed's (dlnet/chain.py)

    async def horizon_submit(self, blob: str) -> tuple[str, str | None]:
        """Horizon 2.26 answers once the transaction is in a ledger: 200 = applied, 400 = refused (result codes)."""
        status, body = await self.request("POST", "/transactions", f"tx={quote(blob, safe='')}")
        if status == 200:
            return "PENDING", None
        if status == 429:
            return "ERROR", "horizon_rate_limited"
        if status == 504:
            return "TIMEOUT", None
        try:
            extras = json.loads(body).get("extras") or {}
            code = extras["result_codes"]["transaction"]
        except (ValueError, KeyError, TypeError, AttributeError):
            code = f"HTTP {status}"
        return ("TRY_AGAIN_LATER" if code == "tx_try_again_later" else "ERROR"), str(code)


def _warm() -> int:
    return 0


def sign_job(job: Job) -> tuple[list[str], list[int], float]:
    t = time.perf_counter()
    blobs, seqs = sign_all(job)
    return blobs, seqs, time.perf_counter() - t


def run_job(job: Job) -> WorkerResult:
    """One worker process: sign everything first, then submit at the job's rate from `start_at`."""
    res = WorkerResult()
    blobs, res.seqs, res.sign_seconds = sign_job(job)
    res.signed = len(blobs)
    asyncio.run(_submit_all(job, blobs, res))
    return res


# ---- the engine --------------------------------------------------------------------------------------------
@dataclass
class StepResult:
    rate: float | None
    duration: float
    signed: int
    submitted: int
    statuses: dict[str, int]
    codes: dict[str, int]
    sign_seconds: float  # CPU-seconds spent signing, summed over the processes
    submit_seconds: float
    first_ledger: int
    last_ledger: int
    closes: CloseStats
    applied_txs: int | None
    offered_tps: float
    applied_tps: float | None
    late: int

    @property
    def accepted(self) -> int:
        return self.statuses.get("PENDING", 0)

    @property
    def refused_queue(self) -> int:
        return self.statuses.get("TRY_AGAIN_LATER", 0)

    @property
    def signing_tps_per_core(self) -> float | None:
        return round(self.signed / self.sign_seconds, 1) if self.sign_seconds else None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            accepted=self.accepted, refused_queue=self.refused_queue, signing_tps_per_core=self.signing_tps_per_core
        )
        return out


class Engine:
    """Channels funded once, then any number of load steps (what `dlnet load` runs once, `dlnet tune` often)."""

    def __init__(
        self,
        passphrase: str,
        admins: list[CoreAdmin],
        *,
        funder: Keypair | None = None,
        horizon: str | None = None,
        processes: int = 2,
        progress: Callable[[str], None] = lambda _m: None,
        ledger_timeout: float = 60.0,
    ) -> None:
        if not admins:
            raise LoadError(
                "load: no validator admin endpoint — expected at least one host in group stellar_core"
                " — check the inventory"
            )
        self.passphrase = passphrase
        self.admins = admins
        self.funder = funder or root_keypair(passphrase)
        self.horizon = horizon
        self.processes = processes
        self.progress = progress
        self.ledger_timeout = ledger_timeout  # longest wait for one ledger to close
        self.channels: list[Channel] = []
        self.market: Keypair | None = None
        self.fee = 100
        self.watch = LedgerWatch(admins[0])
        self._pool: ProcessPoolExecutor | None = None
        self._funder_seq = 0

    # -- lifecycle
    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        info = self.check_network()
        self.fee = max(100, info.ledger.base_fee)
        self.watch.start()

    def close(self) -> None:
        self.watch.stop()
        if self._pool:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
            # Start (and import into) every worker now, so that a step's start time is not eaten by spawning.
            for f in [self._pool.submit(_warm) for _ in range(self.processes)]:
                f.result(timeout=120)
        return self._pool

    def check_network(self) -> Info:
        infos = []
        for a in self.admins:
            info = a.info()
            if info.network and info.network != self.passphrase:
                raise LoadError(
                    f"load: {a.name} runs network {info.network!r}, the inventory says"
                    f" {self.passphrase!r} — expected the same — check -i"
                )
            if not info.synced:
                raise LoadError(
                    f"load: {a.name} is {info.state!r} — expected Synced! — wait for `dlnet status`"
                    " to show every validator synced"
                )
            infos.append(info)
        low = min(i.ledger.version for i in infos)
        if low < MIN_PROTOCOL:
            raise LoadError(
                f"load: the network is at protocol {low} — expected {MIN_PROTOCOL} or later (the load"
                " generator's transactions use protocol-19 preconditions) — run"
                f" `dlnet upgrade --protocol {min(i.protocol_max for i in infos)}` first"
            )
        return infos[0]

    # -- submission of setup transactions (funding), checked by result code and by the ledger's counts
    def _submit_setup(self, blobs: list[str], what: str) -> None:
        """Submit setup transactions, then wait until the ledgers applied at least as many (deadline)."""
        before = self.watch.totals()
        core = CoreTx([a.url for a in self.admins])
        try:
            for blob in blobs:
                try:
                    status, code = core.send(blob)
                except DlnetError as exc:
                    raise LoadError(f"load: {what}: {exc}") from None
                if status not in ("PENDING", "DUPLICATE"):
                    raise LoadError(
                        f"load: {what}: a setup transaction was refused ({status} {code or ''}) — expected"
                        " PENDING — is the funder account funded and not locked (dlnet seed"
                        " --lock-root)? pass --funder-secret-file otherwise"
                    )
        finally:
            core.close()
        need = len(blobs)
        deadline = time.monotonic() + self.ledger_timeout * 3
        while True:
            now = self.watch.totals()
            if before is None or now is None:  # no counts: wait two ledgers and trust PENDING
                self.watch.wait_ledgers(2, self.ledger_timeout * 2)
                return
            if now[0] - before[0] >= need:
                self.watch.wait_ledgers(1, self.ledger_timeout)  # its successors see the new accounts
                return
            if time.monotonic() > deadline:
                raise LoadError(
                    f"load: {what}: {now[0] - before[0]} of {need} setup transactions applied within"
                    f" {self.ledger_timeout * 3:.0f}s — expected all — check ledger closing (dlnet"
                    " status) and the max tx set size"
                )
            self.watch.wait_ledgers(1, self.ledger_timeout)

    def _next_funder_seq(self) -> int:
        floor = self.watch.latest << 32
        self._funder_seq = max(self._funder_seq, floor) + 1
        return self._funder_seq

    def fund(self, n: int, *, offers: bool = False, balance: str = "100", max_ops_per_ledger: int = 1000) -> None:
        """Create `n` more channel accounts (funder -> up to 100 sub-funders -> channels)."""
        if n <= 0:
            return
        started = time.monotonic()
        per_tx = 19 if offers else MAX_OPS_PER_TX  # a transaction carries at most 20 signatures
        subs_n = min(100, math.ceil(n / per_tx))
        subs = [Channel.new() for _ in range(subs_n)]
        each = math.ceil(n / subs_n)
        sub_balance = str(int(float(balance) * (each + 1) + 100))
        ops: list[tuple[str, str]] = [(s.public, sub_balance) for s in subs]
        if offers and self.market is None:
            self.market = Keypair.random()
            ops.append((self.market.public_key, "1000"))
        b = _builder(self.funder.public_key, self._next_funder_seq() - 1, self.passphrase, self.fee)
        for dest, amount in ops:
            b.append_create_account_op(dest, amount)
        tx = b.build()
        tx.sign(self.funder)
        self.progress(f"load: funding {subs_n} sub-funders for {n} channel accounts")
        self._submit_setup([tx.to_xdr()], "funding sub-funders")
        if offers and self.market is not None and not getattr(self, "_market_offer", False):
            m = _builder(self.market.public_key, (self.watch.latest << 32), self.passphrase, self.fee)
            m.append_manage_sell_offer_op(
                Asset(LOAD_ASSET_CODE, self.market.public_key), Asset.native(), "100000000", "1"
            )
            mt = m.build()
            mt.sign(self.market)
            self._submit_setup([mt.to_xdr()], "the market's standing offer")
            self._market_offer = True
        new = [Channel.new() for _ in range(n)]
        groups = [new[i * each : (i + 1) * each] for i in range(subs_n)]
        asset = Asset(LOAD_ASSET_CODE, self.market.public_key) if offers and self.market else None
        round_no = 0
        pending = [(sub, group) for sub, group in zip(subs, groups, strict=True) if group]
        while pending:
            round_no += 1
            batch_txs, nxt = [], []
            budget = max(per_tx, max_ops_per_ledger)
            base = self.watch.latest << 32
            for sub, group in pending:
                take = group[:per_tx]
                ops_here = len(take) * (2 if asset else 1)
                if budget < ops_here:
                    nxt.append((sub, group))
                    continue
                budget -= ops_here
                sub.seq = max(sub.seq, base) + 1
                tb = _builder(sub.public, sub.seq - 1, self.passphrase, self.fee)
                for ch in take:
                    tb.append_create_account_op(ch.public, balance)
                    if asset:
                        tb.append_change_trust_op(asset, source=ch.public)
                t = tb.build()
                t.sign(Keypair.from_raw_ed25519_seed(sub.seed))
                if asset:
                    for ch in take:
                        t.sign(Keypair.from_raw_ed25519_seed(ch.seed))
                batch_txs.append(t.to_xdr())
                if group[per_tx:]:
                    nxt.append((sub, group[per_tx:]))
            self._submit_setup(batch_txs, f"creating channel accounts (round {round_no})")
            pending = nxt
        self.channels.extend(new)
        self.progress(f"load: {len(self.channels)} channel accounts ready ({time.monotonic() - started:.0f}s)")

    # -- one load step
    def step(
        self,
        rate: float | None,
        duration: float,
        *,
        max_txs: int | None = None,
        offers: float = 0.0,
        via_horizon: bool = False,
        drain_ledgers: int = 2,
        on_tick: Callable[[str], None] | None = None,
    ) -> StepResult:
        if not self.channels:
            raise LoadError("load: no channel accounts — expected fund() first")
        if via_horizon and not self.horizon:
            raise LoadError(
                "load: --via-horizon but the inventory has no Horizon — expected a host in group"
                " horizon — drop --via-horizon"
            )
        total = max_txs or (round(rate * duration) if rate else len(self.channels))
        procs = max(1, min(self.processes, total))
        first_seq = self.watch.latest << 32
        shares = [self.channels[i::procs] for i in range(procs)]
        counts = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
        # Signing takes ~1/3000 s per transaction per core: start submitting once every worker is done.
        lead = 1.0 + max(counts) / 1200.0
        self.pool()
        start_at = time.time() + lead
        stop_at = start_at + duration
        jobs = [
            Job(
                self.passphrase,
                [(c.seed, c.public, c.seq) for c in share],
                counts[i],
                (rate / procs) if rate else None,
                start_at,
                stop_at,
                [a.url for a in self.admins],
                self.horizon if via_horizon else None,
                self.funder.public_key,
                offers,
                self.market.public_key if self.market else None,
                self.fee,
                first_seq,
                i,
            )
            for i, share in enumerate(shares)
        ]
        pool = self.pool()
        futures = [pool.submit(run_job, j) for j in jobs]
        while time.time() < start_at:
            time.sleep(0.05)
        first = self.watch.latest
        t_end = stop_at
        while time.time() < t_end and not all(f.done() for f in futures):
            time.sleep(min(1.0, max(0.05, t_end - time.time())))
            if on_tick:
                on_tick(f"load: {time.time() - start_at:5.1f}s of {duration:g}s, ledger {self.watch.latest}")
        results: list[WorkerResult] = []
        for f in futures:
            results.append(f.result(timeout=duration + lead + 120))
        for share, r in zip(shares, results, strict=True):
            for c, s in zip(share, r.seqs, strict=True):
                c.seq = s
        statuses: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        for r in results:
            statuses.update(r.statuses)
            codes.update(r.codes)
        submitted_end = self.watch.latest
        # Accepted transactions are applied in the next ledgers: watch until they are (or `drain_ledgers`).
        accepted = statuses.get("PENDING", 0)
        self.watch.wait_for(submitted_end + 1, self.ledger_timeout)
        last = self.watch.latest
        for _ in range(drain_ledgers):
            applied = close_stats(self.watch.between(first, last)).txs
            if applied is not None and applied >= accepted:
                break
            if not self.watch.wait_for(last + 1, self.ledger_timeout):
                break
            last = self.watch.latest
        # Close times: the ledgers whose transaction sets were filled while the load was offered.
        stats = close_stats(self.watch.between(first, min(last, submitted_end + 1)))
        everything = close_stats(self.watch.between(first, last))
        closes = self.watch.between(first, last)
        busy_txs, span = applied_rate_span(closes)
        sign_seconds = sum(r.sign_seconds for r in results)
        submitted = sum(r.submitted for r in results)
        return StepResult(
            rate=rate,
            duration=duration,
            signed=sum(r.signed for r in results),
            submitted=submitted,
            statuses=dict(statuses),
            codes=dict(codes),
            sign_seconds=round(sign_seconds, 3),
            submit_seconds=round(max((r.submit_seconds for r in results), default=0.0), 3),
            first_ledger=first,
            last_ledger=last,
            closes=stats,
            applied_txs=everything.txs,
            offered_tps=round(submitted / duration, 1),
            applied_tps=round(busy_txs / span, 1) if busy_txs is not None and span > 0 else None,
            late=sum(r.late for r in results),
        )
