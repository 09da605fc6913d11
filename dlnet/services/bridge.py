"""Bridge: payment automation for the accounts whose keys it holds.

API (bearer token): `POST /payments` and `POST /path-payments` with an `Idempotency-Key` header — a retried
request never pays twice: the first call stores one signed envelope before submitting it, every retry
returns the stored outcome or re-submits *that same envelope* (same sequence number: it can apply at most
once) and checks Horizon for its hash. `GET /payments/{key}`, `GET /accounts`, `POST/GET/DELETE /webhooks`.

Follower: polls Horizon's payment stream of each held account from a cursor stored in PostgreSQL in the
same transaction as the payments it read: a restart misses nothing and replays nothing.
Dispatcher: POSTs each incoming payment to every webhook, signed (`X-Dlnet-Signature: t=<unix>,v1=<hex
HMAC-SHA256 of "<t>.<body>">`), retried with exponential backoff; each payload carries the payment's
Horizon operation id (`X-Dlnet-Id`), the key receivers de-duplicate on.
"""

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any, Literal

import httpx
import psycopg
from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, field_validator
from stellar_sdk import Asset, Keypair, StrKey
from stellar_sdk.memo import HashMemo, IdMemo, Memo, TextMemo

from dlnet import chain as chain_layer
from dlnet.services import db
from dlnet.services.auth import AdminToken
from dlnet.services.chain import Chain, ChainError
from dlnet.services.settings import BridgeSettings, keypair_from_file, read_secret
from dlnet.services.web import ApiError, build_app, db_health, log, setup_logging


def parse_asset(text: str, what: str = "asset") -> Asset:
    try:
        return chain_layer.parse_asset(text, what)
    except chain_layer.InputError as exc:
        raise ApiError(400, str(exc)) from None


def parse_amount(text: str, what: str = "amount") -> Decimal:
    try:
        return chain_layer.parse_amount(text, what)
    except chain_layer.InputError as exc:
        raise ApiError(400, str(exc)) from None


class MemoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "id", "hash"]
    value: str = Field(max_length=64)

    def build(self) -> Memo:
        try:
            if self.type == "text":
                return TextMemo(self.value)
            if self.type == "id":
                return IdMemo(int(self.value))
            return HashMemo(bytes.fromhex(self.value))
        except Exception:  # the SDK raises assorted errors for out-of-range memos
            raise ApiError(400, f"memo: not a valid {self.type} memo: {self.value[:64]!r}") from None


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=31, description="name of a held account")
    destination: str = Field(min_length=1, max_length=56, description="Stellar account id (G...)")
    asset: str = Field(min_length=1, max_length=70, description="'native' or CODE:ISSUER")
    amount: str = Field(min_length=1, max_length=40)
    memo: MemoIn | None = None

    @field_validator("destination")
    @classmethod
    def _dest(cls, v: str) -> str:
        if not StrKey.is_valid_ed25519_public_key(v):
            raise ValueError(f"expected a Stellar account id (G..., 56 characters), got {v!r}")
        return v


class PathPaymentIn(PaymentIn):
    """Strict receive: `destination` gets exactly `amount` of `asset`; at most `send_max` of `send_asset` leaves."""
    send_asset: str = Field(min_length=1, max_length=70)
    send_max: str = Field(min_length=1, max_length=40)
    path: list[Annotated[str, Field(max_length=70)]] = Field(default=[], max_length=5)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://[^\s]+$")


