"""The one chain layer: Horizon client, transaction builder/submitter, asset and amount validation.

Used by `dlnet seed` / `dlnet model`, the participant services (through dlnet/services/chain.py) and the
training market (dlnet/market/).

Reads and submissions back off and retry, boundedly, when Horizon says "not now": HTTP 429
(`rate_limit_exceeded`, Horizon's per-IP limit, default 3,600 requests per hour) honouring `Retry-After`
or `X-Ratelimit-Reset`, and HTTP 503 (for a submission: stellar-core's TRY_AGAIN_LATER). After the last
attempt the error says what happened and what to change. A submission is only ever resent unchanged
(same envelope, same sequence number: it can apply at most once); on 504 or a client timeout the hash is
looked up first and the envelope resent only if Horizon does not know it.

Submissions can also go straight to the validators' admin `tx` endpoint (CoreTx, what `dlnet load` uses):
stellar-core answers at once (PENDING, DUPLICATE, TRY_AGAIN_LATER, ERROR), where Horizon 2.26 answers only
once the ledger is closed and ingested; the outcome is then confirmed through Horizon by hash.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from stellar_sdk import Account, Asset, Keypair, StrKey, Transaction, TransactionBuilder, TrustLineFlags
from stellar_sdk import exceptions as sx
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.memo import Memo
from stellar_sdk.operation import Operation, SetTrustLineFlags
from stellar_sdk.transaction_envelope import TransactionEnvelope

from dlnet.errors import DlnetError

# ---- amounts and assets ------------------------------------------------------------------------------
STROOPS = Decimal(10_000_000)
MAX_AMOUNT = Decimal("922337203685.4775807")  # int64 stroops
AMOUNT_RE = re.compile(r"^\d{1,12}(\.\d{1,7})?$")
ASSET_CODE_RE = re.compile(r"^[A-Za-z0-9]{1,12}$")


class InputError(DlnetError):
    """Bad input, refused before anything is touched (services answer it with HTTP 400)."""


def amount_problem(value: object) -> str | None:
    """Why `value` is not a positive Stellar amount (None when it is one)."""
    text = str(value).strip()
    if not AMOUNT_RE.match(text):
        if re.match(r"^\d+\.\d{8,}$", text):
            return "more than 7 decimals (Stellar amounts are counted in stroops, 0.0000001)"
        return "not a plain positive decimal"
    try:
        d = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return "not a decimal"
    if d <= 0:
        return "not positive"
    if d > MAX_AMOUNT:
        return f"above the largest amount {MAX_AMOUNT}"
    return None


def parse_amount(value: object, what: str = "amount") -> Decimal:
    """A positive Stellar amount (at most 7 decimals, at most int64 stroops); InputError otherwise."""
    text = str(value).strip()
    problem = amount_problem(text)
    if problem is not None:
        raise InputError(
            f"{what}: expected a positive amount with at most 7 decimals, at most {MAX_AMOUNT}, got {text[:40]!r}"
            f" ({problem}) — write it like 1000000 or 12.5"
        )
    return Decimal(text)


def amount_text(d: Decimal | int | str) -> str:
    """Horizon's form of an amount: 7 decimals."""
    return format(Decimal(d).quantize(Decimal("0.0000001")), "f")


def check_account_id(value: str, what: str = "account") -> str:
    if not StrKey.is_valid_ed25519_public_key(value):
        raise InputError(f"{what}: expected a Stellar account id (G..., 56 characters), got {value[:60]!r}")
    return value


def parse_asset(text: str, what: str = "asset") -> Asset:
    """'native' / 'XLM' or CODE:ISSUER (1-12 letters or digits, a valid account id)."""
    if text in ("native", "XLM"):
        return Asset.native()
    code, _, issuer = text.partition(":")
    if not ASSET_CODE_RE.match(code) or not StrKey.is_valid_ed25519_public_key(issuer):
        raise InputError(f"{what}: expected 'native' (XLM) or CODE:ISSUER, got {text[:80]!r}")
    return Asset(code, issuer)


def asset_text(asset: Asset) -> str:
    return "native" if asset.is_native() else f"{asset.code}:{asset.issuer}"


