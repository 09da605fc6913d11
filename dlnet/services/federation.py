"""Federation server (SEP-2) and the organisation's stellar.toml (SEP-1).

Public: `GET /.well-known/stellar.toml`, `GET /federation?q=...&type=name|id`.
Admin (bearer token): `GET/PUT/DELETE /admin/records/{name}`, names under the home domain.
"""


import json
import logging
import re
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import psycopg
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from stellar_sdk import StrKey

from dlnet.services import db
from dlnet.services.auth import AdminToken, check_account
from dlnet.services.settings import FederationSettings, read_secret
from dlnet.services.web import ApiError, build_app, db_health, log, setup_logging

NAME = re.compile(r"^[a-z0-9._@+-]{1,64}$")
CORS = {"Access-Control-Allow-Origin": "*"}


def _toml_str(v: str) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes.
    return json.dumps(v, ensure_ascii=False)


def render_stellar_toml(s: FederationSettings) -> str:
    """SEP-1 document for this organisation (deterministic: same settings, same bytes)."""
    base = s.public_url.rstrip("/")
    lines = ['VERSION = "2.7.0"', f"NETWORK_PASSPHRASE = {_toml_str(s.network_passphrase)}",
             f"FEDERATION_SERVER = {_toml_str(base + '/federation')}"]
    if s.web_auth_endpoint:
        lines.append(f"WEB_AUTH_ENDPOINT = {_toml_str(s.web_auth_endpoint)}")
    if s.signing_key:
        lines.append(f"SIGNING_KEY = {_toml_str(s.signing_key)}")
    if s.kyc_server:
        lines.append(f"KYC_SERVER = {_toml_str(s.kyc_server)}")
    lines.append("ACCOUNTS = [" + ", ".join(_toml_str(a) for a in s.accounts) + "]")
    lines += ["", "[DOCUMENTATION]", f"ORG_NAME = {_toml_str(s.org_name or s.home_domain)}",
              f"ORG_URL = {_toml_str('https://' + s.home_domain)}"]
    for c in s.currencies:
        lines += ["", "[[CURRENCIES]]", f"code = {_toml_str(c.code)}", f"issuer = {_toml_str(c.issuer)}",
                  "display_decimals = 7"]
        if c.desc:
            lines.append(f"desc = {_toml_str(c.desc)}")
        if c.regulated:
            lines.append("regulated = true")
            if c.approval_server:
                lines.append(f"approval_server = {_toml_str(c.approval_server)}")
            if c.approval_criteria:
                lines.append(f"approval_criteria = {_toml_str(c.approval_criteria)}")
    for v in s.validators:
        lines += ["", "[[VALIDATORS]]", f"ALIAS = {_toml_str(v.alias)}", f"DISPLAY_NAME = {_toml_str(v.display_name)}",
                  f"PUBLIC_KEY = {_toml_str(v.public_key)}", f"HOST = {_toml_str(v.host)}"]
        if v.history:
            lines.append(f"HISTORY = {_toml_str(v.history)}")
    return "\n".join(lines) + "\n"


class FederationRecord(BaseModel):
    stellar_address: str
    account_id: str
    memo_type: Literal["text", "id", "hash"] | None = None
    memo: str | None = None


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: str = Field(description="Stellar account id (G...)")
    memo_type: Literal["text", "id", "hash"] | None = None
    memo: str | None = Field(default=None, max_length=64)

    @field_validator("account_id")
    @classmethod
    def _acc(cls, v: str) -> str:
        if not StrKey.is_valid_ed25519_public_key(v):
            raise ValueError(f"expected a Stellar account id (G..., 56 characters), got {v[:80]!r}")
        return v

    @model_validator(mode="after")
    def _memo(self) -> "RecordIn":
        if (self.memo_type is None) != (self.memo is None):
            raise ValueError("memo and memo_type go together: give both or neither")
        if self.memo_type == "id" and self.memo is not None and not (
                self.memo.isascii() and self.memo.isdigit() and int(self.memo) < 2**64):
            raise ValueError(f"memo: expected an unsigned 64-bit integer for memo_type id, got {self.memo!r}")
        if self.memo_type == "text" and self.memo is not None and len(self.memo.encode()) > 28:
            raise ValueError("memo: a text memo holds at most 28 bytes")
        if self.memo_type == "hash" and self.memo is not None and not re.fullmatch(r"[0-9a-f]{64}", self.memo):
            raise ValueError("memo: expected 64 lower-case hex characters for memo_type hash")
        return self


class RecordOut(RecordIn):
    name: str
    stellar_address: str


