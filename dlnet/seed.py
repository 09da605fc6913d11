"""`dlnet seed` and `dlnet model register`: bring the chain to the state the inventory describes.

Idempotent and resumable by construction: every run reads the chain, computes only the missing
operations, and submits them in transactions that each apply atomically; keys are written (0600) before
any transaction mentions them. A crash mid-way loses nothing: the next run starts from what is on chain.
DLC's issued amount is recorded on the issuer (data entry `dlc.issued`) in the same transaction as the
payment, so re-running never issues twice. Each source account (the funder, a channel) is used by one
thread only, its sequence numbers kept locally: no concurrent use of a sequence number. Transactions go
straight to the validators' `tx` endpoint (dlnet/chain.py's CoreTx, as `dlnet load` submits) and are
confirmed through Horizon; holders' transactions are queued back to back, so ledgers close full.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from stellar_sdk import (
    Asset,
    AuthorizationFlag,
    ChangeTrust,
    CreateAccount,
    Keypair,
    ManageData,
    Payment,
    SetOptions,
    SetTrustLineFlags,
    TrustLineFlags,
)
from stellar_sdk.exceptions import Ed25519SecretSeedInvalidError
from stellar_sdk.operation import Operation
from stellar_sdk.transaction_envelope import TransactionEnvelope

from dlnet.chain import STROOPS, CoreTx, Horizon, HorizonError, SubmitFailed, Transactor, codes_text, parse_amount
from dlnet.config import Network
from dlnet.day2 import DlcSettings
from dlnet.errors import DlnetError
from dlnet.keys import secrets_dir

MAX_OPS_PER_TX = 100
MAX_SIGNATURES = 20
# Channel accounts: one per holders' transaction up to this many (channels_needed).
MAX_CHANNELS = 100
QUEUE_FULL_RETRIES = 12  # about a minute of waiting for room in the queue (0.5, 1, 2, 4, then 8 s)
FLAG_BITS = {"auth_required": 1, "auth_revocable": 2, "auth_clawback_enabled": 8}
ISSUED_KEY = "dlc.issued"
_MODEL = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


# ---- keys ----------------------------------------------------------------------------------------
def _write_private(path: Path, text: str) -> None:
    """Atomically create a 0600 file (never readable by others, never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_seed(path: Path, what: str) -> Keypair:
    try:
        return Keypair.from_secret(path.read_text().strip())
    except (Ed25519SecretSeedInvalidError, ValueError):
        raise DlnetError(
            f"{what}: {path} does not hold a Stellar secret seed (S..., 56 characters) — restore it"
            " from your backup; never regenerate a key that was used on chain"
        ) from None


def keypair(env: str, name: str) -> Keypair:
    """The named key of this environment, created (0600) on first use; the seed is never printed."""
    path = secrets_dir(env) / f"{name}.seed"
    if not path.exists():
        _write_private(path, Keypair.random().secret + "\n")
    return _read_seed(path, name)


def holder_keys(env: str, count: int) -> list[Keypair]:
    """`count` holder keys, one seed per line in dlc-holders.seeds (0600); extends, never rewrites, keys."""
    path = secrets_dir(env) / "dlc-holders.seeds"
    lines = path.read_text().split() if path.exists() else []
    if len(lines) < count:
        lines += [Keypair.random().secret for _ in range(count - len(lines))]
        _write_private(path, "\n".join(lines) + "\n")
    try:
        return [Keypair.from_secret(s) for s in lines[:count]]
    except (Ed25519SecretSeedInvalidError, ValueError):
        raise DlnetError(f"holders: {path} holds a line that is not a secret seed — restore it from backup") from None


FUNDER = "funder"  # the kit's funding account: `dlnet lock-root` (run by `make up`) moves the root's lumens to it


def root_keypair(net: Network) -> Keypair:
    """The genesis root account: its seed is sha256(passphrase), derivable by anyone who reads the inventory."""
    return Keypair.from_raw_ed25519_seed(hashlib.sha256(net.passphrase.encode()).digest())


def funder_keypair(net: Network, secret_file: str | None) -> tuple[Keypair, bool]:
    """The funding account: an operator-funded one (--funder-secret-file), else the kit's funder that
    `dlnet lock-root` created (secrets/funder.seed), else the root account (seed = sha256(passphrase))."""
    if secret_file is None:
        own = secrets_dir(net.env) / f"{FUNDER}.seed"
        if own.exists():
            return _read_seed(own, FUNDER), False
        return root_keypair(net), True
    path = Path(secret_file)
    if not path.is_file():
        raise DlnetError(
            f"--funder-secret-file {secret_file}: no such file — expected a file holding the funding"
            " account's secret seed (S...) — create it with mode 0600"
        )
    if path.stat().st_mode & 0o077:
        raise DlnetError(
            f"--funder-secret-file {secret_file}: readable by others (mode"
            f" {oct(path.stat().st_mode & 0o777)}) — expected 0600 — run chmod 600 {secret_file}"
        )
    return _read_seed(path, "--funder-secret-file"), False


# ---- chain state -----------------------------------------------------------------------------------
@dataclass
class Step:
    op: Operation
    signer: Keypair
    what: str


def _flags(acc: dict[str, Any] | None) -> int:
    if not acc:
        return 0
    f = acc.get("flags") or {}
    return sum(bit for name, bit in FLAG_BITS.items() if f.get(name))


def _line(acc: dict[str, Any] | None, asset: Asset) -> dict[str, Any] | None:
    for b in (acc or {}).get("balances", []):
        if b.get("asset_code") == asset.code and b.get("asset_issuer") == asset.issuer:
            return dict(b)
    return None


def _data(acc: dict[str, Any] | None, key: str) -> str | None:
    raw = ((acc or {}).get("data") or {}).get(key)
    return base64.b64decode(raw).decode() if raw is not None else None


def _available_xlm(acc: dict[str, Any], base_reserve: int) -> Decimal:
    native = next(Decimal(b["balance"]) for b in acc["balances"] if b["asset_type"] == "native")
    return native - Decimal(2 + int(acc.get("subentry_count", 0))) * Decimal(base_reserve) / STROOPS


def _amount(d: Decimal) -> str:
    return format(d.quantize(Decimal("0.0000001")), "f")


def close_seconds(horizon: Horizon) -> float:
    """Seconds between ledgers, from the last ten Horizon ingested (5 when it cannot tell)."""
    from datetime import datetime

    body = horizon.get("/ledgers", {"order": "desc", "limit": "10"}) or {}
    times = [
        datetime.fromisoformat(str(r["closed_at"]).replace("Z", "+00:00")).timestamp()
        for r in (body.get("_embedded") or {}).get("records") or []
        if r.get("closed_at")
    ]
    if len(times) < 2:
        return 5.0
    return max(1.0, (times[0] - times[-1]) / (len(times) - 1))


# ---- the executor ----------------------------------------------------------------------------------
@dataclass
class Report:
    transactions: int = 0
    operations: int = 0
    ledgers: list[int] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    # The holders' phase alone (through the channels): what "fills ledgers" is measured on.
    holder_operations: int = 0
    holder_ledgers: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": bool(self.transactions),
            "transactions": self.transactions,
            "operations": self.operations,
            "ledgers": sorted(set(self.ledgers)),
            "ledger_count": len(set(self.ledgers)),
            "holder_operations": self.holder_operations,
            "holder_ledger_count": len(set(self.holder_ledgers)),
            "done": self.done,
        }