def asset_of(record: dict[str, Any], prefix: str = "") -> Asset:
    """The asset of a Horizon record (`asset_type`/`asset_code`/`asset_issuer`, optionally prefixed)."""
    if record.get(prefix + "asset_type") == "native":
        return Asset.native()
    return Asset(str(record[prefix + "asset_code"]), str(record[prefix + "asset_issuer"]))


def balance(account: dict[str, Any] | None, asset: Asset) -> dict[str, Any] | None:
    """The balance line of `asset` in a Horizon account record (None: no trustline)."""
    for b in (account or {}).get("balances", []):
        if asset.is_native() and b.get("asset_type") == "native":
            return dict(b)
        if not asset.is_native() and b.get("asset_code") == asset.code and b.get("asset_issuer") == asset.issuer:
            return dict(b)
    return None


# ---- Horizon -------------------------------------------------------------------------------------------
def signed_by(env: TransactionEnvelope, account: str) -> bool:
    """Whether the envelope carries a valid signature by `account`'s key (hint first, then the signature)."""
    kp = Keypair.from_public_key(account)
    h = env.hash()
    for sig in env.signatures:
        if bytes(sig.signature_hint) != kp.signature_hint():
            continue
        try:
            kp.verify(h, sig.signature)
            return True
        except sx.BadSignatureError:
            continue
    return False


# ---- regulated assets (SEP-8): authorization for one transaction ----------------------------------------
AUTHORIZED = TrustLineFlags.AUTHORIZED_FLAG
MAINTAIN = TrustLineFlags.AUTHORIZED_TO_MAINTAIN_LIABILITIES_FLAG