def create_app(settings: FederationSettings, admin_token: str | None = None) -> FastAPI:
    logger = setup_logging("federation", settings.log_level)
    token = AdminToken(admin_token if admin_token is not None
                       else read_secret(settings.admin_token_file, "admin token"))
    toml_text = render_stellar_toml(settings)
    domain = settings.home_domain.lower()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Iterator[None]:  # type: ignore[misc]
        state["pool"] = db.migrate_and_open(settings.database, "federation", logger)
        try:
            yield
        finally:
            state["pool"].close()

    app, registry = build_app(
        service="federation", title="dlnet federation (SEP-2) and stellar.toml (SEP-1)",
        description="Name and reverse lookups for the organisation's accounts; names managed by the admin API.",
        max_body_bytes=settings.max_body_bytes, rate_limit_per_minute=settings.rate_limit_per_minute,
        public_prefixes=("/federation", "/.well-known"), logger=logger,
        health=lambda: db_health(state["pool"]), lifespan=lifespan)
    from prometheus_client import Counter

    lookups = Counter("dlnet_federation_lookups", "Federation lookups by type and result", ["type", "result"],
                      registry=registry)

    def admin(request: Request) -> None:
        token.check(request)

    def conn() -> Iterator[psycopg.Connection[Any]]:
        with state["pool"].connection() as c:
            yield c

    Conn = Annotated[psycopg.Connection[Any], Depends(conn)]

    @app.get("/.well-known/stellar.toml", response_class=PlainTextResponse, tags=["public"],
             summary="SEP-1 stellar.toml")
    def stellar_toml() -> PlainTextResponse:
        return PlainTextResponse(toml_text, media_type="text/plain; charset=utf-8", headers=CORS)

    @app.get("/federation", tags=["public"], response_model=FederationRecord,
             responses={404: {"description": "No such record"}, 400: {"description": "Malformed query"}},
             summary="SEP-2 lookup: type=name (name*domain) or type=id (account id)")
    def federation(c: Conn, q: Annotated[str, Query(min_length=1, max_length=200)],
                   type: Annotated[Literal["name", "id"], Query()]) -> JSONResponse:
        if type == "id":
            check_account(q, "q")
            row = c.execute("SELECT name, domain, account_id, memo_type, memo FROM records"
                            " WHERE account_id = %s ORDER BY created_at, name LIMIT 1", (q,)).fetchone()
        else:
            name, sep, dom = q.rpartition("*")
            if not sep or not name or not dom:
                lookups.labels("name", "bad").inc()
                raise ApiError(400, f"q: expected a stellar address name*domain, got {q[:100]!r}")
            row = None
            if dom.lower() == domain and NAME.match(name.lower()):
                row = c.execute("SELECT name, domain, account_id, memo_type, memo FROM records"
                                " WHERE domain = %s AND name = %s", (domain, name.lower())).fetchone()
        if row is None:
            lookups.labels(type, "not_found").inc()
            return JSONResponse({"detail": "not found", "error": "not found"}, status_code=404, headers=CORS)
        lookups.labels(type, "found").inc()
        body: dict[str, Any] = {"stellar_address": f"{row[0]}*{row[1]}", "account_id": row[2]}
        if row[3] is not None:
            body |= {"memo_type": row[3], "memo": row[4]}
        return JSONResponse(body, headers=CORS)

    def _out(row: tuple[Any, ...]) -> RecordOut:
        return RecordOut(name=row[0], stellar_address=f"{row[0]}*{domain}", account_id=row[1],
                         memo_type=row[2], memo=row[3])

    def _name(name: str) -> str:
        low = name.lower()
        if not NAME.match(low):
            raise ApiError(400, f"name: expected 1-64 of a-z 0-9 . _ @ + -, got {name[:80]!r}")
        return low

    @app.get("/admin/records", tags=["admin"], dependencies=[Depends(admin)], response_model=list[RecordOut],
             responses={401: {"description": "No token"}, 403: {"description": "Bad token"}})
    def list_records(c: Conn, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     after: Annotated[str, Query(max_length=64)] = "") -> list[RecordOut]:
        rows = c.execute("SELECT name, account_id, memo_type, memo FROM records WHERE domain = %s AND name > %s"
                         " ORDER BY name LIMIT %s", (domain, after, limit)).fetchall()
        return [_out(r) for r in rows]

    @app.get("/admin/records/{name}", tags=["admin"], dependencies=[Depends(admin)], response_model=RecordOut,
             responses={401: {"description": "No token"}, 403: {"description": "Bad token"},
                        404: {"description": "No such record"}})
    def get_record(c: Conn, name: str) -> RecordOut:
        row = c.execute("SELECT name, account_id, memo_type, memo FROM records WHERE domain = %s AND name = %s",
                        (domain, _name(name))).fetchone()
        if row is None:
            raise ApiError(404, f"no record {name[:64]}*{domain}")
        return _out(row)

    @app.put("/admin/records/{name}", tags=["admin"], dependencies=[Depends(admin)], response_model=RecordOut,
             responses={401: {"description": "No token"}, 403: {"description": "Bad token"}})
    def put_record(c: Conn, name: str, record: RecordIn) -> RecordOut:
        n = _name(name)
        c.execute("INSERT INTO records (name, domain, account_id, memo_type, memo) VALUES (%s, %s, %s, %s, %s)"
                  " ON CONFLICT (domain, name) DO UPDATE SET account_id = EXCLUDED.account_id,"
                  " memo_type = EXCLUDED.memo_type, memo = EXCLUDED.memo, updated_at = now()",
                  (n, domain, record.account_id, record.memo_type, record.memo))
        log(logger, logging.INFO, "record saved", name=n)
        return _out((n, record.account_id, record.memo_type, record.memo))

    @app.delete("/admin/records/{name}", tags=["admin"], dependencies=[Depends(admin)], status_code=204,
                responses={401: {"description": "No token"}, 403: {"description": "Bad token"},
                           404: {"description": "No such record"}})
    def delete_record(c: Conn, name: str) -> None:
        cur = c.execute("DELETE FROM records WHERE domain = %s AND name = %s", (domain, _name(name)))
        if cur.rowcount == 0:
            raise ApiError(404, f"no record {name[:64]}*{domain}")
        log(logger, logging.INFO, "record deleted", name=name.lower())

    return app
