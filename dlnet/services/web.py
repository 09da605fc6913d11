"""What every service shares on the HTTP side: error shape, body limit, rate limit, metrics, logs.

Errors are JSON `{"error": "<what failed — expected X, got Y>"}` with a 4xx status; validation
errors list each field. An unexpected exception is logged (type and place only, never the request
body) and answered 500 `{"error": "internal error"}` — tests and schemathesis hunt for those.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dlnet.errors import DlnetError


class ApiError(HTTPException):
    """A client error with a message for the caller (status 4xx) or an upstream failure (502/503)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)


# ---------------------------------------------------------------- logs


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Only fields passed in `extra={"fields": {...}}` are added: callers
    decide what is safe, and nothing from request bodies is ever passed."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            # The type and the innermost frame, not the message: messages can quote input.
            tb = record.exc_info[2]
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            out["exc_type"] = record.exc_info[0].__name__
            if tb is not None:
                out["exc_at"] = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        return json.dumps(out, default=str)


def setup_logging(service: str, level: str = "INFO", stream: Any = None) -> logging.Logger:
    logger = logging.getLogger(f"dlnet.{service}")
    logger.setLevel(level)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    logger.addHandler(handler)
    return logger


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    logger.log(level, msg, extra={"fields": fields})


# ---------------------------------------------------------------- limits


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.limit
                except ValueError:
                    too_big = False
                    await _send_json(send, 400, {"error": "Content-Length is not a number"})
                    return
                if too_big:
                    await _send_json(send, 413, {"error": f"request body too large — at most {self.limit} bytes"})
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted, tracking_send)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, {"error": f"request body too large — at most {self.limit} bytes"})


class _TooLarge(Exception):
    pass


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class RateLimiter:
    """Token bucket per (client address, bucket name); thread-safe, in memory (one per process)."""

    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute // 6 or 1))
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, bucket: str) -> float:
        """0.0 when allowed; else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get((client, bucket), (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[(client, bucket)] = (tokens - 1.0, now)
                if len(self._buckets) > 100_000:  # bound memory: forget the oldest half
                    for key in list(self._buckets)[:50_000]:
                        del self._buckets[key]
                return 0.0
            self._buckets[(client, bucket)] = (tokens, now)
            return (1.0 - tokens) / self.rate


# ---------------------------------------------------------------- app


def build_app(
    *,
    service: str,
    title: str,
    description: str,
    max_body_bytes: int,
    rate_limit_per_minute: int,
    public_prefixes: Iterable[str],
    logger: logging.Logger,
    health: Callable[[], dict[str, Any]],
    lifespan: Any = None,
) -> tuple[FastAPI, CollectorRegistry]:
    """A FastAPI app with the shared behaviour; the service adds its routes."""
    registry = CollectorRegistry()
    requests = Counter("dlnet_http_requests", "HTTP requests by route and status class",
                       ["service", "route", "method", "status"], registry=registry)
    latency = Histogram("dlnet_http_request_duration_seconds", "HTTP request latency",
                        ["service", "route"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
    limiter = RateLimiter(rate_limit_per_minute, burst=max(10, rate_limit_per_minute // 6))
    prefixes = tuple(public_prefixes)

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan,
                  responses={400: {"description": "Bad request"}, 413: {"description": "Body too large"},
                             429: {"description": "Rate limited"}})
    app.state.logger = logger
    app.state.registry = registry

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if prefixes and path.startswith(prefixes):
            client = request.client.host if request.client else "unknown"
            wait = limiter.allow(client, path.split("/")[1] if "/" in path else path)
            if wait > 0:
                requests.labels(service, "rate_limited", request.method, "429").inc()
                return JSONResponse({"error": f"too many requests — retry in {wait:.1f} s"}, status_code=429,
                                    headers={"Retry-After": str(max(1, round(wait)))})
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - start
        requests.labels(service, name, request.method, str(response.status_code)).inc()
        latency.labels(service, name).observe(elapsed)
        # Path template, not the URL: query strings and path values never reach the log.
        log(logger, logging.INFO, "request", method=request.method, route=name,
            status=response.status_code, ms=round(elapsed * 1000, 2))
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {e.get('msg', 'invalid').removeprefix('Value error, ')}")
        return JSONResponse({"error": "; ".join(problems), "problems": problems}, status_code=400)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DlnetError)
    async def _dlnet(_: Request, exc: DlnetError) -> JSONResponse:
        log(logger, logging.ERROR, "service error", error=str(exc))
        return JSONResponse({"error": str(exc)}, status_code=503)

    @app.exception_handler(psycopg.DataError)
    async def _data(_: Request, exc: psycopg.DataError) -> JSONResponse:
        # Input PostgreSQL cannot store (NUL bytes, out-of-range numbers): the caller's data, not our fault.
        return JSONResponse({"error": "invalid input: a value contains characters or numbers PostgreSQL cannot "
                                      "store (e.g. a NUL byte)"}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error", exc_info=exc, extra={"fields": {}})
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.get("/health", tags=["operations"], summary="Liveness and readiness (database reachable)")
    def _health() -> JSONResponse:
        status = health()
        return JSONResponse(status, status_code=200 if status.get("ok") else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse)
    def _metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimit, limit=max_body_bytes)  # outermost: refuse before anything reads
    return app, registry


def db_health(pool: Any) -> dict[str, Any]:
    try:
        with pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        return {"ok": True, "database": "ok"}
    except Exception as exc:  # health must answer, whatever the failure
        return {"ok": False, "database": type(exc).__name__}