def groups_per_tx(
    max_tx_set_size: int,
    ops_per_group: int,
    signers_per_group: int = 1,
    fixed_signers: int = 3,
    groups: int | None = None,
) -> int:
    """How many independent groups (holders) to put in one transaction so that whole transactions fill a
    ledger of `max_tx_set_size` operations, within Stellar's 100 operations and 20 signatures per
    transaction. Knowing how many `groups` there are: the largest count that needs the fewest ledgers
    (whole transactions per ledger); else the largest count within 2 % of the best fill."""
    top = max(1, min(MAX_OPS_PER_TX // ops_per_group, (MAX_SIGNATURES - fixed_signers) // signers_per_group))
    top = max(1, min(top, max_tx_set_size // ops_per_group))
    if groups:

        def ledgers(n: int) -> int:
            return math.ceil(math.ceil(groups / n) / max(1, max_tx_set_size // (n * ops_per_group)))

        least = min(ledgers(n) for n in range(1, top + 1))
        return max(n for n in range(1, top + 1) if ledgers(n) == least)

    def fill(n: int) -> int:
        return (max_tx_set_size // (n * ops_per_group)) * n * ops_per_group

    best = max(fill(n) for n in range(1, top + 1))
    return max(n for n in range(1, top + 1) if fill(n) >= 0.98 * best)


class Pace:
    """Admits one ledger's worth of transactions per ledger that closes, and never more than `ledgers` ledgers'
    worth ahead. One, not the two stellar-core's queue holds: a backlog offered at the rate ledgers take it
    never drains, each ledger picks its set from the queue without regard to age, and 19.14 drops (and bans
    for 10 ledgers) a transaction that waited 4 ledgers (HerderImpl.cpp TRANSACTION_QUEUE_TIMEOUT_LEDGERS):
    with two ledgers' worth queued, a few accepted transactions never applied and were resent a minute later
    (issue 10). A ledger's worth sent right after a close is queued long before the next round starts."""

    def __init__(self, core: CoreTx, per_ledger: int, ledgers: int = 1) -> None:
        self.core = core
        self.per_ledger = per_ledger
        self.cap = per_ledger * ledgers
        self.permits = self.cap
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        seen = self.core.ledger(max_age=0)
        self._thread = threading.Thread(target=self._run, args=(seen,), name="seed-pace", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop admitting and wait for the thread (it polls the validators through `core`, closed after)."""
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, seen: int) -> None:
        while not self.stop.is_set():
            if not self.core.wait_ledger(seen, 1.0):
                continue
            now = self.core.ledger()
            with self.cond:
                self.permits = min(self.cap, self.permits + self.per_ledger * max(1, now - seen))
                self.cond.notify_all()
            seen = now

    def admit(self, timeout: float = 60.0) -> None:
        """Wait for a permit (bounded: past `timeout` the transaction goes anyway, and waits for room then)."""
        with self.cond:
            self.cond.wait_for(lambda: self.permits > 0 or self.stop.is_set(), timeout)
            self.permits -= 1


class Chain:
    """Checks, reads and writes the chain through Horizon with one funding account."""

    def __init__(
        self,
        net: Network,
        horizon: Horizon,
        funder: Keypair,
        funder_is_root: bool,
        progress: Callable[[str], None],
        core: CoreTx | None = None,
    ) -> None:
        self.net = net
        self.h = horizon
        self.funder = funder
        self.funder_is_root = funder_is_root
        self.progress = progress
        root = horizon.root()
        if root.get("network_passphrase") != net.passphrase:
            raise DlnetError(
                f"Horizon {horizon.url} serves the network {root.get('network_passphrase')!r} but the inventory's"
                f" passphrase is {net.passphrase!r} — expected the same network — fix dlnet_network_passphrase"
                " or -i/--inventory"
            )
        if int(root.get("current_protocol_version") or 0) < 13:
            raise DlnetError(
                f"the network runs ledger protocol {root.get('current_protocol_version')} — expected 13 or later"
                " (modern transactions fail with tx_not_supported) — run `dlnet upgrade --to-latest` first"
            )
        ledger = horizon.latest_ledger()
        self.base_fee = int(ledger.get("base_fee_in_stroops", 100))
        self.base_reserve = int(ledger.get("base_reserve_in_stroops", 100_000_000))
        self.max_tx_set_size = int(ledger.get("max_tx_set_size", 100))
        acc = horizon.account(funder.public_key)
        if acc is None:
            who = "root account (seed = sha256(passphrase))" if funder_is_root else "funding account"
            raise DlnetError(
                f"{who} {funder.public_key} does not exist on this network — expected it funded — "
                + (
                    "check dlnet_network_passphrase matches the deployed network"
                    if funder_is_root
                    else "fund it first or use the root account"
                )
            )
        self.funder_account = acc
        # Through the validators when their admin endpoints are given (dlnet seed), as dlnet load submits. A
        # queued transaction Horizon does not show a minute (or 8 closes) later was dropped from the queue
        # (19.14 drops after 4 ledgers); shorter waits mistook slow ledgers on a busy machine for drops.
        confirm = max(60.0, 8 * close_seconds(horizon))
        self.tx = Transactor(horizon, net.passphrase, base_fee=self.base_fee, core=core, confirm_timeout=confirm)
        self._report_lock = threading.Lock()

    def account(self, account_id: str) -> dict[str, Any] | None:
        return self.h.account(account_id)

    def check_funding(self, steps: list[Step]) -> None:
        """Refuse before submitting anything when the funder cannot pay for the whole plan."""
        acc = self.funder_account
        signer_weight = next((s["weight"] for s in acc.get("signers", []) if s["key"] == self.funder.public_key), 1)
        if steps and signer_weight == 0:
            raise DlnetError(
                f"the funding account {self.funder.public_key} is locked (master weight 0) — expected a key that can"
                " sign — pass --funder-secret-file with an operator-funded account"
            )
        need = sum(
            Decimal(s.op.starting_balance)
            for s in steps
            if isinstance(s.op, CreateAccount) and s.signer.public_key == self.funder.public_key
        )
        need += Decimal(len(steps) * self.base_fee) / STROOPS
        have = _available_xlm(acc, self.base_reserve)
        if need > have:
            raise DlnetError(
                f"insufficient balance: the funding account {self.funder.public_key} needs {_amount(need)} XLM for"
                f" {len(steps)} operations but has {_amount(have)} XLM above its reserve — fund it, or lower the"
                " starting balances / holders in dlnet_dlc"
            )

    def _pack(self, groups: list[list[Step]], source: Keypair, ops_limit: int | None = None) -> list[list[Step]]:
        """Pack groups of steps (kept together, in order) into transactions within Stellar's limits."""
        per_tx = max(1, min(MAX_OPS_PER_TX, self.max_tx_set_size, ops_limit or MAX_OPS_PER_TX))
        batches: list[list[Step]] = [[]]
        for group in groups:
            batch = batches[-1]
            signers = {s.signer.public_key for s in [*batch, *group]} | {source.public_key}
            if batch and (len(batch) + len(group) > per_tx or len(signers) > MAX_SIGNATURES):
                batches.append(list(group))
            else:
                batch.extend(group)
        return [b for b in batches if b]

    def execute(self, steps: list[Step], report: Report) -> None:
        """Submit the steps in order from the funder, one transaction at a time; sequence kept locally."""
        batches = self._pack([[s] for s in steps], self.funder)
        self._submit(self.funder, int(self.funder_account["sequence"]), batches, report, "funder")

    def execute_channels(self, groups: list[list[Step]], channels: list[Keypair], report: Report) -> None:
        """Submit independent groups through channel accounts in parallel: one thread per channel, so no
        sequence number is ever used concurrently; the funder only signs the operations it sources."""
        if not groups:
            return
        if len(channels) < 2:
            self.execute([s for g in groups for s in g], report)
            return
        # Transactions sized so that whole ones fill a ledger; one in flight per channel (channels_needed).
        widest = max(len(g) for g in groups)
        ops_limit = groups_per_tx(self.max_tx_set_size, widest, groups=len(groups)) * widest
        batches = self._pack(groups, channels[0], ops_limit)
        lanes: list[list[list[Step]]] = [batches[i :: len(channels)] for i in range(len(channels))]
        seqs = {}
        found = self.h.accounts([ch.public_key for ch in channels])
        for ch in channels:
            acc = found.get(ch.public_key)
            if acc is None:
                raise DlnetError(f"channel account {ch.public_key} missing after funding — re-run dlnet seed")
            seqs[ch.public_key] = int(acc["sequence"])
        failures: list[BaseException] = []
        stop = threading.Event()
        busy = [(ch, work) for ch, work in zip(channels, lanes, strict=True) if work]
        core = self.tx.core
        pace = Pace(core, max(1, self.max_tx_set_size // ops_limit)) if core and core.ledger(max_age=0) else None

        def go() -> None:
            if core is not None:
                core.wait_ledger(core.ledger(max_age=0), 10.0)
            if pace is not None:
                pace.start()

        # Every lane signs its transactions first; then all start together right after a ledger closed, so
        # the first ledger of the run is as full as the others.
        start = threading.Barrier(len(busy), action=go)

        def lane(ch: Keypair, work: list[list[Step]]) -> None:
            try:
                self._submit(
                    ch, seqs[ch.public_key], work, report, f"channel {ch.public_key[:6]}", stop, holders=True,
                    ready=lambda: start.wait(timeout=300), pace=pace,
                )
            except BaseException as exc:  # collected and re-raised by the caller thread
                failures.append(exc)
                stop.set()
                start.abort()

        threads = [threading.Thread(target=lane, args=(ch, work)) for ch, work in busy]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        finally:
            if pace is not None:
                pace.close()
        if failures:
            raise failures[0]

    def _submit(
        self,
        source: Keypair,
        seq: int,
        batches: list[list[Step]],
        report: Report,
        label: str,
        stop: threading.Event | None = None,
        *,
        holders: bool = False,
        ready: Callable[[], object] | None = None,
        pace: Pace | None = None,
    ) -> None:
        """Submit `batches` in order from `source`, sequence numbers kept locally.

        Through the validators (`self.tx.core`, what `dlnet load` submits to) a channel's transactions are
        signed ahead and sent one per ledger: stellar-core answers at once, and 19.14 queues one transaction
        per source account, so the next one goes as soon as the ledger that took its predecessor closed (if
        that ledger was full, it is refused, TRY_AGAIN_LATER, and sent again after the next one). Together
        the channels queue one ledger's worth after each close (Pace), so every ledger closes full. They are
        confirmed through Horizon at the end, which also makes a re-run read what this run did. The funder's
        own steps depend on each other: each is confirmed before the next. Through Horizon only, each
        transaction is answered once applied.
        A transaction that failed when applied because an account already existed (made elsewhere) is
        sent again without that step, in a next round; one that Horizon never showed (dropped from the
        queue) is sent again from the account's sequence number as Horizon reads it.
        """
        todo = list(enumerate(batches, start=1))
        pipelined = holders and self.tx.core is not None
        prebuilt: dict[tuple[int, int], TransactionEnvelope] = {}
        if pipelined:  # signed ahead, sent one per ledger
            for k, (i, batch) in enumerate(todo):
                prebuilt[(i, seq + k)] = self._envelope(source, batch, seq + k)
        if ready is not None:
            ready()
        for _round in range(1, 4):  # bounded: a round only repeats what it could fix
            if not todo:
                return
            sent: list[tuple[int, list[Step], str, dict[str, Any] | None]] = []  # (index, batch, hash, record)
            again: list[tuple[int, list[Step]]] = []
            queue_full = bad_seq = early = 0
            k = 0
            while k < len(todo):
                if stop is not None and stop.is_set():
                    return
                i, batch = todo[k]
                envelope = prebuilt.pop((i, seq), None) if _round == 1 and not early else None
                envelope = envelope or self._envelope(source, batch, seq, 100 * early)
                if pace is not None and not early and not queue_full:
                    pace.admit()
                try:
                    if self.tx.core is not None:
                        envelope = self.tx.send(
                            envelope,
                            self.progress,
                            lambda n, b=batch, q=seq, v=early: self._envelope(source, b, q, 100 * v + n),
                        )
                        record = None
                    else:
                        record = self.tx.submit(envelope, self.progress)
                except SubmitFailed as exc:
                    if exc.tx_code == "tx_insufficient_fee" and queue_full < QUEUE_FULL_RETRIES:
                        # Horizon only: stellar-core's queue holds two ledgers' worth; at the base fee a
                        # transaction that does not fit is refused this way (surge pricing). It did not
                        # apply: send it again once a ledger has made room.
                        wait = min(0.5 * 2**queue_full, 8.0)
                        queue_full += 1
                        self.progress(f"seed: {label}: the transaction queue is full (tx_insufficient_fee),"
                                      f" resending transaction {i} in {wait:.1f}s")
                        time.sleep(wait)
                        continue
                    if exc.tx_code == "tx_bad_seq" and pipelined and early < 3:
                        # Sent before its predecessor applied (the ledger that should take it was full):
                        # again after the next ledger, as another envelope (the same effect).
                        early += 1
                        self.tx.core.wait_ledger(self.tx.core.ledger(), 30.0)  # type: ignore[union-attr]
                        continue
                    if exc.tx_code == "tx_bad_seq" and bad_seq < 2:  # someone else used the account: re-read it
                        bad_seq += 1
                        again += self._settle(sent, report, label, holders)
                        sent = []
                        seq = self._sequence(source, seq)
                        self.progress(f"seed: {label} sequence changed under us, rebuilding transaction {i}")
                        continue
                    if exc.tx_code == "tx_failed":  # applied and failed (Horizon only): settled with the rest
                        sent.append((i, batch, envelope.hash_hex(), {"successful": False, "result_codes": exc.codes}))
                        seq += 1
                        k += 1
                        continue
                    self._settle(sent, report, label, holders)  # what was queued before it still counts
                    raise DlnetError(
                        f"transaction {i}/{len(batches)} of the {label}"
                        f" ({', '.join(sorted({s.what for s in batch}))}) was refused: {codes_text(exc.codes)} —"
                        " nothing of it applied; earlier transactions did — fix the cause and re-run (it resumes)"
                    ) from None
                sent.append((i, batch, envelope.hash_hex(), record))
                seq += 1
                k += 1
                early = 0
                if pipelined and self.tx.core is not None and k < len(todo):
                    self.tx.core.wait_ledger(self.tx.core.ledger(), 30.0)  # the earliest the next one is taken
                if not pipelined:
                    again += self._settle(sent, report, label, holders)
                    sent = []
            again += self._settle(sent, report, label, holders)
            if again:
                seq = self._sequence(source, seq)
            todo = again
        if todo:
            raise DlnetError(
                f"the {label}: {len(todo)} transaction(s) still not applied after 3 rounds — expected the"
                " network to take them — check `dlnet status`, then re-run (it resumes)"
            )

    def _envelope(self, source: Keypair, batch: list[Step], seq: int, attempt: int = 0) -> TransactionEnvelope:
        """The batch's transaction; each `attempt` valid a second longer (another hash, same effect)."""
        signers = {s.signer.public_key: s.signer for s in batch if s.signer.public_key != source.public_key}
        return self.tx.build(
            source, [s.op for s in batch], signers=signers.values(), sequence=seq, valid_for=self.tx.timeout + attempt
        )

    def _sequence(self, source: Keypair, seq: int) -> int:
        acc = self.h.account(source.public_key)
        return int(acc["sequence"]) if acc else seq

    def _settle(
        self,
        sent: list[tuple[int, list[Step], str, dict[str, Any] | None]],
        report: Report,
        label: str,
        holders: bool,
    ) -> list[tuple[int, list[Step]]]:
        """Confirm sent transactions through Horizon (the last first: once it shows, the earlier ones of the
        same account are in as well), record the applied ones, and return what to send again."""
        again: list[tuple[int, list[Step]]] = []
        if not sent:
            return again
        if sent[-1][3] is None:
            self.h.wait_for(sent[-1][2], self.tx.confirm_timeout)
        failed: list[str] = []
        for i, batch, tx_hash, record in sent:
            try:
                if record is None:  # queued on the validators: Horizon tells how it went
                    rec = self.tx.confirm(tx_hash, timeout=0)
                elif not record.get("successful", True):
                    raise SubmitFailed(f"transaction {tx_hash[:12]}… failed", record["result_codes"])
                else:
                    rec = record
            except HorizonError as exc:
                if exc.status != 504:
                    raise
                self.progress(f"seed: {label}: transaction {i} never showed in a ledger, sending it again")
                again.append((i, batch))
                continue
            except SubmitFailed as exc:
                # Holders are read in pages of the DLC's trustlines; an account that exists without one
                # (made elsewhere) is found here: drop its create_account and send the rest again.
                exists = [
                    s for s, code in zip(batch, exc.op_codes, strict=False)
                    if code == "op_already_exists" and isinstance(s.op, CreateAccount)
                ]
                if exists and len(exists) < len(batch):
                    self.progress(f"seed: {label}: {len(exists)} account(s) already existed, resending")
                    again.append((i, [s for s in batch if s not in exists]))
                    continue
                failed.append(
                    f"transaction {i} ({', '.join(sorted({s.what for s in batch}))}): {codes_text(exc.codes)}"
                )
                continue
            with self._report_lock:
                report.transactions += 1
                report.operations += len(batch)
                report.ledgers.append(int(rec.get("ledger", 0)))
                report.done.extend(s.what for s in batch)
                if holders:
                    report.holder_operations += len(batch)
                    report.holder_ledgers.append(int(rec.get("ledger", 0)))
            self.progress(
                f"seed: {label} transaction {i} ({len(batch)} operations) applied in ledger {rec.get('ledger')}"
            )
        if failed:
            raise DlnetError(
                f"the {label}: {'; '.join(failed[:3])}{' …' if len(failed) > 3 else ''} failed — nothing of those"
                " applied; other transactions did — fix the cause and re-run (it resumes)"
            )
        return again


# ---- DLC -----------------------------------------------------------------------------------------
def holder_ops(dlc: DlcSettings) -> int:
    """Operations per new holder: create account, trustline, and the issuer's authorization when required."""
    return 3 if "auth_required" in dlc.flags else 2


def channels_needed(dlc: DlcSettings, max_tx_set_size: int, holders: int | None = None) -> int:
    """Channel accounts that keep the ledgers full while holders are created: one per transaction (as many
    holders as its signatures allow), up to MAX_CHANNELS, at least dlnet_dlc.channels. stellar-core 19.14
    queues one transaction per source account, so a channel's next transaction can only go once the ledger
    that took the previous one has closed, a race against the next ledger's nomination that a busy machine
    loses; with a channel per transaction every one is signed ahead and ready, the queue (two ledgers'
    worth) is refilled from them after every close, and each ledger takes a full set."""
    holders = dlc.holders if holders is None else holders
    if holders <= 0:
        return 0
    # signers of one transaction: the channel (source), the funder, the issuer and one key per holder
    n = groups_per_tx(max_tx_set_size, holder_ops(dlc), groups=holders)
    return min(MAX_CHANNELS, max(dlc.channels, math.ceil(holders / n)))


def plan_dlc(
    chain: Chain,
    dlc: DlcSettings,
    home_domain: str,
    issuer: Keypair,
    distributor: Keypair,
    holders: list[Keypair],
    channels: list[Keypair] | None = None,
) -> tuple[list[Step], list[list[Step]], dict[str, Any]]:
    """Missing steps: the coin's own (in order, from the funder) and one independent group per holder."""
    funder = chain.funder
    src = funder.public_key
    asset = Asset(dlc.code, issuer.public_key)
    steps: list[Step] = []
    iss = chain.account(issuer.public_key)
    dist = chain.account(distributor.public_key)
    if iss is None:
        steps.append(
            Step(CreateAccount(issuer.public_key, dlc.issuer_starting_balance, source=src), funder, "create issuer")
        )
    if dist is None:
        steps.append(
            Step(
                CreateAccount(distributor.public_key, dlc.distributor_starting_balance, source=src),
                funder,
                "create distributor",
            )
        )
    want = sum(FLAG_BITS[f] for f in dlc.flags)
    have = _flags(iss)
    set_f, clear_f = want & ~have, have & ~want
    domain_ok = (iss or {}).get("home_domain", "") == home_domain
    if set_f or clear_f or not domain_ok:
        steps.append(
            Step(
                SetOptions(
                    set_flags=AuthorizationFlag(set_f) if set_f else None,
                    clear_flags=AuthorizationFlag(clear_f) if clear_f else None,
                    home_domain=None if domain_ok else home_domain,
                    source=issuer.public_key,
                ),
                issuer,
                "issuer flags and home domain",
            )
        )
    auth_required = bool(want & FLAG_BITS["auth_required"])

    def trust(kp: Keypair, acc: dict[str, Any] | None, who: str, steps: list[Step]) -> None:
        line = _line(acc, asset)
        if line is None:
            steps.append(Step(ChangeTrust(asset, source=kp.public_key), kp, f"{who} trustline"))
        if auth_required and not (line or {}).get("is_authorized"):
            steps.append(
                Step(
                    SetTrustLineFlags(
                        kp.public_key, asset, set_flags=TrustLineFlags.AUTHORIZED_FLAG, source=issuer.public_key
                    ),
                    issuer,
                    f"authorize {who}",
                )
            )

    trust(distributor, dist, "distributor", steps)
    supply = parse_amount(dlc.supply, "dlnet_dlc.supply")
    issued = Decimal(_data(iss, ISSUED_KEY) or "0")
    if supply < issued:
        raise DlnetError(
            f"dlnet_dlc.supply {dlc.supply} is below the {issued} {dlc.code} already issued — expected"
            f" at least {issued} — dlnet never burns coins; restore the supply in the inventory"
        )
    if supply > issued:
        steps.append(
            Step(
                Payment(distributor.public_key, asset, _amount(supply - issued), source=issuer.public_key),
                issuer,
                f"issue {dlc.code}",
            )
        )
        steps.append(
            Step(ManageData(ISSUED_KEY, _amount(supply), source=issuer.public_key), issuer, f"issue {dlc.code}")
        )
    groups: list[list[Step]] = []
    # Read less (Horizon rate-limits per IP): the DLC's trustlines come 200 accounts per request; a holder
    # not among them is taken as missing (dlnet creates a holder and its trustline in one transaction), and
    # the executor drops a create_account that finds the account already there.
    lines = chain.h.accounts_holding(asset) if iss is not None and holders else {}
    accounts = [lines.get(kp.public_key) for kp in holders]
    for kp, acc in zip(holders, accounts, strict=True):
        group: list[Step] = []
        if acc is None:
            group.append(
                Step(CreateAccount(kp.public_key, dlc.holder_starting_balance, source=src), funder, "create holders")
            )
        trust(kp, acc, "holders", group)
        if group:
            groups.append(group)
    if groups and channels and len(channels) > 1:
        found = chain.h.accounts([ch.public_key for ch in channels])
        for ch in channels:
            acc = found.get(ch.public_key)
            if acc is None:
                steps.append(
                    Step(
                        CreateAccount(ch.public_key, dlc.channel_starting_balance, source=src),
                        funder,
                        "create channels",
                    )
                )
    summary = {
        "asset": f"{dlc.code}:{issuer.public_key}",
        "issuer": issuer.public_key,
        "distributor": distributor.public_key,
        "supply": _amount(supply),
        "holders": len(holders),
    }
    return steps, groups, summary


def _master_weight(acc: dict[str, Any], key: str) -> int:
    return int(next((s["weight"] for s in acc.get("signers", []) if s["key"] == key), 1))


def lock_root_step(chain: Chain) -> list[Step]:
    root = root_keypair(chain.net)
    acc = chain.account(root.public_key) or {}
    if _master_weight(acc, root.public_key) == 0:
        return []
    if not chain.funder_is_root:
        raise DlnetError(
            f"--lock-root: the root account {root.public_key} is not locked and the funder is another account —"
            " expected to seed from the root account — run `dlnet lock-root` (make up does)"
        )
    return [Step(SetOptions(master_weight=0, source=root.public_key), root, "lock root")]


ROOT_KEEPS = Decimal(1)  # XLM left on the locked root above its reserve (fees of the lock itself and slack)


def lock_root(
    net: Network, horizon: Horizon, progress: Callable[[str], None]
) -> tuple[Report, dict[str, Any]]:
    """Hand the root account's lumens to the kit's funder (secrets/funder.seed, 0600) and set the root's
    master weight to 0, in one transaction: afterwards no key derivable from the inventory can sign."""
    root = root_keypair(net)
    report = Report()
    summary: dict[str, Any] = {"root": root.public_key, "root_locked": True}
    acc = horizon.account(root.public_key)
    if acc is not None and _master_weight(acc, root.public_key) == 0:
        own = secrets_dir(net.env) / f"{FUNDER}.seed"
        summary["funder"] = _read_seed(own, FUNDER).public_key if own.exists() else None
        return report, summary
    chain = Chain(net, horizon, root, True, progress)
    funder = keypair(net.env, FUNDER)  # written (0600) before any transaction names it
    summary["funder"] = funder.public_key
    steps: list[Step] = []
    if horizon.account(funder.public_key) is None:
        amount = _available_xlm(chain.funder_account, chain.base_reserve) - ROOT_KEEPS
        if amount < 1:
            raise DlnetError(
                f"lock-root: the root account {root.public_key} has {_amount(amount + ROOT_KEEPS)} XLM above its"
                " reserve — expected its genesis lumens — lock it by hand (set_options master_weight 0)"
            )
        steps.append(
            Step(CreateAccount(funder.public_key, _amount(amount), source=root.public_key), root, "fund the funder")
        )
    steps.append(Step(SetOptions(master_weight=0, source=root.public_key), root, "lock root"))
    chain.execute(steps, report)
    return report, summary


# ---- models (paper Table 1: DLM and VLM per model, issued by its initiator) ---------------------------
def check_model_name(name: str) -> None:
    if not _MODEL.match(name):
        raise DlnetError(
            f"model name {name!r} — expected 1-31 lowercase letters, digits or dashes (e.g. mnist-cnn)"
            " — it names the model's keys and data entry"
        )


def plan_model(
    chain: Chain,
    name: str,
    issuer: Keypair,
    initiator: Keypair,
    dlm_supply: Decimal,
    vlm_supply: Decimal,
    starting_balance: str,
) -> tuple[list[Step], dict[str, Any]]:
    steps: list[Step] = []
    iss = chain.account(issuer.public_key)
    ini = chain.account(initiator.public_key)
    funder = chain.funder
    for kp, acc, what in ((issuer, iss, "create model issuer"), (initiator, ini, "create model initiator")):
        if acc is None:
            steps.append(Step(CreateAccount(kp.public_key, starting_balance, source=funder.public_key), funder, what))
    if _data(iss, "dlnet.model") != name:
        steps.append(Step(ManageData("dlnet.model", name, source=issuer.public_key), issuer, "name the model"))
    if _data(iss, "dlnet.initiator") != initiator.public_key:
        # who runs the model's market: the compliance service finds its validators' strikes from here
        steps.append(Step(ManageData("dlnet.initiator", initiator.public_key, source=issuer.public_key), issuer,
                          "name the model's initiator"))
    for code, supply in (("DLM", dlm_supply), ("VLM", vlm_supply)):
        asset = Asset(code, issuer.public_key)
        if _line(ini, asset) is None:
            steps.append(Step(ChangeTrust(asset, source=initiator.public_key), initiator, f"{code} trustline"))
        issued = Decimal(_data(iss, f"{code.lower()}.issued") or "0")
        if supply < issued:
            raise DlnetError(
                f"--{code.lower()}-supply {supply} is below the {issued} {code} already issued —"
                f" expected at least {issued} — dlnet never burns tokens"
            )
        if supply > issued:
            steps.append(
                Step(
                    Payment(initiator.public_key, asset, _amount(supply - issued), source=issuer.public_key),
                    issuer,
                    f"issue {code}",
                )
            )
            steps.append(
                Step(
                    ManageData(f"{code.lower()}.issued", _amount(supply), source=issuer.public_key),
                    issuer,
                    f"issue {code}",
                )
            )
    summary = {
        "model": name,
        "issuer": issuer.public_key,
        "initiator": initiator.public_key,
        "dlm": f"DLM:{issuer.public_key}",
        "vlm": f"VLM:{issuer.public_key}",
        "dlm_supply": _amount(dlm_supply),
        "vlm_supply": _amount(vlm_supply),
    }
    return steps, summary
