"""Horizon double over the ledger double: the REST endpoints the kit and its services use.

`POST /transactions` (synchronous: answers once the ledger holding it closed, like Horizon),
`GET /`, `/accounts/{id}`, `/accounts/{id}/{payments,transactions,offers}`, `/transactions[/{hash}]`,
`/ledgers[/{seq}[/transactions]]`, `/payments` (also as Server-Sent Events with `Accept: text/event-stream`),
`/offers` (filters seller, selling, buying), `/fee_stats`. Errors are Horizon problem documents (`type`,
`title`, `status`, `detail`,
`extras.result_codes`).

`result_xdr` is a real TransactionResult (tests/doubles/results.py) except for transactions with offer
operations (empty: use `result_codes` or /offers).

Faults for tests: `inject("try_again_later")` -> 503 without queueing, `inject("timeout")` -> the
transaction is queued (and will apply) but the reply is 504, as when Horizon gives up waiting;
`ingest_lag` makes the root resource report history_latest_ledger behind core_latest_ledger.
`rate_limit(n, retry_after=..., reset=...)`: the next n requests (any method) get Horizon's HTTP 429
`rate_limit_exceeded` problem with its X-Ratelimit-* headers (and Retry-After when given), as Horizon's
per-IP limiter answers; `requests` counts every request received (GET and POST).
`unavailable(n)`: the next n requests answer HTTP 503.
`/accounts?asset=CODE:ISSUER` and `/accounts?signer=G...` list accounts as Horizon does (ordered by id,
paging_token = account id).

Ledgers close on a background clock every `close_interval` seconds when transactions are queued
(`idle_close=True`: always), at most `max_tx_set_size` operations each, so counting ledgers is meaningful.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.doubles.ledger import (
    AUTH_CLAWBACK,
    AUTH_IMMUTABLE,
    AUTH_REQUIRED,
    AUTH_REVOCABLE,
    INT64_MAX,
    TL_AUTHORIZED,
    TL_CLAWBACK,
    TL_MAINTAIN,
    AccountState,
    Ledger,
    Offer,
    TxRejected,
    _asset_json,
    amount_str,
)

PROBLEM = "https://stellar.org/horizon-errors/"


class HorizonDouble:
    def __init__(
        self,
        passphrase: str = "dlnet test network ; 2026",
        *,
        close_interval: float = 0.01,
        idle_close: bool = False,
        submit_timeout: float = 10.0,
        **ledger_kwargs: Any,
    ) -> None:
        self.ledger = Ledger(passphrase, **ledger_kwargs)
        self.passphrase = passphrase
        self.close_interval = close_interval
        self.idle_close = idle_close
        self.submit_timeout = submit_timeout
        self.faults: list[str] = []
        self.ingest_lag = 0
        self.submissions = 0
        self.core_submissions = 0  # of which through the validators' `tx` endpoint double
        self.requests = 0
        self.limited = 0  # the next `limited` requests answer `limited_status` (429 or 503)
        self.limited_status = 429
        self.limit_headers: dict[str, str] = {}
        self.held = False  # True: no ledger closes (transactions queue up) until released
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.url = ""

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> str:
        double = self

        class Handler(_Handler):
            horizon = double

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        for target in (self._server.serve_forever, self._closer):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self.url

    def stop(self) -> None:
        self._stop.set()
        with self.ledger.lock:
            self.ledger.changed.notify_all()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> HorizonDouble:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, *faults: str) -> None:
        """Faults consumed one per POST /transactions: 'try_again_later', 'timeout', 'server_error',
        'insufficient_fee' (a full queue at the base fee)."""
        self.faults.extend(faults)

    def rate_limit(self, n: int, retry_after: float | None = None, reset: float | None = 1) -> None:
        """Answer the next n requests with HTTP 429 rate_limit_exceeded (Horizon's per-IP limiter)."""
        self.limited = n
        self.limited_status = 429
        self.limit_headers = {"X-Ratelimit-Limit": "3600", "X-Ratelimit-Remaining": "0"}
        if reset is not None:
            self.limit_headers["X-Ratelimit-Reset"] = str(reset)
        if retry_after is not None:
            self.limit_headers["Retry-After"] = str(retry_after)

    def unavailable(self, n: int) -> None:
        """Answer the next n requests (any method) with HTTP 503, as Horizon does while core is not ready."""
        self.limited = n
        self.limited_status = 503
        self.limit_headers = {}

    def _closer(self) -> None:
        while not self._stop.wait(self.close_interval):
            with self.ledger.lock:
                busy = bool(self.ledger.queue)
            if (busy or self.idle_close) and not self.held:
                self.ledger.close()

    def close_ledgers(self, n: int = 1) -> None:
        for _ in range(n):
            self.ledger.close()

    # ---- resources --------------------------------------------------------------------------
    def root(self) -> dict[str, Any]:
        lg = self.ledger
        with lg.lock:
            core = lg.sequence
            last = lg.ledgers[max(0, len(lg.ledgers) - 1 - self.ingest_lag)]
            return {
                "horizon_version": "dlnet-double",
                "core_version": "stellar-core double",
                "ingest_latest_ledger": last["sequence"],
                "history_latest_ledger": last["sequence"],
                "history_latest_ledger_closed_at": last["closed_at"],
                "history_elder_ledger": 1,
                "core_latest_ledger": core,
                "network_passphrase": lg.passphrase,
                "current_protocol_version": lg.protocol_version,
                "supported_protocol_version": 19,
                "core_supported_protocol_version": 19,
            }

    def account_json(self, acc: AccountState) -> dict[str, Any]:
        balances: list[dict[str, Any]] = []
        for (code, issuer), tl in acc.trustlines.items():
            balances.append(
                {
                    "balance": amount_str(tl.balance),
                    "limit": amount_str(tl.limit if tl.limit <= INT64_MAX else INT64_MAX),
                    "buying_liabilities": "0.0000000",
                    "selling_liabilities": "0.0000000",
                    "last_modified_ledger": tl.last_modified,
                    "is_authorized": bool(tl.flags & TL_AUTHORIZED),
                    "is_authorized_to_maintain_liabilities": bool(tl.flags & (TL_AUTHORIZED | TL_MAINTAIN)),
                    "is_clawback_enabled": bool(tl.flags & TL_CLAWBACK),
                    "asset_type": "credit_alphanum4" if len(code) <= 4 else "credit_alphanum12",
                    "asset_code": code,
                    "asset_issuer": issuer,
                }
            )
        balances.append(
            {
                "balance": amount_str(acc.balance),
                "buying_liabilities": "0.0000000",
                "selling_liabilities": "0.0000000",
                "asset_type": "native",
            }
        )
        signers = [{"weight": w, "key": k, "type": "ed25519_public_key"} for k, w in acc.signers.items()]
        signers.append({"weight": acc.master_weight, "key": acc.id, "type": "ed25519_public_key"})
        out: dict[str, Any] = {
            "id": acc.id,
            "account_id": acc.id,
            "paging_token": acc.id,
            "sequence": str(acc.seq),
            "subentry_count": acc.subentries,
            "last_modified_ledger": acc.last_modified,
            "thresholds": dict(zip(("low_threshold", "med_threshold", "high_threshold"), acc.thresholds, strict=True)),
            "flags": {
                "auth_required": bool(acc.flags & AUTH_REQUIRED),
                "auth_revocable": bool(acc.flags & AUTH_REVOCABLE),
                "auth_immutable": bool(acc.flags & AUTH_IMMUTABLE),
                "auth_clawback_enabled": bool(acc.flags & AUTH_CLAWBACK),
            },
            "balances": balances,
            "signers": signers,
            "data": {k: __import__("base64").b64encode(v).decode() for k, v in acc.data.items()},
            "num_sponsoring": 0,
            "num_sponsored": 0,
        }
        if acc.home_domain:
            out["home_domain"] = acc.home_domain
        return out

    @staticmethod
    def offer_json(o: Offer) -> dict[str, Any]:
        return {
            "id": str(o.id),
            "paging_token": str(o.id),
            "seller": o.seller,
            "selling": _asset_json(o.selling),
            "buying": _asset_json(o.buying),
            "amount": amount_str(o.amount),
            "price_r": {"n": o.n, "d": o.d},
            "price": f"{o.n / o.d:.7f}",
            "last_modified_ledger": o.last_modified,
        }


def _sep11(asset: Any) -> str:
    return "native" if asset.is_native() else f"{asset.code}:{asset.issuer}"


def _page(records: list[dict[str, Any]], base: str) -> dict[str, Any]:
    return {
        "_links": {"self": {"href": base}, "next": {"href": base}, "prev": {"href": base}},
        "_embedded": {"records": records},
    }


def _paginate(records: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    order = query.get("order", "asc")
    limit = max(1, min(int(query.get("limit", "10")), 200))
    cursor = query.get("cursor")
    key = lambda r: int(r["paging_token"])  # noqa: E731 - small local key
    items = sorted(records, key=key, reverse=order == "desc")
    if cursor and cursor != "now":
        c = int(cursor)
        items = [r for r in items if (key(r) > c if order == "asc" else key(r) < c)]
    elif cursor == "now":
        items = []
    return items[:limit]


class _Handler(BaseHTTPRequestHandler):
    horizon: HorizonDouble
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # one write per response: no Nagle / delayed-ACK stalls between headers and body

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(
        self,
        status: int,
        body: dict[str, Any],
        content_type: str = "application/hal+json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _problem(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        extras: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body: dict[str, Any] = {"type": PROBLEM + kind, "title": title, "status": status, "detail": detail}
        if extras is not None:
            body["extras"] = extras
        self._send(status, body, "application/problem+json", headers)

    def _rate_limited(self) -> bool:
        """Count the request; answer 429 as Horizon's limiter does while `limited` lasts."""
        h = self.horizon
        with h.ledger.lock:
            h.requests += 1
            if h.limited <= 0:
                return False
            h.limited -= 1
        if self.command == "POST":  # the body is unread: drain it to keep the connection usable
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if h.limited_status == 503:
            self._problem(503, "stale_history", "Historical DB Is Too Stale",
                          "This horizon instance is configured to reject client requests when it falls behind.")
            return True
        self._problem(
            429,
            "rate_limit_exceeded",
            "Rate Limit Exceeded",
            "The rate limit for the requesting IP address is over its alloted limit.  The allowed limit and"
            " requests left per time period are communicated to clients via the http response headers"
            " 'X-RateLimit-*' headers.",
            headers=h.limit_headers,
        )
        return True

    def _not_found(self) -> None:
        self._problem(
            404,
            "not_found",
            "Resource Missing",
            "The resource at the url requested was not found.  This usually occurs for one of two"
            " reasons:  The url requested is not valid, or no data in our database could be found"
            " with the parameters provided.",
        )

    # ---- GET ----------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self._rate_limited():
            return
        h = self.horizon
        lg = h.ledger
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = [p for p in parts.path.split("/") if p]
        stream = "text/event-stream" in (self.headers.get("Accept") or "")
        if path == ["tx"]:
            return self._core_tx(query.get("blob", ""))
        with lg.lock:
            if not path:
                return self._send(200, h.root())
            if path == ["health"]:
                return self._send(
                    200,
                    {"database_connected": True, "core_up": True, "core_synced": True},
                    "application/json",
                )
            if path == ["fee_stats"]:
                fee = str(lg.base_fee)
                return self._send(
                    200,
                    {
                        "last_ledger": str(lg.sequence),
                        "last_ledger_base_fee": fee,
                        "ledger_capacity_usage": "0.00",
                        "fee_charged": {"min": fee, "mode": fee, "p50": fee, "max": fee},
                        "max_fee": {"min": fee, "mode": fee, "p50": fee, "max": fee},
                    },
                )
            if path == ["accounts"]:
                return self._send(200, _page(_accounts_page(h, query), self.path))
            if path[0] == "accounts" and len(path) >= 2:
                acc = lg.accounts.get(path[1])
                if acc is None:
                    return self._not_found()
                if len(path) == 2:
                    return self._send(200, h.account_json(acc))
                sub = path[2]
                if sub == "payments":
                    recs = [
                        p
                        for p in lg.payments
                        if acc.id in (p.get("from"), p.get("to"), p.get("account"), p.get("funder"))
                    ]
                    if stream:
                        return self._stream(
                            query,
                            lambda: [
                                p
                                for p in lg.payments
                                if acc.id in (p.get("from"), p.get("to"), p.get("account"), p.get("funder"))
                            ],
                        )
                    return self._send(200, _page(_paginate(recs, query), self.path))
                if sub == "transactions":
                    recs = [lg.transactions[x] for x in lg.tx_order if lg.transactions[x]["source_account"] == acc.id]
                    return self._send(200, _page(_paginate(recs, query), self.path))
                if sub == "offers":
                    recs = [h.offer_json(o) for o in lg.offers.values() if o.seller == acc.id]
                    return self._send(200, _page(_paginate(recs, query), self.path))
                return self._not_found()
            if path[0] == "ledgers":
                if len(path) == 3 and path[2] == "transactions" and path[1].isdigit():
                    recs = [lg.transactions[x] for x in lg.tx_order if lg.transactions[x]["ledger"] == int(path[1])]
                    return self._send(200, _page(_paginate(recs, query), self.path))
                if len(path) == 2:
                    if not path[1].isdigit() or not 1 <= int(path[1]) <= len(lg.ledgers):
                        return self._not_found()
                    return self._send(200, _public(lg.ledgers[int(path[1]) - 1]))
                visible = lg.ledgers[: len(lg.ledgers) - h.ingest_lag] if h.ingest_lag else lg.ledgers
                return self._send(200, _page([_public(r) for r in _paginate(visible, query)], self.path))
            if path[0] == "transactions":
                if len(path) == 2:
                    rec = lg.transactions.get(path[1])
                    return self._send(200, rec) if rec else self._not_found()
                recs = [lg.transactions[x] for x in lg.tx_order]
                return self._send(200, _page(_paginate(recs, query), self.path))
            if path == ["payments"]:
                if stream:
                    return self._stream(query, lambda: list(lg.payments))
                return self._send(200, _page(_paginate(lg.payments, query), self.path))
            if path == ["offers"]:
                recs = [
                    h.offer_json(o)
                    for o in lg.offers.values()
                    if ("seller" not in query or o.seller == query["seller"])
                    and ("selling" not in query or _sep11(o.selling) == query["selling"])
                    and ("buying" not in query or _sep11(o.buying) == query["buying"])
                ]
                return self._send(200, _page(_paginate(recs, query), self.path))
        return self._not_found()

    def _stream(self, query: dict[str, str], source: Any) -> None:
        """Server-Sent Events as Horizon sends them: `retry`, then `id`/`data` per record, then waits."""
        lg = self.horizon.ledger
        cursor = query.get("cursor", "now")
        sent = (
            int(lg.payments[-1]["paging_token"])
            if cursor == "now" and lg.payments
            else int(cursor if cursor not in ("now", "") else 0)
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")  # as Horizon: each event arrives when written
        self.end_headers()
        self.close_connection = True

        def chunk(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        lg.lock.release()  # held by do_GET; streaming must not block the ledger
        try:
            chunk(b'retry: 1000\nevent: open\ndata: "hello"\n\n')
            while not self.horizon._stop.is_set():
                with lg.lock:
                    fresh = [r for r in source() if int(r["paging_token"]) > sent]
                    if not fresh:
                        lg.changed.wait(0.5)
                        continue
                for r in fresh:
                    chunk(f"id: {r['paging_token']}\ndata: {json.dumps(r)}\n\n".encode())
                    sent = int(r["paging_token"])
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            lg.lock.acquire()

    def _core_tx(self, blob: str) -> None:
        """A validator's admin `tx?blob=` on the same port (point the inventory's validator at it): answers at
        once, as stellar-core 19.14 does (always HTTP 200): PENDING, DUPLICATE, TRY_AGAIN_LATER, or ERROR with
        the base64 TransactionResult; the transaction applies when the double closes its next ledger."""
        h = self.horizon
        h.submissions += 1
        h.core_submissions += 1
        fault = h.faults.pop(0) if h.faults else None
        if fault == "try_again_later":
            return self._send(200, {"status": "TRY_AGAIN_LATER"})
        if fault == "insufficient_fee":  # the queue is full at the base fee
            return self._send(200, {"status": "ERROR", "error": TxRejected("tx_insufficient_fee").result_xdr})
        if fault == "server_error":  # a crashing node: not its JSON
            self.send_response(500)
            self.send_header("Content-Length", "14")
            self.end_headers()
            self.wfile.write(b"internal error")
            return None
        try:
            sub = h.ledger.submit(blob)
        except TxRejected as rej:
            return self._send(200, {"status": "ERROR", "error": rej.result_xdr})
        return self._send(200, {"status": "DUPLICATE" if sub.done.is_set() else "PENDING"})

    # ---- POST ---------------------------------------------------------------------------------
    def do_POST(self) -> None:
        if self._rate_limited():
            return
        h = self.horizon
        if urlsplit(self.path).path.rstrip("/") != "/transactions":
            return self._not_found()
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        blob = (form.get("tx") or [""])[-1]
        if not blob:
            return self._problem(
                400,
                "transaction_malformed",
                "Transaction Malformed",
                "Horizon could not decode the transaction envelope in this request.",
                {"envelope_xdr": ""},
            )
        h.submissions += 1
        fault = h.faults.pop(0) if h.faults else None
        if fault == "try_again_later":
            return self._problem(
                503,
                "service_unavailable",
                "Service Unavailable",
                "stellar-core answered TRY_AGAIN_LATER: retry later with the same transaction.",
            )
        if fault == "server_error":
            return self._problem(500, "server_error", "Internal Server Error", "An error occurred.")
        if fault == "insufficient_fee":  # stellar-core's queue full at the base fee (surge pricing), not queued
            return self._problem(
                400,
                "transaction_failed",
                "Transaction Failed",
                "The transaction failed when submitted to the stellar network. The"
                " `extras.result_codes` field on this response contains further details.",
                {"envelope_xdr": blob, "result_codes": {"transaction": "tx_insufficient_fee"}},
            )
        try:
            sub = h.ledger.submit(blob)
        except TxRejected as rej:
            if rej.tx_code == "tx_malformed":
                return self._problem(
                    400,
                    "transaction_malformed",
                    "Transaction Malformed",
                    "Horizon could not decode the transaction envelope in this request.",
                    {"envelope_xdr": blob},
                )
            codes: dict[str, Any] = {"transaction": rej.tx_code}
            if rej.op_codes:
                codes["operations"] = rej.op_codes
            return self._problem(
                400,
                "transaction_failed",
                "Transaction Failed",
                "The transaction failed when submitted to the stellar network. The"
                " `extras.result_codes` field on this response contains further details.",
                {"envelope_xdr": blob, "result_codes": codes, "result_xdr": rej.result_xdr},
            )
        if fault == "timeout" or not sub.done.wait(h.submit_timeout):
            return self._problem(
                504,
                "timeout",
                "Timeout",
                "Your request timed out before completing.  Please try your request again."
                " If you are submitting a transaction make sure you are sending exactly the"
                " same"
                " transaction (with the same sequence number).",
            )
        rec = sub.record or {}
        if not rec.get("successful"):
            return self._problem(
                400,
                "transaction_failed",
                "Transaction Failed",
                "The transaction failed when submitted to the stellar network. The"
                " `extras.result_codes` field on this response contains further details.",
                {
                    "envelope_xdr": blob,
                    "result_codes": rec.get("result_codes"),
                    "result_xdr": rec.get("result_xdr", ""),
                },
            )
        return self._send(200, rec)


def _accounts_page(h: HorizonDouble, query: dict[str, str]) -> list[dict[str, Any]]:
    """GET /accounts?asset=CODE:ISSUER | signer=G...: ordered by account id, cursor = account id."""
    lg = h.ledger
    if "asset" in query:
        code, _, issuer = query["asset"].partition(":")
        accs = [a for a in lg.accounts.values() if (code, issuer) in a.trustlines]
    elif "signer" in query:
        accs = [a for a in lg.accounts.values() if a.id == query["signer"] or query["signer"] in a.signers]
    else:
        return []
    desc = query.get("order", "asc") == "desc"
    limit = max(1, min(int(query.get("limit", "10")), 200))
    ids = sorted((a.id for a in accs), reverse=desc)
    cursor = query.get("cursor")
    if cursor:
        ids = [i for i in ids if (i < cursor if desc else i > cursor)]
    return [h.account_json(lg.accounts[i]) for i in ids[:limit]]


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if not k.startswith("_")}


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False