def sandwich(env: TransactionEnvelope, issuer: Keypair, asset: Asset, accounts: list[str],
             passphrase: str) -> TransactionEnvelope:
    """SEP-8 "revised": the same source, sequence number, memo and time bounds; each account's trustline of
    `asset` authorized first and put back to maintain-liabilities last, so the authorization covers these
    operations only (offers stay; maintain-liabilities keeps them). Signed by the issuer; the source must
    sign again (the hash changed)."""
    tx = env.transaction
    if any(isinstance(op, SetTrustLineFlags) for op in tx.operations):
        raise InputError("tx: carries a SetTrustLineFlags operation — expected the bare operations — the approval"
                         " server adds the authorization itself")
    src = issuer.public_key
    ops: list[Operation] = [SetTrustLineFlags(a, asset, clear_flags=MAINTAIN, set_flags=AUTHORIZED, source=src)
                            for a in accounts]
    ops += list(tx.operations)
    ops += [SetTrustLineFlags(a, asset, clear_flags=AUTHORIZED, set_flags=MAINTAIN, source=src) for a in accounts]
    per_op = max(100, tx.fee // max(1, len(tx.operations)))
    revised = TransactionEnvelope(Transaction(tx.source, tx.sequence, per_op * len(ops), ops, tx.memo,
                                              tx.preconditions), passphrase)
    revised.sign(issuer)
    return revised


def check_sandwich(original: TransactionEnvelope, revised: TransactionEnvelope, asset: Asset) -> None:
    """For the client before it signs: the revision only wraps our operations in authorizations of `asset`
    trustlines by its issuer, at our fee per operation, and the issuer signed it; DlnetError otherwise."""
    a, b = original.transaction, revised.transaction
    same = (a.source.account_id == b.source.account_id and a.sequence == b.sequence and a.memo == b.memo
            and a.preconditions == b.preconditions)
    ops, n = list(b.operations), len(a.operations)
    starts = [i for i in range(len(ops) - n + 1) if ops[i:i + n] == list(a.operations)]
    extra = ops[:starts[0]] + ops[starts[0] + n:] if starts else []
    wraps = bool(starts) and all(isinstance(op, SetTrustLineFlags) and op.asset == asset and op.source is not None
                                 and op.source.account_id == asset.issuer for op in extra)
    fair = b.fee <= max(100, a.fee // max(1, n)) * len(ops)
    if not (same and wraps and fair and signed_by(revised, str(asset.issuer))):
        raise DlnetError(f"the approval server's revision is not our transaction wrapped in {asset.code}"
                         f" authorizations signed by its issuer {asset.issuer} — refused to sign it — check the"
                         " compliance service's URL")


class HorizonError(DlnetError):
    """Horizon unreachable, rate-limiting past our retries, or answering something unexpected."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class SubmitFailed(DlnetError):
    """The network refused a transaction; `codes` are Horizon's result codes."""

    def __init__(self, message: str, codes: dict[str, Any]) -> None:
        super().__init__(message)
        self.codes = codes

    @property
    def tx_code(self) -> str:
        return str(self.codes.get("transaction", ""))

    @property
    def op_codes(self) -> list[str]:
        return [str(c) for c in self.codes.get("operations", [])]


def codes_text(codes: dict[str, Any]) -> str:
    ops = [c for c in codes.get("operations", []) if c != "op_success"]
    return str(codes.get("transaction")) + (f" ({', '.join(ops)})" if ops else "")


RETRYABLE = (429, 503)
# Horizon's HTTP server closes a keep-alive connection after 5 s idle (http.Server ReadTimeout 5 s, no
# IdleTimeout: services/horizon/internal/httpx/server.go). httpx keeps idle connections for 5 s too, so a
# request sent on a connection idle for about 5 s (a wait for the next ledger) met a close: ReadError.
# Drop idle connections sooner than Horizon does.
HORIZON_KEEPALIVE_SECONDS = 4.0


class Horizon:
    """Horizon's REST API over httpx; `retries` bounded attempts on 429/503, waits capped at `max_wait`."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        retries: int = 6,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.progress = progress
        self.requests = 0  # HTTP requests sent (for `seed reads less` tests and benches)
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(keepalive_expiry=HORIZON_KEEPALIVE_SECONDS),
            trust_env=False,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Horizon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport with back-off ----------------------------------------------------------------------
    def _wait_for(self, resp: httpx.Response, attempt: int) -> float:
        for header in ("Retry-After", "X-Ratelimit-Reset"):
            value = resp.headers.get(header)
            if value is not None:
                try:
                    return max(0.0, min(float(value), self.max_wait))
                except ValueError:
                    pass
        return min(self.backoff * 2**attempt, self.max_wait)

    def request(self, method: str, path: str, retry_on: tuple[int, ...] = RETRYABLE, **kw: Any) -> httpx.Response:
        """One request, retried on 429 and 503 (bounded); transport errors become HorizonError."""
        url = path if path.startswith("http") else self.url + path
        waited = 0.0
        for attempt in range(self.retries + 1):
            try:
                self.requests += 1
                resp = self.client.request(method, url, **kw)
            except httpx.TimeoutException:
                if method == "POST":
                    raise  # a submission may still apply: the caller settles it by hash
                raise HorizonError(f"Horizon {url} did not answer in time — check `dlnet status`") from None
            except httpx.TransportError as exc:
                raise HorizonError(
                    f"Horizon {url} unreachable ({type(exc).__name__}) — expected Horizon running — check"
                    " `dlnet status` and horizon_port in the inventory"
                ) from None
            if resp.status_code not in retry_on or attempt == self.retries:
                break
            wait = self._wait_for(resp, attempt)
            what = "rate limit (429)" if resp.status_code == 429 else "busy (503)"
            self.progress(f"horizon: {what} on {path.split('?')[0]}, retrying in {wait:.1f}s"
                          f" ({attempt + 1}/{self.retries})")
            self.sleep(wait)
            waited += wait
        if resp.status_code == 429:
            raise HorizonError(
                f"Horizon {self.url} kept answering HTTP 429 rate_limit_exceeded ({self.retries + 1} attempts,"
                f" {waited:.0f}s waited) — expected it to let the kit's tools through — raise Horizon's"
                " PER_HOUR_RATE_LIMIT for a private network in the inventory, or retry later (re-running is safe)",
                429,
            )
        return resp

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any] | None:
        """GET a JSON resource; None on 404; HorizonError on anything but 200."""
        resp = self.request("GET", path, params=params)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise HorizonError(
                f"Horizon {path.split('?')[0]} answered HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code
            )
        try:
            return dict(resp.json())
        except ValueError:
            raise HorizonError(f"Horizon {path} answered non-JSON: {resp.text[:120]!r}") from None

    def records(self, path: str, params: dict[str, str] | None = None, *, limit: int = 200,
                max_pages: int = 1000) -> Iterator[dict[str, Any]]:
        """Every record of a collection, following `next` pages (200 per page) until an empty page."""
        query = {"limit": str(limit), **(params or {})}
        page = self.get(path, query)
        for _ in range(max_pages):
            recs = ((page or {}).get("_embedded") or {}).get("records") or []
            yield from recs
            if len(recs) < int(query["limit"]):
                return
            query["cursor"] = str(recs[-1]["paging_token"])
            page = self.get(path, query)

    # ---- resources ------------------------------------------------------------------------------------
    def root(self) -> dict[str, Any]:
        body = self.get("/")
        if not body or "network_passphrase" not in body:
            raise HorizonError(
                f"{self.url}/ answered without network_passphrase — expected Horizon's root resource — is"
                " horizon_port right?"
            )
        return body

    def account(self, account_id: str) -> dict[str, Any] | None:
        return self.get(f"/accounts/{account_id}")

    def accounts_holding(self, asset: Asset) -> dict[str, dict[str, Any]]:
        """Every account with a trustline to `asset`, by id: one request per 200 accounts."""
        return {a["id"]: a for a in self.records("/accounts", {"asset": f"{asset.code}:{asset.issuer}"})}

    def accounts(self, account_ids: Iterable[str], *, asset: Asset | None = None,
                 workers: int = 8) -> dict[str, dict[str, Any] | None]:
        """Many accounts at once. With `asset`, the holders of that asset come in pages of 200 and only
        the others are looked up one by one; without it, one GET each (in parallel)."""
        from dlnet.observe import parallel

        ids = list(dict.fromkeys(account_ids))
        found: dict[str, dict[str, Any] | None] = {}
        if asset is not None and not asset.is_native():
            holders = self.accounts_holding(asset)
            found.update({i: holders[i] for i in ids if i in holders})
        rest = [i for i in ids if i not in found]
        for i, acc in zip(rest, parallel([lambda i=i: self.account(i) for i in rest], workers=workers),
                          strict=True):
            found[i] = acc
        return found

    def latest_ledger(self) -> dict[str, Any]:
        body = self.get("/ledgers", {"order": "desc", "limit": "1"})
        try:
            return dict((body or {})["_embedded"]["records"][0])
        except (KeyError, IndexError):
            raise HorizonError("Horizon /ledgers answered without records — is it ingesting?") from None

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            return self.get(f"/transactions/{tx_hash}")
        except HorizonError as exc:
            if exc.status == 429:
                raise
            return None

    def wait_for(self, tx_hash: str, timeout: float, every: float = 0.5) -> dict[str, Any] | None:
        """The transaction's record once Horizon has ingested its ledger; None if not there within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.transaction(tx_hash)
            if record is not None or time.monotonic() >= deadline:
                return record
            self.sleep(min(every, max(0.0, deadline - time.monotonic())))

    def ledger_transactions(self, sequence: int) -> list[dict[str, Any]]:
        return list(self.records(f"/ledgers/{sequence}/transactions", {"include_failed": "false"}))

    def offers(self, seller: str) -> list[dict[str, Any]]:
        return list(self.records(f"/accounts/{seller}/offers"))

    # ---- submission -----------------------------------------------------------------------------------
    def submit(
        self,
        envelope_xdr: str,
        tx_hash: str,
        progress: Callable[[str], None] | None = None,
        *,
        settle: bool = True,
    ) -> dict[str, Any]:
        """Submit until Horizon gives a verdict; the applied record, or SubmitFailed / HorizonError.

        `settle=False`: on 504 or a timeout (outcome unknown) raise HorizonError(status 504) at once, for
        callers that record the envelope and settle it later by hash (the bridge).
        """
        say = progress or self.progress
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                known = self.transaction(tx_hash)
                if known is not None:
                    return self._verdict(known)
            try:
                resp = self.request("POST", "/transactions", retry_on=(429,), data={"tx": envelope_xdr})
            except httpx.TimeoutException:
                if not settle:
                    raise HorizonError(f"no answer for transaction {tx_hash[:12]}… (timeout)", 504) from None
                last = "client timeout"
                say(f"horizon: no answer for {tx_hash[:12]}… (timeout), checking and resending")
                self.sleep(min(self.backoff * 2**attempt, self.max_wait))
                continue
            if resp.status_code == 200:
                return dict(resp.json())
            if resp.status_code == 504 and not settle:
                raise HorizonError(f"Horizon timed out waiting for transaction {tx_hash[:12]}…", 504)
            if resp.status_code in (503, 504):
                last = f"HTTP {resp.status_code}"
                say(f"horizon: {'TRY_AGAIN_LATER' if resp.status_code == 503 else 'timeout'} for"
                    f" {tx_hash[:12]}…, retrying ({attempt + 1}/{self.retries})")
                self.sleep(min(self.backoff * 2**attempt, self.max_wait))
                continue
            try:
                body = resp.json()
            except ValueError:
                body = {}
            codes = (body.get("extras") or {}).get("result_codes")
            if codes:
                raise SubmitFailed(f"transaction {tx_hash[:12]}… failed: {codes_text(codes)}", codes)
            raise HorizonError(
                f"Horizon refused the transaction: HTTP {resp.status_code} {body.get('title', '')}"
                f" {str(body.get('detail', ''))[:200]}",
                resp.status_code,
            )
        raise HorizonError(
            f"transaction {tx_hash[:12]}… got no verdict after {self.retries + 1} attempts ({last}) —"
            " the network may be stalled: check `dlnet status`; re-running is safe",
            503,
        )

    @staticmethod
    def _verdict(record: dict[str, Any]) -> dict[str, Any]:
        if record.get("successful"):
            return record
        codes = record.get("result_codes") or {"transaction": "tx_failed"}
        raise SubmitFailed(f"transaction {str(record.get('hash', ''))[:12]}… failed: {codes_text(codes)}", codes)


# ---- stellar-core's `tx` endpoint -----------------------------------------------------------------------
CORE_STATUSES = ("PENDING", "DUPLICATE", "TRY_AGAIN_LATER", "ERROR")
QUEUE_FULL = ("TRY_AGAIN_LATER", "txINSUFFICIENT_FEE")  # refused for room in the queue, not for what it is


def result_code(error_xdr: str) -> str:
    """The transaction result code (txBAD_SEQ, txINSUFFICIENT_FEE...) of a `tx` ERROR's `error` field."""
    try:
        return str(stellar_xdr.TransactionResult.from_xdr(error_xdr).result.code.name)
    except Exception:
        return "undecodable"


def horizon_code(core_code: str) -> str:
    """Horizon's spelling of a result code: txBAD_SEQ -> tx_bad_seq."""
    return "tx_" + core_code[2:].lower() if core_code.startswith("tx") else core_code.lower()


def core_verdict(body: Any) -> tuple[str, str | None]:
    """(status, result code) of stellar-core's answer to `tx?blob=`: PENDING and DUPLICATE are queued,
    TRY_AGAIN_LATER and ERROR txINSUFFICIENT_FEE are "no room now", any other ERROR is a refusal."""
    if not isinstance(body, dict) or "exception" in body:
        return "ERROR", "exception"
    status = str(body.get("status", "ERROR"))
    if status not in CORE_STATUSES:
        return "ERROR", f"status {status[:40]}"
    return status, result_code(body["error"]) if status == "ERROR" and "error" in body else None


class CoreTx:
    """Hands envelopes to the validators' admin `tx` endpoint, to every validator: each queue gets the
    transaction at once, whichever validator proposes the next ledger (19.x floods transactions at about a
    ledger's worth per ledger, so a burst sent to one node reaches the others over several ledgers), and no
    node holds a transaction the others refused for room. The same envelope can apply only once."""

    def __init__(self, urls: list[str], *, timeout: float = 10.0, client: httpx.Client | None = None) -> None:
        if not urls:
            raise DlnetError("no validator admin endpoint to submit to — expected a host in group stellar_core")
        self.urls = [u.rstrip("/") for u in urls]
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout), trust_env=False)
        self._num, self._at = 0, 0.0  # the last ledger number read, and when (monotonic)
        self._lock = threading.Lock()
        self._polling = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def send(self, blob: str) -> tuple[str, str | None]:
        """Stellar-core's (status, result code): queued (PENDING, DUPLICATE) if any validator queued it, else
        the first refusal; DlnetError if no validator answers."""
        verdicts, problems = [], []
        for url in self.urls:
            try:
                resp = self.client.get(f"{url}/tx", params={"blob": blob})
                verdicts.append(core_verdict(resp.json()))
            except httpx.HTTPError as exc:
                problems.append(f"{url}: {type(exc).__name__}")
            except ValueError:
                problems.append(f"{url}: HTTP {resp.status_code} {resp.text[:60]!r}")
        for wanted in ("PENDING", "DUPLICATE"):
            if any(status == wanted for status, _ in verdicts):
                return wanted, None
        if verdicts:
            return verdicts[0]
        raise DlnetError(
            f"no validator's admin endpoint took the transaction ({'; '.join(problems)}) — expected stellar-core"
            " answering JSON — check `dlnet status`; re-running is safe"
        )

    def ledger(self, max_age: float = 0.05) -> int:
        """The validators' current ledger number (0 if none tells). Many threads may ask: one reads `info`,
        at most every `max_age` seconds, the others get the value it read."""
        with self._lock:
            if time.monotonic() - self._at <= max_age or not self._polling.acquire(blocking=False):
                return self._num
        try:
            num = 0
            for url in self.urls:
                try:
                    num = int(self.client.get(f"{url}/info").json()["info"]["ledger"]["num"])
                    break
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    continue
            with self._lock:
                self._num, self._at = max(self._num, num), time.monotonic()
                return self._num
        finally:
            self._polling.release()

    def wait_ledger(self, after: int, timeout: float) -> bool:
        """Block until a ledger after `after` has closed (False on timeout, or if no validator tells)."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.ledger()
            if now > after or not now:
                return bool(now)
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


# ---- transactions ----------------------------------------------------------------------------------
class Transactor:
    """Builds, signs and submits transactions for one network: through Horizon, or (`core`) straight to the
    validators and confirmed through Horizon."""

    QUEUE_WAITS = (0.25, 0.5, 1.0, 2.0)  # then 2 s: room in stellar-core's queue comes with the next ledger

    def __init__(
        self,
        horizon: Horizon,
        passphrase: str,
        *,
        base_fee: int = 100,
        timeout: int = 300,
        core: CoreTx | None = None,
        queue_wait: float = 120.0,
        confirm_timeout: float = 60.0,
    ) -> None:
        self.h = horizon
        self.passphrase = passphrase
        self.base_fee = base_fee
        self.timeout = timeout
        self.core = core
        self.queue_wait = queue_wait  # longest wait for room in the validators' queue, per transaction
        self.confirm_timeout = confirm_timeout  # longest wait for Horizon to show a queued transaction

    def check_network(self) -> dict[str, Any]:
        root = self.h.root()
        if root.get("network_passphrase") != self.passphrase:
            raise DlnetError(
                f"wrong network: Horizon {self.h.url} serves {root.get('network_passphrase')!r}, expected"
                f" {self.passphrase!r} — fix the network passphrase or the Horizon URL"
            )
        return root

    def sequence(self, account_id: str) -> int:
        acc = self.h.account(account_id)
        if acc is None:
            raise DlnetError(f"source account {account_id} does not exist on the network — fund it first")
        return int(acc["sequence"])

    def build(
        self,
        source: Keypair,
        ops: Iterable[Operation] | Callable[[TransactionBuilder], Any],
        *,
        memo: Memo | None = None,
        signers: Iterable[Keypair] = (),
        sequence: int | None = None,
        valid_for: int | None = None,
    ) -> TransactionEnvelope:
        seq = self.sequence(source.public_key) if sequence is None else sequence
        builder = TransactionBuilder(Account(source.public_key, seq), self.passphrase, base_fee=self.base_fee)
        builder.set_timeout(self.timeout if valid_for is None else valid_for)
        if memo is not None:
            builder.add_memo(memo)
        if callable(ops):
            ops(builder)
        else:
            for op in ops:
                builder.append_operation(op)
        tx = builder.build()
        for kp in {source.public_key: source, **{k.public_key: k for k in signers}}.values():
            tx.sign(kp)
        return tx

    def send(
        self,
        envelope: TransactionEnvelope,
        progress: Callable[[str], None] | None = None,
        rebuild: Callable[[int], TransactionEnvelope] | None = None,
    ) -> TransactionEnvelope:
        """Queue the envelope on the validators (needs `core`) without waiting for its ledger; returns the
        envelope queued. A full queue is waited out (bounded by `queue_wait`): stellar-core 19 bans what it
        refused for room (TRY_AGAIN_LATER for the same hash during the next ledgers), so after the next ledger
        closes the transaction is sent again as `rebuild(attempt)` makes it (same operations and sequence
        number, another validity window: another hash; it can still apply only once). SubmitFailed (Horizon's
        codes) when stellar-core refuses it for what it is."""
        assert self.core is not None, "send() needs the validators' tx endpoint"
        deadline = time.monotonic() + self.queue_wait
        for attempt in itertools.count():
            status, code = self.core.send(envelope.to_xdr())
            if status in ("PENDING", "DUPLICATE"):
                return envelope
            if status not in QUEUE_FULL and code not in QUEUE_FULL:
                codes = {"transaction": horizon_code(code or "tx_failed")}
                raise SubmitFailed(f"transaction {envelope.hash_hex()[:12]}… refused: {codes_text(codes)}", codes)
            if time.monotonic() >= deadline:
                raise HorizonError(
                    f"the validators' transaction queue stayed full for {self.queue_wait:.0f}s ({status} {code or ''})"
                    " — expected ledgers to make room — check `dlnet status` (are ledgers closing?); re-running"
                    " is safe",
                    503,
                )
            if attempt == 0 and progress:
                progress(f"core: the transaction queue is full ({code or status}), {envelope.hash_hex()[:12]}…"
                         " waits for room")
            # Room comes with the next ledger: signed again now, sent as soon as it closes (so that the ledger
            # after it is full too).
            seen = self.core.ledger()
            if rebuild is not None:
                envelope = rebuild(attempt + 1)
            if not (seen and self.core.wait_ledger(seen, min(30.0, max(0.0, deadline - time.monotonic())))):
                self.h.sleep(self.QUEUE_WAITS[min(attempt, len(self.QUEUE_WAITS) - 1)])

    def confirm(self, tx_hash: str, timeout: float | None = None) -> dict[str, Any]:
        """The applied record of a queued transaction, through Horizon; SubmitFailed if it failed, HorizonError
        (status 504) if Horizon does not show it in time (it may have been dropped from the queue)."""
        record = self.h.wait_for(tx_hash, self.confirm_timeout if timeout is None else timeout)
        if record is None:
            raise HorizonError(f"transaction {tx_hash[:12]}… not in a ledger Horizon ingested", 504)
        return self.h._verdict(record)

    def submit(
        self,
        envelope: TransactionEnvelope,
        progress: Callable[[str], None] | None = None,
        rebuild: Callable[[int], TransactionEnvelope] | None = None,
    ) -> dict[str, Any]:
        """Submit and wait for the verdict: the applied record, or SubmitFailed / HorizonError."""
        if self.core is None:
            return self.h.submit(envelope.to_xdr(), envelope.hash_hex(), progress)
        return self.confirm(self.send(envelope, progress, rebuild).hash_hex())

    def run(
        self,
        source: Keypair,
        ops: Iterable[Operation] | Callable[[TransactionBuilder], Any],
        *,
        memo: Memo | None = None,
        signers: Iterable[Keypair] = (),
    ) -> dict[str, Any]:
        """Build from the account's current sequence, sign, submit; rebuild once on tx_bad_seq."""
        ops = list(ops) if not callable(ops) else ops
        signers = list(signers)
        for attempt in range(2):
            env = self.build(source, ops, memo=memo, signers=signers)
            try:
                return self.submit(env)
            except SubmitFailed as exc:
                if exc.tx_code != "tx_bad_seq" or attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
