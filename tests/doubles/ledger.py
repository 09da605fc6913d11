"""A small Stellar ledger that really applies the transactions it is given (test double, not a node).

It decodes envelopes with stellar_sdk, checks signatures against the network passphrase, sequence
numbers, fees and reserves, and applies the classic operations the kit uses: create_account, payment,
set_options (flags, home domain, master weight, thresholds, signers), change_trust,
set_trust_line_flags, allow_trust, clawback, manage_data, bump_sequence, and offers (manage sell / buy,
passive; stored in an order book and crossed at the maker's price). Results use Horizon's result codes
(`tx_bad_seq`, `op_underfunded`, ...). Genesis is stellar-core's: all 100 billion XLM in the root account
whose ed25519 seed is sha256(passphrase), base fee 100, base reserve 10 XLM, max tx set size 100.

Not modelled: sponsorship, claimable balances, liquidity pools, path payments, muxed ids (accepted,
ignored), liabilities (offers do not reserve balances), fee bumps.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import stellar_sdk as ops
from stellar_sdk import Asset, Keypair, TransactionEnvelope
from stellar_sdk.exceptions import BadSignatureError

from tests.doubles.results import result_xdr

STROOPS = 10_000_000
INT64_MAX = 2**63 - 1
TOTAL_COINS = 100_000_000_000 * STROOPS

AUTH_REQUIRED, AUTH_REVOCABLE, AUTH_IMMUTABLE, AUTH_CLAWBACK = 1, 2, 4, 8
TL_AUTHORIZED, TL_MAINTAIN, TL_CLAWBACK = 1, 2, 4


def root_keypair(passphrase: str) -> Keypair:
    return Keypair.from_raw_ed25519_seed(hashlib.sha256(passphrase.encode()).digest())


def amount_str(stroops: int) -> str:
    return f"{Decimal(stroops) / STROOPS:.7f}"


def to_stroops(amount: str | Decimal) -> int:
    return int(Decimal(amount) * STROOPS)


def asset_key(asset: Asset) -> tuple[str, str] | None:
    return None if asset.is_native() else (asset.code, asset.issuer)


@dataclass
class TrustLine:
    balance: int
    limit: int
    flags: int
    last_modified: int


@dataclass
class AccountState:
    id: str
    balance: int
    seq: int
    last_modified: int
    master_weight: int = 1
    thresholds: list[int] = field(default_factory=lambda: [0, 0, 0])
    flags: int = 0
    home_domain: str = ""
    signers: dict[str, int] = field(default_factory=dict)
    trustlines: dict[tuple[str, str], TrustLine] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    offers: int = 0

    @property
    def subentries(self) -> int:
        return len(self.trustlines) + len(self.signers) + len(self.data) + self.offers


@dataclass
class Offer:
    id: int
    seller: str
    selling: Asset
    buying: Asset
    amount: int  # of `selling`, stroops
    n: int  # price of 1 selling in buying = n/d
    d: int
    last_modified: int


class OpFailed(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Submission:
    """A transaction accepted into the queue; `done` is set once its ledger closed."""

    hash: str
    envelope_xdr: str
    env: TransactionEnvelope
    source: str
    op_count: int
    done: threading.Event = field(default_factory=threading.Event)
    record: dict[str, Any] | None = None


class TxRejected(Exception):
    def __init__(self, tx_code: str, op_codes: list[str] | None = None, op_classes: list[str] | None = None) -> None:
        super().__init__(tx_code)
        self.tx_code = tx_code
        self.op_codes = op_codes or []
        self.op_classes = op_classes or []

    @property
    def result_xdr(self) -> str:
        return result_xdr(self.tx_code, 0, self.op_classes, self.op_codes)


class Ledger:
    """The chain state; thread-safe through one lock. `close()` closes one ledger."""

    def __init__(
        self,
        passphrase: str,
        *,
        protocol_version: int = 19,
        base_fee: int = 100,
        base_reserve: int = 10 * STROOPS,
        max_tx_set_size: int = 100,
        close_time_step: int = 1,
    ) -> None:
        self.passphrase = passphrase
        self.protocol_version = protocol_version
        self.base_fee = base_fee
        self.base_reserve = base_reserve
        self.max_tx_set_size = max_tx_set_size
        self.close_time_step = close_time_step
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.root = root_keypair(passphrase)
        self.accounts: dict[str, AccountState] = {
            self.root.public_key: AccountState(self.root.public_key, TOTAL_COINS, 0, 1)
        }
        self.offers: dict[int, Offer] = {}
        self.next_offer_id = 1
        self.fee_pool = 0
        genesis_time = int(time.time())
        self.ledgers: list[dict[str, Any]] = [self._ledger_record(1, genesis_time, [], "0" * 64)]
        self.queue: list[Submission] = []
        self.transactions: dict[str, dict[str, Any]] = {}
        self.tx_order: list[str] = []
        self.payments: list[dict[str, Any]] = []

    # ---- reading -------------------------------------------------------------------------
    @property
    def sequence(self) -> int:
        return int(self.ledgers[-1]["sequence"])

    @property
    def close_time(self) -> int:
        return int(self.ledgers[-1]["_close_time"])

    def account(self, account_id: str) -> AccountState | None:
        with self.lock:
            acc = self.accounts.get(account_id)
            return copy.deepcopy(acc) if acc else None

    def min_balance(self, acc: AccountState) -> int:
        return (2 + acc.subentries) * self.base_reserve

    # ---- submission -----------------------------------------------------------------------
    def submit(self, envelope_xdr: str) -> Submission:
        """Check a transaction as stellar-core's `tx` endpoint does and queue it; raise TxRejected."""
        try:
            env = TransactionEnvelope.from_xdr(envelope_xdr, self.passphrase)
        except Exception as exc:  # any decoding failure is a malformed envelope, as core reports it
            raise TxRejected("tx_malformed") from exc
        tx = env.transaction
        with self.lock:
            if self.protocol_version < 13:
                raise TxRejected("tx_not_supported")
            h = env.hash_hex()
            # A resubmission (after a timeout) answers with the first one's outcome, as Horizon does.
            for s in self.queue:
                if s.hash == h:
                    return s
            if h in self.transactions:
                done = Submission(h, envelope_xdr, env, tx.source.account_id, len(tx.operations))
                done.record = self.transactions[h]
                done.done.set()
                return done
            source = tx.source.account_id
            acc = self.accounts.get(source)
            if acc is None:
                raise TxRejected("tx_no_source_account")
            pending = [s for s in self.queue if s.source == source]
            expected = (pending[-1].env.transaction.sequence if pending else acc.seq) + 1
            if tx.sequence != expected:
                raise TxRejected("tx_bad_seq")
            n_ops = len(tx.operations)
            if n_ops == 0:
                raise TxRejected("tx_missing_operation")
            if tx.fee < self.base_fee * n_ops:
                raise TxRejected("tx_insufficient_fee")
            fees_pending = sum(s.env.transaction.fee for s in pending)
            if acc.balance - fees_pending - tx.fee < self.min_balance(acc):
                raise TxRejected("tx_insufficient_balance")
            tb = tx.preconditions.time_bounds if tx.preconditions else None
            if tb and tb.max_time and tb.max_time < self.close_time:
                raise TxRejected("tx_too_late")
            signed = self._signers_present(env)
            if self._weight(acc, signed) < max(acc.thresholds[0], 1):
                raise TxRejected("tx_bad_auth")
            op_codes = []
            for op in tx.operations:
                src = op.source.account_id if op.source else source
                src_acc = self.accounts.get(src)
                if src_acc is None:
                    op_codes.append("op_success")  # may be created earlier in this tx: checked on apply
                    continue
                need = src_acc.thresholds[_threshold_level(op, src_acc)]
                enough = self._weight(src_acc, signed) >= max(need, 1)
                op_codes.append("op_success" if enough else "op_bad_auth")
            if "op_bad_auth" in op_codes:
                raise TxRejected("tx_failed", op_codes, [type(op).__name__ for op in tx.operations])
            sub = Submission(h, envelope_xdr, env, source, n_ops)
            self.queue.append(sub)
            self.changed.notify_all()
            return sub

    def _signers_present(self, env: TransactionEnvelope) -> set[str]:
        """Public keys whose signatures over this network's transaction hash verify."""
        tx_hash = env.hash()
        candidates: set[str] = {env.transaction.source.account_id}
        for op in env.transaction.operations:
            if op.source:
                candidates.add(op.source.account_id)
        for acc_id in list(candidates):
            acc = self.accounts.get(acc_id)
            if acc:
                candidates.update(acc.signers)
        out = set()
        for sig in env.signatures:
            for key in candidates:
                kp = Keypair.from_public_key(key)
                if kp.signature_hint() != sig.signature_hint:
                    continue
                try:
                    kp.verify(tx_hash, sig.signature)
                except BadSignatureError:
                    continue
                out.add(key)
        return out

    @staticmethod
    def _weight(acc: AccountState, signed: set[str]) -> int:
        w = acc.master_weight if acc.id in signed else 0
        return w + sum(wt for k, wt in acc.signers.items() if k in signed)

    # ---- closing ------------------------------------------------------------------------------
    def close(self) -> dict[str, Any]:
        """Close one ledger: apply queued transactions in order, up to max_tx_set_size operations."""
        with self.lock:
            taken: list[Submission] = []
            n_ops = 0
            while self.queue and n_ops + self.queue[0].op_count <= self.max_tx_set_size:
                sub = self.queue.pop(0)
                taken.append(sub)
                n_ops += sub.op_count
            seq = self.sequence + 1
            close_time = max(self.close_time + self.close_time_step, self.close_time + 1)
            results = []
            for index, sub in enumerate(taken, start=1):
                results.append(self._apply(sub, seq, index, close_time))
            rec = self._ledger_record(seq, close_time, results, self.ledgers[-1]["hash"])
            self.ledgers.append(rec)
            for sub in taken:
                sub.done.set()
            self.changed.notify_all()
            return rec

    def _ledger_record(
        self, seq: int, close_time: int, results: list[dict[str, Any]], prev: str
    ) -> dict[str, Any]:
        ok = [r for r in results if r["successful"]]
        return {
            "id": hashlib.sha256(f"{self.passphrase}:{seq}".encode()).hexdigest(),
            "paging_token": str(seq << 32),
            "hash": hashlib.sha256(f"{self.passphrase}:{seq}".encode()).hexdigest(),
            "prev_hash": prev,
            "sequence": seq,
            "successful_transaction_count": len(ok),
            "failed_transaction_count": len(results) - len(ok),
            "operation_count": sum(r["operation_count"] for r in ok),
            "tx_set_operation_count": sum(r["operation_count"] for r in results),
            "closed_at": _iso(close_time),
            "total_coins": amount_str(TOTAL_COINS),
            "fee_pool": amount_str(self.fee_pool),
            "base_fee_in_stroops": self.base_fee,
            "base_reserve_in_stroops": self.base_reserve,
            "max_tx_set_size": self.max_tx_set_size,
            "protocol_version": self.protocol_version,
            "_close_time": close_time,
        }

    def _apply(self, sub: Submission, seq: int, index: int, close_time: int) -> dict[str, Any]:
        tx = sub.env.transaction
        source = self.accounts[sub.source]
        fee = min(tx.fee, self.base_fee * sub.op_count)
        source.balance -= fee
        source.seq = tx.sequence
        self.fee_pool += fee
        work = _Overlay(self)
        op_codes: list[str] = []
        payments: list[dict[str, Any]] = []
        failed = False
        for i, op in enumerate(tx.operations):
            src = op.source.account_id if op.source else sub.source
            try:
                payments.extend(work.apply(op, src, seq, close_time))
                op_codes.append("op_success")
            except OpFailed as f:
                op_codes.append(f.code)
                failed = True
                # Horizon lists a code for every operation; those after the failure were not applied
                op_codes.extend("op_success" for _ in tx.operations[i + 1 :])
                break
        if not failed:
            work.commit()
        paging = str((seq << 32) | (index << 12))
        record = {
            "id": sub.hash,
            "hash": sub.hash,
            "paging_token": paging,
            "ledger": seq,
            "successful": not failed,
            "source_account": sub.source,
            "source_account_sequence": str(tx.sequence),
            "fee_account": sub.source,
            "fee_charged": str(fee),
            "max_fee": str(tx.fee),
            "operation_count": sub.op_count,
            "envelope_xdr": sub.envelope_xdr,
            "created_at": _iso(close_time),
            "memo_type": _memo_type(tx.memo),
            "result_codes": {"transaction": "tx_failed" if failed else "tx_success", "operations": op_codes},
            "result_xdr": result_xdr("tx_failed" if failed else "tx_success", fee,
                                     [type(op).__name__ for op in tx.operations], op_codes),
        }
        memo = _memo_value(tx.memo)
        if memo is not None:
            record["memo"] = memo
        self.transactions[sub.hash] = record
        self.tx_order.append(sub.hash)
        if not failed:
            for p in payments:
                op_id = str((seq << 32) | (index << 12) | (p.pop("_op_index") + 1))
                p.update(
                    id=op_id,
                    paging_token=op_id,
                    transaction_hash=sub.hash,
                    transaction_successful=True,
                    created_at=_iso(close_time),
                )
                self.payments.append(p)
        sub.record = record
        return record