def sign_payload(secret: bytes, body: bytes, ts: int) -> str:
    mac = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify_signature(secret: bytes, body: bytes, header: str, tolerance: int = 300, now: float | None = None) -> bool:
    """For webhook receivers: check `X-Dlnet-Signature` (constant time, with a replay window)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now if now is not None else time.time()) - ts) > tolerance:
        return False
    return hmac.compare_digest(sign_payload(secret, body, ts), header)


class Bridge:
    """The bridge's state and background workers; `create_app` wires it to HTTP."""

    def __init__(self, settings: BridgeSettings, logger: logging.Logger, registry: Any = None) -> None:
        self.s, self.logger = settings, logger
        self.keys: dict[str, Keypair] = {a.name: keypair_from_file(a.seed_file, f"seed of bridge account {a.name}")
                                         for a in settings.accounts}
        self.by_id = {k.public_key: n for n, k in self.keys.items()}
        self.webhook_secret = read_secret(settings.webhook_secret_file, "webhook secret").encode()
        self.chain = Chain(settings.horizon_url, settings.network_passphrase, settings.base_fee, settings.tx_timeout)
        self.http = httpx.Client(timeout=settings.webhook_timeout)
        self.pool: Any = None
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self._locks = {n: threading.Lock() for n in self.keys}
        kw: dict[str, Any] = {"registry": registry}
        self.m_payments = Counter("dlnet_bridge_payments", "Outgoing payment requests by outcome", ["outcome"], **kw)
        self.m_incoming = Counter("dlnet_bridge_incoming_payments", "Incoming payments recorded", **kw)
        self.m_deliveries = Counter("dlnet_bridge_webhook_deliveries", "Webhook attempts by result", ["result"], **kw)
        self.m_pending = Gauge("dlnet_bridge_webhook_pending", "Deliveries waiting", **kw)

    # ------------------------------------------------------------ outgoing
    def pay(self, key: str, kind: str, body: PaymentIn) -> tuple[int, dict[str, Any]]:
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise ApiError(400, "Idempotency-Key: expected 1-255 printable characters")
        kp = self.keys.get(body.source)
        if kp is None:
            raise ApiError(400, f"source: unknown account {body.source!r} — held accounts: {', '.join(self.keys)}")
        # Validate everything before the key is taken, so a bad request never burns it.
        try:
            ops = self._ops(kind, body, kp)
        except ChainError as exc:
            raise ApiError(502, f"cannot check the request against Horizon: {exc}") from None
        memo = body.memo.build() if body.memo else None
        digest = hashlib.sha256(json.dumps([kind, body.model_dump()], sort_keys=True).encode()).hexdigest()
        with self.pool.connection() as c:
            row = c.execute("INSERT INTO payment_requests (idempotency_key, request_sha256, kind, account_name, status)"
                            " VALUES (%s, %s, %s, %s, 'building') ON CONFLICT DO NOTHING RETURNING 1",
                            (key, digest, kind, body.source)).fetchone()
            if row is None:
                return self._replay(c, key, digest)
        with self._locks[body.source]:
            try:
                env = self.chain.build(kp, ops, memo)
            except Exception as exc:  # nothing signed or sent, whatever failed: never leave the key stuck
                with self.pool.connection() as c:
                    c.execute("DELETE FROM payment_requests WHERE idempotency_key = %s AND status = 'building'",
                              (key,))
                if not isinstance(exc, ChainError):
                    raise
                raise ApiError(exc.status if exc.status < 500 else 502, f"payment not sent: {exc}") from None
            with self.pool.connection() as c:
                c.execute("UPDATE payment_requests SET status = 'submitted', tx_hash = %s, envelope_xdr = %s,"
                          " updated_at = now() WHERE idempotency_key = %s", (env.hash_hex(), env.to_xdr(), key))
            return self._submit(key, env.to_xdr(), env.hash_hex(), first=True)

    def _ops(self, kind: str, body: PaymentIn, kp: Keypair) -> Any:
        asset = parse_asset(body.asset)
        amount = parse_amount(body.amount)
        assets = [asset]
        if isinstance(body, PathPaymentIn):
            send_asset = parse_asset(body.send_asset, "send_asset")
            send_max = parse_amount(body.send_max, "send_max")
            path = [parse_asset(p, "path") for p in body.path]
            assets += [send_asset, *path]
        if body.destination == kp.public_key:
            raise ApiError(400, "destination: the same as the source account")
        for a in assets:
            if not a.is_native() and self.chain.account(a.issuer) is None:
                raise ApiError(400, f"unknown asset {a.code}:{a.issuer}: "
                                    "its issuer account does not exist on this network")
        if isinstance(body, PathPaymentIn):
            return lambda b: b.append_path_payment_strict_receive_op(
                body.destination, send_asset, str(send_max), asset, str(amount), path)
        return lambda b: b.append_payment_op(body.destination, asset, str(amount))

    def _replay(self, c: psycopg.Connection[Any], key: str, digest: str) -> tuple[int, dict[str, Any]]:
        row = c.execute("SELECT request_sha256, status, tx_hash, envelope_xdr, http_status, response"
                        " FROM payment_requests WHERE idempotency_key = %s", (key,)).fetchone()
        if row is None:  # deleted meanwhile: cannot happen (no deletes), but answer sanely
            raise ApiError(409, "Idempotency-Key in flux, retry")
        if row[0] != digest:
            raise ApiError(422, "Idempotency-Key already used with a different request — use a new key")
        status = row[1]
        if status in ("succeeded", "failed"):
            self.m_payments.labels("replayed").inc()
            return int(row[4]), dict(row[5]) | {"replayed": True}
        if status == "building":
            raise ApiError(409, "a request with this Idempotency-Key is in progress — retry shortly",
                           headers={"Retry-After": "1"})
        name = c.execute("SELECT account_name FROM payment_requests WHERE idempotency_key = %s", (key,)).fetchone()[0]
        with self._locks.get(name, threading.Lock()):
            return self._submit(key, row[3], row[2])

    def _submit(self, key: str, xdr: str, tx_hash: str, first: bool = False) -> tuple[int, dict[str, Any]]:
        """Submit (or re-submit) the one envelope of this key; settle from Horizon when ambiguous."""
        try:
            found = None if first else self.chain.transaction(tx_hash)
            if found is not None:
                return self._settle(key, tx_hash, found)
            res = self.chain.submit(xdr)
            return self._settle(key, tx_hash, res)
        except ChainError as exc:
            if exc.status == 409:  # refused by the network: final, unless it already applied (tx_bad_seq)
                try:
                    found = self.chain.transaction(tx_hash)
                except ChainError:
                    found = None
                if found is not None:
                    return self._settle(key, tx_hash, found)
                return self._finish(key, "failed", tx_hash, 409, {"status": "failed", "tx_hash": tx_hash,
                                                                   "error": str(exc), "result_codes": exc.codes})
            # Timeout or Horizon down: the transaction may still apply. Keep it 'submitted'; a retry settles it.
            self.m_payments.labels("pending").inc()
            log(self.logger, logging.WARNING, "submission outcome unknown", key_sha=_short(key), tx_hash=tx_hash)
            return 202, {"status": "submitted", "tx_hash": tx_hash,
                         "detail": f"{exc}; retry with the same Idempotency-Key to settle"}

    def _settle(self, key: str, tx_hash: str, rec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if rec.get("successful", True):
            return self._finish(key, "succeeded", tx_hash, 200, {"status": "succeeded", "tx_hash": tx_hash,
                                                                 "ledger": rec.get("ledger")})
        return self._finish(key, "failed", tx_hash, 409, {"status": "failed", "tx_hash": tx_hash,
                                                          "result_codes": rec.get("result_codes")})

    def _finish(self, key: str, status: str, tx_hash: str | None, code: int,
                body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.pool.connection() as c:
            c.execute("UPDATE payment_requests SET status = %s, tx_hash = COALESCE(%s, tx_hash), http_status = %s,"
                      " response = %s, updated_at = now() WHERE idempotency_key = %s",
                      (status, tx_hash, code, json.dumps(body), key))
        self.m_payments.labels(status).inc()
        log(self.logger, logging.INFO, "payment " + status, key_sha=_short(key), tx_hash=tx_hash)
        return code, body

    # ------------------------------------------------------------ incoming
    def follow_once(self) -> int:
        """Read every held account's new payments; return how many new ones were recorded."""
        new = 0
        for account in self.by_id:
            with self.pool.connection() as c:
                row = c.execute("SELECT cursor FROM cursors WHERE account_id = %s", (account,)).fetchone()
            cursor = row[0] if row else ("0" if self.s.follow_from == "start" else self._latest(account))
            if cursor is None:
                continue
            try:
                r = self.http.get(f"{self.s.horizon_url.rstrip('/')}/accounts/{account}/payments",
                                  params={"cursor": cursor, "order": "asc", "limit": "200"})
            except httpx.HTTPError as exc:
                log(self.logger, logging.WARNING, "horizon unreachable", error=type(exc).__name__)
                continue
            if r.status_code == 404:
                continue  # account not created yet
            if r.status_code != 200:
                log(self.logger, logging.WARNING, "horizon payments failed", status=r.status_code)
                continue
            records = r.json().get("_embedded", {}).get("records", [])
            if not records:
                continue
            with self.pool.connection() as c, c.transaction():
                hooks = [h[0] for h in c.execute("SELECT id FROM webhooks WHERE active")]
                for rec in records:
                    if _receiver(rec) != account:
                        continue
                    payload = _payload(rec, account)
                    ins = c.execute("INSERT INTO incoming (id, account_id, payload) VALUES (%s, %s, %s)"
                                    " ON CONFLICT DO NOTHING RETURNING id", (rec["id"], account, json.dumps(payload)))
                    if ins.fetchone() is None:
                        continue
                    new += 1
                    for h in hooks:
                        c.execute("INSERT INTO deliveries (payment_id, webhook_id) VALUES (%s, %s)", (rec["id"], h))
                c.execute("INSERT INTO cursors (account_id, cursor) VALUES (%s, %s) ON CONFLICT (account_id)"
                          " DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()",
                          (account, records[-1]["paging_token"]))
        if new:
            self.m_incoming.inc(new)
        return new

    def _latest(self, account: str) -> str | None:
        """Paging token of the account's newest payment ("0" if none), stored as its first cursor."""
        try:
            r = self.http.get(f"{self.s.horizon_url.rstrip('/')}/accounts/{account}/payments",
                              params={"order": "desc", "limit": "1"})
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        recs = r.json().get("_embedded", {}).get("records", [])
        token = recs[0]["paging_token"] if recs else "0"
        with self.pool.connection() as c:
            c.execute("INSERT INTO cursors (account_id, cursor) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                      (account, token))
            return str(c.execute("SELECT cursor FROM cursors WHERE account_id = %s", (account,)).fetchone()[0])

    def dispatch_once(self, batch: int = 20) -> int:
        """Attempt up to `batch` due deliveries, each in its own transaction (so a crash repeats at most the
        one in flight); return how many were attempted."""
        done = 0
        for _ in range(batch):
            if not self._deliver_one():
                break
            done += 1
        with self.pool.connection() as c:
            self.m_pending.set(c.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()[0])
        return done

    def _deliver_one(self) -> bool:
        with self.pool.connection() as c, c.transaction():
            row = c.execute(
                "SELECT d.payment_id, d.webhook_id, d.attempts, w.url, i.payload FROM deliveries d"
                " JOIN webhooks w ON w.id = d.webhook_id JOIN incoming i ON i.id = d.payment_id"
                " WHERE d.status = 'pending' AND d.next_attempt_at <= now()"
                " ORDER BY d.next_attempt_at, d.payment_id LIMIT 1 FOR UPDATE OF d SKIP LOCKED").fetchone()
            if row is None:
                return False
            pid, hid, attempts, url, payload = row
            body = json.dumps(payload, sort_keys=True).encode()
            headers = {"content-type": "application/json", "X-Dlnet-Id": pid,
                       "X-Dlnet-Signature": sign_payload(self.webhook_secret, body, int(time.time()))}
            error = None
            try:
                resp = self.http.post(url, content=body, headers=headers)
                if not 200 <= resp.status_code < 300:
                    error = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            if error is None:
                c.execute("UPDATE deliveries SET status = 'delivered', attempts = attempts + 1,"
                          " delivered_at = now(), last_error = NULL WHERE payment_id = %s AND webhook_id = %s",
                          (pid, hid))
                self.m_deliveries.labels("delivered").inc()
                return True
            attempts += 1
            final = attempts >= self.s.webhook_max_attempts
            delay = min(self.s.webhook_backoff_base * 2 ** (attempts - 1), 3600.0)
            c.execute("UPDATE deliveries SET status = %s, attempts = %s, last_error = %s,"
                      " next_attempt_at = now() + make_interval(secs => %s)"
                      " WHERE payment_id = %s AND webhook_id = %s",
                      ("failed" if final else "pending", attempts, error, delay, pid, hid))
            self.m_deliveries.labels("failed" if final else "retry").inc()
            log(self.logger, logging.WARNING, "webhook delivery failed", webhook=hid, attempts=attempts,
                error=error, final=final)
            return True

    def _loop(self, step: Any, name: str) -> None:
        while not self.stop.is_set():
            try:
                busy = step()
            except Exception:  # a worker must survive a bad round (database restart, Horizon hiccup)
                self.logger.error(f"{name} round failed", exc_info=True, extra={"fields": {}})
                busy = 0
            if not busy:
                self.stop.wait(self.s.poll_interval)

    def start_workers(self) -> None:
        if not self.s.follow:
            return
        for name, step in (("follower", self.follow_once), ("dispatcher", self.dispatch_once)):
            t = threading.Thread(target=self._loop, args=(step, name), name=f"bridge-{name}", daemon=True)
            t.start()
            self.threads.append(t)

    def stop_workers(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def _short(key: str) -> str:
    # Idempotency keys may embed business data: logs carry a digest only.
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _receiver(rec: dict[str, Any]) -> str | None:
    if rec.get("type") == "create_account":
        return rec.get("account")
    return rec.get("to")


def _payload(rec: dict[str, Any], account: str) -> dict[str, Any]:
    keys = ("id", "type", "from", "to", "amount", "asset_type", "asset_code", "asset_issuer", "transaction_hash",
            "created_at", "source_account", "funder", "account", "starting_balance")
    return {"event": "payment.received", "account": account} | {k: rec[k] for k in keys if k in rec}


def create_app(settings: BridgeSettings, *, api_token: str | None = None, log_stream: Any = None) -> FastAPI:
    logger = setup_logging("bridge", settings.log_level, log_stream)
    token = AdminToken(api_token if api_token is not None else read_secret(settings.admin_token_file, "API token"))
    holder: dict[str, Bridge] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        b = holder["bridge"]
        b.chain.check_network(logger)
        b.pool = db.migrate_and_open(settings.database, "bridge", logger)
        b.start_workers()
        try:
            yield
        finally:
            b.stop_workers()
            b.pool.close()

    app, registry = build_app(
        service="bridge", title="dlnet bridge (payments, idempotency, payment callbacks)", description=__doc__ or "",
        max_body_bytes=settings.max_body_bytes, rate_limit_per_minute=settings.rate_limit_per_minute,
        public_prefixes=(), logger=logger, health=lambda: db_health(holder["bridge"].pool), lifespan=lifespan)
    bridge = holder["bridge"] = Bridge(settings, logger, registry)
    app.state.bridge = bridge

    def auth(request: Request) -> None:
        token.check(request)

    def conn() -> Iterator[psycopg.Connection[Any]]:
        with bridge.pool.connection() as c:
            yield c

    Conn = Annotated[psycopg.Connection[Any], Depends(conn)]
    Key = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255,
                                description="Unique per intended payment; retries reuse it")]
    errs = {401: {"description": "No token"}, 403: {"description": "Bad token"},
            409: {"description": "Refused by the network, or in progress"},
            422: {"description": "Idempotency key reused for a different request"},
            502: {"description": "Horizon failed"}}

    @app.post("/payments", tags=["payments"], dependencies=[Depends(auth)], responses=errs | {
        202: {"description": "Submitted, outcome unknown yet: retry with the same key"}})
    def payment(body: PaymentIn, idempotency_key: Key) -> JSONResponse:
        code, out = bridge.pay(idempotency_key, "payment", body)
        return JSONResponse(out, status_code=code)

    @app.post("/path-payments", tags=["payments"], dependencies=[Depends(auth)], responses=errs | {
        202: {"description": "Submitted, outcome unknown yet: retry with the same key"}})
    def path_payment(body: PathPaymentIn, idempotency_key: Key) -> JSONResponse:
        code, out = bridge.pay(idempotency_key, "path_payment", body)
        return JSONResponse(out, status_code=code)

    @app.get("/payments/{key}", tags=["payments"], dependencies=[Depends(auth)],
             responses={404: {"description": "Unknown key"}} | errs)
    def payment_status(c: Conn, key: str) -> dict[str, Any]:
        row = c.execute("SELECT kind, account_name, status, tx_hash, response FROM payment_requests"
                        " WHERE idempotency_key = %s", (key,)).fetchone()
        if row is None:
            raise ApiError(404, "no payment request with this Idempotency-Key")
        return {"kind": row[0], "source": row[1], "status": row[2], "tx_hash": row[3], "response": row[4]}

    @app.get("/accounts", tags=["accounts"], dependencies=[Depends(auth)], responses=errs)
    def accounts() -> list[dict[str, str]]:
        return [{"name": n, "account_id": k.public_key} for n, k in bridge.keys.items()]

    @app.post("/webhooks", tags=["webhooks"], dependencies=[Depends(auth)], status_code=201, responses=errs)
    def add_webhook(c: Conn, body: WebhookIn) -> dict[str, Any]:
        wid = c.execute("INSERT INTO webhooks (url) VALUES (%s) RETURNING id", (body.url,)).fetchone()[0]
        log(logger, logging.INFO, "webhook registered", webhook=wid)
        return {"id": wid, "url": body.url, "active": True}

    @app.get("/webhooks", tags=["webhooks"], dependencies=[Depends(auth)], responses=errs)
    def list_webhooks(c: Conn) -> list[dict[str, Any]]:
        return [{"id": r[0], "url": r[1], "active": r[2]}
                for r in c.execute("SELECT id, url, active FROM webhooks ORDER BY id")]

    @app.delete("/webhooks/{webhook_id}", tags=["webhooks"], dependencies=[Depends(auth)], status_code=204,
                responses=errs | {404: {"description": "Unknown webhook"}})
    def deactivate_webhook(c: Conn, webhook_id: Annotated[int, Path(ge=1, le=2**62)]) -> None:
        if c.execute("UPDATE webhooks SET active = false WHERE id = %s", (webhook_id,)).rowcount == 0:
            raise ApiError(404, f"no webhook {webhook_id}")

    return app