def _threshold_level(op: ops.Operation, acc: AccountState) -> int:
    """0 low, 1 medium, 2 high: which of the source's thresholds this operation needs."""
    if isinstance(op, ops.AllowTrust | ops.SetTrustLineFlags | ops.BumpSequence):
        return 0
    if isinstance(op, ops.SetOptions) and (
        op.master_weight is not None
        or op.signer is not None
        or any(t is not None for t in (op.low_threshold, op.med_threshold, op.high_threshold))
    ):
        return 2
    if isinstance(op, ops.AccountMerge):
        return 2
    return 1


class _Overlay:
    """Copy-on-write view of the ledger for one transaction: committed only if every op succeeds."""

    def __init__(self, ledger: Ledger) -> None:
        self.l = ledger
        self.accounts: dict[str, AccountState] = {}
        self.offers: dict[int, Offer | None] = {}
        self.next_offer_id = ledger.next_offer_id
        self.op_index = 0

    def get(self, account_id: str) -> AccountState | None:
        if account_id not in self.accounts:
            base = self.l.accounts.get(account_id)
            if base is None:
                return None
            self.accounts[account_id] = copy.deepcopy(base)
        return self.accounts[account_id]

    def must(self, account_id: str, code: str) -> AccountState:
        acc = self.get(account_id)
        if acc is None:
            raise OpFailed(code)
        return acc

    def commit(self) -> None:
        self.l.accounts.update(self.accounts)
        for oid, offer in self.offers.items():
            if offer is None:
                self.l.offers.pop(oid, None)
            else:
                self.l.offers[oid] = offer
        self.l.next_offer_id = self.next_offer_id

    def available(self, acc: AccountState) -> int:
        return acc.balance - self.l.min_balance(acc)

    # ---- operations -------------------------------------------------------------------------
    def apply(self, op: ops.Operation, src_id: str, seq: int, close_time: int) -> list[dict[str, Any]]:
        src = self.must(src_id, "op_no_source_account")
        idx = self.op_index
        self.op_index += 1
        handler = getattr(self, "_" + type(op).__name__, None)
        if handler is None:
            raise OpFailed("op_not_supported")
        out = handler(op, src, seq) or []
        for p in out:
            p["_op_index"] = idx
        return out

    def _CreateAccount(self, op: ops.CreateAccount, src: AccountState, seq: int) -> list[dict[str, Any]]:
        amount = to_stroops(op.starting_balance)
        if amount <= 0:
            raise OpFailed("op_malformed")
        if self.get(op.destination) is not None:
            raise OpFailed("op_already_exists")
        if amount < 2 * self.l.base_reserve:
            raise OpFailed("op_low_reserve")
        if self.available(src) < amount:
            raise OpFailed("op_underfunded")
        src.balance -= amount
        self.accounts[op.destination] = AccountState(op.destination, amount, seq << 32, seq)
        return [
            {
                "type": "create_account",
                "type_i": 0,
                "source_account": src.id,
                "funder": src.id,
                "account": op.destination,
                "starting_balance": amount_str(amount),
            }
        ]

    def _credit(self, acc: AccountState, key: tuple[str, str], amount: int, *, sending: bool) -> None:
        """Move `amount` of a credit asset out of (sending) or into an account; issuers mint and burn."""
        if acc.id == key[1]:
            return
        tl = acc.trustlines.get(key)
        if tl is None:
            raise OpFailed("op_src_no_trust" if sending else "op_no_trust")
        if not tl.flags & TL_AUTHORIZED:
            raise OpFailed("op_src_not_authorized" if sending else "op_not_authorized")
        if sending:
            if tl.balance < amount:
                raise OpFailed("op_underfunded")
            tl.balance -= amount
        else:
            if tl.balance + amount > tl.limit:
                raise OpFailed("op_line_full")
            tl.balance += amount

    def _Payment(self, op: ops.Payment, src: AccountState, seq: int) -> list[dict[str, Any]]:
        amount = to_stroops(op.amount)
        if amount <= 0:
            raise OpFailed("op_malformed")
        dest = self.must(op.destination.account_id, "op_no_destination")
        key = asset_key(op.asset)
        if key is None:
            if self.available(src) < amount:
                raise OpFailed("op_underfunded")
            src.balance -= amount
            dest.balance += amount
        else:
            if self.get(key[1]) is None:
                raise OpFailed("op_no_issuer")
            self._credit(src, key, amount, sending=True)
            self._credit(dest, key, amount, sending=False)
        rec = {
            "type": "payment",
            "type_i": 1,
            "source_account": src.id,
            "from": src.id,
            "to": dest.id,
            "amount": amount_str(amount),
        }
        rec.update(_asset_json(op.asset))
        return [rec]

    def _SetOptions(self, op: ops.SetOptions, src: AccountState, seq: int) -> None:
        set_f = int(op.set_flags or 0)
        clear_f = int(op.clear_flags or 0)
        if set_f & clear_f:
            raise OpFailed("op_bad_flags")
        if set_f or clear_f:
            if src.flags & AUTH_IMMUTABLE:
                raise OpFailed("op_cant_change")
            flags = (src.flags | set_f) & ~clear_f
            if flags & AUTH_CLAWBACK and not flags & AUTH_REVOCABLE:
                raise OpFailed("op_auth_revocable_required")
            src.flags = flags
        if op.home_domain is not None:
            if len(op.home_domain) > 32:
                raise OpFailed("op_invalid_home_domain")
            src.home_domain = op.home_domain
        for i, t in enumerate((op.low_threshold, op.med_threshold, op.high_threshold)):
            if t is not None:
                if not 0 <= t <= 255:
                    raise OpFailed("op_threshold_out_of_range")
                src.thresholds[i] = t
        if op.master_weight is not None:
            if not 0 <= op.master_weight <= 255:
                raise OpFailed("op_threshold_out_of_range")
            src.master_weight = op.master_weight
        if op.signer is not None:
            key = op.signer.signer_key.encoded_signer_key
            if key == src.id:
                raise OpFailed("op_bad_signer")
            if op.signer.weight == 0:
                src.signers.pop(key, None)
            else:
                new = key not in src.signers
                src.signers[key] = op.signer.weight
                if new and src.balance < self.l.min_balance(src):
                    raise OpFailed("op_low_reserve")
        src.last_modified = seq

    def _ChangeTrust(self, op: ops.ChangeTrust, src: AccountState, seq: int) -> None:
        if not isinstance(op.asset, Asset) or op.asset.is_native():
            raise OpFailed("op_malformed")
        key = asset_key(op.asset)
        assert key is not None
        if key[1] == src.id:
            raise OpFailed("op_malformed")
        limit = to_stroops(op.limit) if op.limit is not None else INT64_MAX
        if limit < 0:
            raise OpFailed("op_malformed")
        tl = src.trustlines.get(key)
        if limit == 0:
            if tl is None:
                return
            if tl.balance:
                raise OpFailed("op_invalid_limit")
            del src.trustlines[key]
            return
        if tl is not None:
            if limit < tl.balance:
                raise OpFailed("op_invalid_limit")
            tl.limit = limit
            tl.last_modified = seq
            return
        issuer = self.get(key[1])
        if issuer is None:
            raise OpFailed("op_no_issuer")
        flags = 0 if issuer.flags & AUTH_REQUIRED else TL_AUTHORIZED
        if issuer.flags & AUTH_CLAWBACK:
            flags |= TL_CLAWBACK
        src.trustlines[key] = TrustLine(0, limit, flags, seq)
        if src.balance < self.l.min_balance(src):
            raise OpFailed("op_low_reserve")

    def _set_tl_flags(
        self, src: AccountState, trustor: str, key: tuple[str, str], set_f: int, clear_f: int, seq: int
    ) -> None:
        if key[1] != src.id or trustor == src.id:
            raise OpFailed("op_malformed")
        if set_f & TL_CLAWBACK or (set_f & TL_AUTHORIZED and set_f & TL_MAINTAIN):
            raise OpFailed("op_malformed")
        acc = self.must(trustor, "op_no_trust_line")
        tl = acc.trustlines.get(key)
        if tl is None:
            raise OpFailed("op_no_trust_line")
        flags = (tl.flags | set_f) & ~clear_f
        revoking = (tl.flags & TL_AUTHORIZED and not flags & TL_AUTHORIZED) or (
            tl.flags & (TL_AUTHORIZED | TL_MAINTAIN) and not flags & (TL_AUTHORIZED | TL_MAINTAIN)
        )
        if revoking and not src.flags & AUTH_REVOCABLE:
            raise OpFailed("op_cant_revoke")
        if flags & TL_AUTHORIZED and flags & TL_MAINTAIN:
            flags &= ~TL_MAINTAIN
        tl.flags = flags
        tl.last_modified = seq

    def _SetTrustLineFlags(self, op: ops.SetTrustLineFlags, src: AccountState, seq: int) -> None:
        key = asset_key(op.asset)
        if key is None:
            raise OpFailed("op_malformed")
        self._set_tl_flags(src, op.trustor, key, int(op.set_flags or 0), int(op.clear_flags or 0), seq)

    def _AllowTrust(self, op: ops.AllowTrust, src: AccountState, seq: int) -> None:
        value = int(op.authorize)
        set_f = value & (TL_AUTHORIZED | TL_MAINTAIN)
        clear_f = (TL_AUTHORIZED | TL_MAINTAIN) & ~set_f
        self._set_tl_flags(src, op.trustor, (op.asset_code, src.id), set_f, clear_f, seq)

    def _Clawback(self, op: ops.Clawback, src: AccountState, seq: int) -> None:
        key = asset_key(op.asset)
        amount = to_stroops(op.amount)
        if key is None or key[1] != src.id or amount <= 0:
            raise OpFailed("op_malformed")
        acc = self.must(op.from_.account_id, "op_no_trust")
        tl = acc.trustlines.get(key)
        if tl is None:
            raise OpFailed("op_no_trust")
        if not tl.flags & TL_CLAWBACK:
            raise OpFailed("op_not_clawback_enabled")
        if tl.balance < amount:
            raise OpFailed("op_underfunded")
        tl.balance -= amount

    def _ManageData(self, op: ops.ManageData, src: AccountState, seq: int) -> None:
        name = op.data_name
        if op.data_value is None:
            if name not in src.data:
                raise OpFailed("op_name_not_found")
            del src.data[name]
            return
        src.data[name] = bytes(op.data_value)
        if src.balance < self.l.min_balance(src):
            raise OpFailed("op_low_reserve")

    def _BumpSequence(self, op: ops.BumpSequence, src: AccountState, seq: int) -> None:
        if op.bump_to > src.seq:
            src.seq = op.bump_to

    # ---- offers: stored in a book, crossed against resting offers at their price --------------
    def _offer(
        self,
        src: AccountState,
        selling: Asset,
        buying: Asset,
        amount: int,
        n: int,
        d: int,
        offer_id: int,
        seq: int,
        passive: bool,
    ) -> None:
        if selling == buying or n <= 0 or d <= 0 or amount < 0:
            raise OpFailed("op_malformed")
        for asset, sell in ((selling, True), (buying, False)):
            key = asset_key(asset)
            if key is None or key[1] == src.id:
                continue
            if self.get(key[1]) is None:
                raise OpFailed("op_sell_no_issuer" if sell else "op_buy_no_issuer")
            tl = src.trustlines.get(key)
            if tl is None:
                raise OpFailed("op_sell_no_trust" if sell else "op_buy_no_trust")
            if not tl.flags & TL_AUTHORIZED:
                # what Horizon 2.26.1 answers for manage offers (no op_ prefix; checked on the real network)
                raise OpFailed("sell_not_authorized" if sell else "buy_not_authorized")
        if offer_id:
            old = self.offers.get(offer_id, self.l.offers.get(offer_id))
            if old is None or old.seller != src.id:
                raise OpFailed("op_offer_not_found")
            self.offers[offer_id] = None
            src.offers -= 1
        if amount == 0:
            return
        if self._holding(src, selling) < amount:
            raise OpFailed("op_underfunded")
        remaining = amount
        book = sorted(
            (o for o in self._book() if o.selling == buying and o.buying == selling and o.seller != src.id),
            key=lambda o: (Decimal(o.n) / o.d, o.id),
        )
        for maker in book:
            # the maker sells `buying` at maker.n/maker.d `selling` each; we want at least n/d `buying`
            # per `selling`: crosses when maker.d/maker.n >= n/d (strictly for a passive offer)
            lhs, rhs = maker.d * d, n * maker.n
            if lhs < rhs or (passive and lhs == rhs):
                break
            cost = Decimal(maker.amount) * maker.n / maker.d  # of `selling`, for all the maker has
            if cost > remaining:
                got = int(Decimal(remaining) * maker.d / maker.n)
                cost_i = remaining
            else:
                got = maker.amount
                cost_i = int(cost)
            if got <= 0:
                break
            maker_acc = self.must(maker.seller, "op_cross_self")
            self._move(src, buying, got, incoming=True)
            self._move(maker_acc, selling, cost_i, incoming=True)
            self._move(maker_acc, buying, got, incoming=False)
            self._move(src, selling, cost_i, incoming=False)
            left = maker.amount - got
            if left > 0:
                self.offers[maker.id] = Offer(
                    maker.id, maker.seller, maker.selling, maker.buying, left, maker.n, maker.d, seq
                )
            else:
                self.offers[maker.id] = None
                maker_acc.offers -= 1
            remaining -= cost_i
            if remaining <= 0:
                break
        if remaining > 0:
            oid = offer_id or self.next_offer_id
            if not offer_id:
                self.next_offer_id += 1
            self.offers[oid] = Offer(oid, src.id, selling, buying, remaining, n, d, seq)
            src.offers += 1
            if src.balance < self.l.min_balance(src):
                raise OpFailed("op_low_reserve")

    def _book(self) -> list[Offer]:
        merged: dict[int, Offer | None] = dict(self.l.offers)
        merged.update(self.offers)
        return [o for o in merged.values() if o is not None]

    def _holding(self, acc: AccountState, asset: Asset) -> int:
        key = asset_key(asset)
        if key is None:
            return self.available(acc)
        if key[1] == acc.id:
            return INT64_MAX
        tl = acc.trustlines.get(key)
        return tl.balance if tl else 0

    def _move(self, acc: AccountState, asset: Asset, amount: int, *, incoming: bool) -> None:
        key = asset_key(asset)
        if key is None:
            acc.balance += amount if incoming else -amount
            return
        if key[1] == acc.id:
            return
        tl = acc.trustlines.get(key)
        if tl is None:
            raise OpFailed("op_no_trust")
        tl.balance += amount if incoming else -amount
        if tl.balance > tl.limit:
            raise OpFailed("op_line_full")

    def _ManageSellOffer(self, op: ops.ManageSellOffer, src: AccountState, seq: int) -> None:
        self._offer(
            src, op.selling, op.buying, to_stroops(op.amount), op.price.n, op.price.d, op.offer_id, seq, False
        )

    def _CreatePassiveSellOffer(self, op: ops.CreatePassiveSellOffer, src: AccountState, seq: int) -> None:
        self._offer(src, op.selling, op.buying, to_stroops(op.amount), op.price.n, op.price.d, 0, seq, True)

    def _ManageBuyOffer(self, op: ops.ManageBuyOffer, src: AccountState, seq: int) -> None:
        # buy `amount` of buying at `price` (selling per buying): sell amount*price of selling
        sell_amount = int(Decimal(to_stroops(op.amount)) * op.price.n / op.price.d)
        self._offer(src, op.selling, op.buying, sell_amount, op.price.d, op.price.n, op.offer_id, seq, False)


def _asset_json(asset: Asset) -> dict[str, str]:
    if asset.is_native():
        return {"asset_type": "native"}
    return {"asset_type": asset.type, "asset_code": asset.code, "asset_issuer": asset.issuer}


def _memo_type(memo: Any) -> str:
    name = type(memo).__name__
    return {
        "NoneMemo": "none",
        "TextMemo": "text",
        "IdMemo": "id",
        "HashMemo": "hash",
        "ReturnHashMemo": "return",
    }.get(name, "none")


def _memo_value(memo: Any) -> str | None:
    import base64

    name = type(memo).__name__
    if name == "TextMemo":
        return memo.memo_text.decode(errors="replace")
    if name == "IdMemo":
        return str(memo.memo_id)
    if name in ("HashMemo", "ReturnHashMemo"):
        return base64.b64encode(memo.memo_hash).decode()
    return None


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
