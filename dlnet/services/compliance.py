"""Compliance service: KYC registry and gatekeeper of the regulated DLC.

Participant (SEP-10): `GET /auth?account=G...` -> challenge; `POST /auth` {transaction} -> token;
`POST /kyc` {fields} (encrypted, stored on IPFS); `GET /kyc` -> status.
Operator (admin token): list, review, approve (authorizes the DLC trustline on chain), reject, revoke
(deauthorizes, optionally claws back), strikes for malicious partners. Every decision goes to the
append-only audit log.
Anyone: `POST /tx-approve` (SEP-8 style): a DLC payment transaction signed by its source comes back
signed by the issuer when the rules hold (both parties approved, amount limit, penalty stake).
"""

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import psycopg
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, field_validator
from stellar_sdk import Asset, Transaction, TransactionEnvelope
from stellar_sdk.operation import ManageSellOffer, Payment

from dlnet.chain import Horizon, InputError, amount_text, asset_text, sandwich, signed_by
from dlnet.errors import DlnetError
from dlnet.ipfs import Ipfs
from dlnet.market import penalties
from dlnet.services import db, kyc
from dlnet.services.auth import AdminToken, Sep10, check_account
from dlnet.services.chain import Chain, ChainError
from dlnet.services.settings import ComplianceSettings, keypair_from_file, read_secret
from dlnet.services.web import ApiError, build_app, db_health, log, setup_logging


class ChallengeOut(BaseModel):
    transaction: str
    network_passphrase: str


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    transaction: str = Field(min_length=1, max_length=20_000)


class KycIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")], Annotated[str, Field(max_length=2000)]] = (
        Field(min_length=1, max_length=50, description="SEP-9 style fields, e.g. first_name, last_name, email_address"))


class KycStatus(BaseModel):
    account_id: str
    status: Literal["none", "pending", "approved", "rejected", "revoked"]
    strikes: int = 0
    record_cid: str | None = None


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operator: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    reason: str = Field(default="", max_length=500)
    clawback: bool = Field(default=False, description="revoke only: also claw back the account's DLC balance")


class StrikesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operator: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    strikes: int = Field(ge=0, le=64)
    reason: str = Field(default="", max_length=500)


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tx: str = Field(min_length=1, max_length=20_000, description="base64 XDR transaction envelope signed by its source")

    @field_validator("tx")
    @classmethod
    def _b64(cls, v: str) -> str:
        return v.strip()


def _dec(text: str, what: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise DlnetError(f"{what}: expected a decimal number, got {text!r}") from None
    return d


class Rejected(DlnetError):
    """A transaction /tx-approve refuses; the message is the reason given to the client."""


class Rules:
    """The approval rules, apart from the web app: KYC of every party, the amount limit, the penalty stake.

    A stake offer (selling DLC for a model's VLM, dlnet/market/partner.py) must stake what the model's market
    requires for the seller's strikes: the market's own terms (its initiator's `market.*` data entries,
    found from the VLM issuer's `dlnet.initiator`), and strikes = the highest of the operator's count and
    the count the model's validators recorded on chain (dlnet/market/penalties.py).
    """

    def __init__(self, dlc: Asset, max_amount: Decimal, stake_base: Decimal, penalty: Decimal,
                 stake_account: str | None, kyc_of: Callable[[str], tuple[str, int]], horizon: Horizon) -> None:
        self.dlc, self.max_amount, self.stake_base, self.penalty = dlc, max_amount, stake_base, penalty
        self.stake_account, self.kyc_of, self.h = stake_account, kyc_of, horizon

    def _approved(self, i: int, who: str, account: str) -> int:
        status, strikes = self.kyc_of(account)
        if status != "approved":
            raise Rejected(f"operation {i}: {who} {account} is not KYC-approved (status {status}) — expected an"
                           " approved KYC record — submit KYC (POST /kyc) and wait for an operator's approval")
        return strikes

    def check(self, tx: Transaction) -> list[str]:
        """The accounts whose DLC trustlines the transaction moves (to authorize); Rejected with the reason."""
        from dlnet.market.protocol import Market

        source = tx.source.account_id
        if not tx.operations:
            raise Rejected("tx: no operations")
        touched: list[str] = []
        for i, op in enumerate(tx.operations):
            if isinstance(op, ManageSellOffer) and op.selling == self.dlc:
                seller = op.source.account_id if op.source else source
                strikes = self._approved(i, "seller", seller)
                market = None if op.buying.is_native() else Market.of_issuer(self.h, op.buying.issuer)
                if market is None:
                    raise Rejected(f"operation {i}: a {self.dlc.code} offer buying {asset_text(op.buying)}, an asset"
                                   " of no model's market — expected a stake offer for a model's VLM")
                if op.buying != market.vlm:
                    raise Rejected(f"operation {i}: a {self.dlc.code} offer buying {asset_text(op.buying)} — expected"
                                   f" model {market.model!r}'s {asset_text(market.vlm)}")
                strikes = max(strikes, market.strikes(self.h, seller))
                need = market.required_stake(strikes)
                if Decimal(op.amount) != 0 and Decimal(op.amount) < need:
                    raise Rejected(f"operation {i}: stake offer of {op.amount} {self.dlc.code} too small — {seller}"
                                   f" has {strikes} strike(s) for refused updates (recorded on chain), so must stake"
                                   f" at least {amount_text(need)} — stake more {self.dlc.code}")
                touched.append(seller)
                continue
            if not isinstance(op, Payment):
                raise Rejected(f"operation {i}: only payments and stake offers of {self.dlc.code} are approved here,"
                               f" got {type(op).__name__}")
            if op.asset != self.dlc:
                raise Rejected(f"operation {i}: unknown asset {asset_text(op.asset)} — expected"
                               f" {self.dlc.code}:{self.dlc.issuer}")
            sender = op.source.account_id if op.source else source
            dest = op.destination.account_id
            amount = Decimal(op.amount)
            strikes = 0
            for who, acc in (("sender", sender), ("receiver", dest)):
                if acc != self.dlc.issuer:
                    n = self._approved(i, who, acc)
                    strikes = n if acc == sender else strikes
                    touched.append(acc)
            if amount > self.max_amount:
                raise Rejected(f"operation {i}: amount {amount} exceeds the limit {self.max_amount} {self.dlc.code}")
            if self.stake_account and dest == self.stake_account:
                need = penalties.required_stake(strikes, self.stake_base, self.penalty)  # the market's rule
                if amount < need:
                    raise Rejected(f"operation {i}: stake of {amount} {self.dlc.code} too small — {sender} has"
                                   f" {strikes} strike(s) for malicious updates, so must stake at least"
                                   f" {need.normalize():f}")
        return list(dict.fromkeys(touched))


def create_app(settings: ComplianceSettings, *, admin_token: str | None = None, ipfs: Ipfs | None = None,
               log_stream: Any = None) -> FastAPI:
    logger = setup_logging("compliance", settings.log_level, log_stream)
    token = AdminToken(admin_token if admin_token is not None
                       else read_secret(settings.admin_token_file, "admin token"))
    signing = keypair_from_file(settings.signing_key_file, "SEP-10 signing key")
    issuer = keypair_from_file(settings.issuer_seed_file, "DLC issuer seed")
    if issuer.public_key != settings.dlc.issuer:
        raise DlnetError(f"DLC issuer seed in {settings.issuer_seed_file} belongs to {issuer.public_key}, "
                         f"expected dlc.issuer {settings.dlc.issuer}")
    kek = kyc.load_kek(read_secret(settings.kyc_kek_file, "KYC key-encryption key"))
    jwt_secret = read_secret(settings.jwt_secret_file, "JWT secret")
    if len(jwt_secret) < 32:
        raise DlnetError(f"JWT secret in {settings.jwt_secret_file} is too short: expected at least 32 characters")
    dlc = Asset(settings.dlc.asset_code, settings.dlc.issuer)
    chain = Chain(settings.horizon_url, settings.network_passphrase)

    def lookup(account: str) -> dict[str, Any] | None:
        try:
            return chain.account(account)
        except ChainError as exc:
            raise ApiError(502, f"cannot read {account}'s signers from Horizon: {exc}") from None

    sep10 = Sep10(signing, jwt_secret, settings.home_domain,
                  settings.web_auth_domain, settings.network_passphrase, settings.challenge_timeout,
                  settings.jwt_ttl, f"https://{settings.web_auth_domain}/auth", account_lookup=lookup)
    max_amount = _dec(settings.dlc.max_amount, "dlc.max_amount")
    stake_base = _dec(settings.dlc.stake_base, "dlc.stake_base")
    penalty = _dec(settings.dlc.penalty_factor, "dlc.penalty_factor")
    store = ipfs or Ipfs(settings.ipfs_api_url)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        chain.check_network(logger)
        state["pool"] = db.migrate_and_open(settings.database, "compliance", logger)
        try:
            yield
        finally:
            state["pool"].close()

    app, registry = build_app(
        service="compliance", title="dlnet compliance (KYC, DLC authorization, SEP-10, SEP-8 style approval)",
        description=__doc__ or "", max_body_bytes=settings.max_body_bytes,
        rate_limit_per_minute=settings.rate_limit_per_minute, public_prefixes=("/auth", "/kyc", "/tx-approve"),
        logger=logger, health=lambda: db_health(state["pool"]), lifespan=lifespan)
    decisions = Counter("dlnet_compliance_decisions", "Operator decisions", ["decision"], registry=registry)
    approvals = Counter("dlnet_compliance_tx_approvals", "SEP-8 approval results", ["status"], registry=registry)

    def conn() -> Iterator[psycopg.Connection[Any]]:
        with state["pool"].connection() as c:
            yield c

    Conn = Annotated[psycopg.Connection[Any], Depends(conn)]

    def admin(request: Request) -> None:
        token.check(request)

    def participant(request: Request) -> str:
        return sep10.account_of(request)

    def audit(c: psycopg.Connection[Any], actor: str, account: str | None, action: str, **detail: Any) -> None:
        c.execute("INSERT INTO audit_log (actor, account_id, action, detail) VALUES (%s, %s, %s, %s)",
                  (actor, account, action, json.dumps(detail)))

    def status_of(c: psycopg.Connection[Any], account: str) -> KycStatus:
        row = c.execute("SELECT a.status, a.strikes, r.cid FROM accounts a"
                        " LEFT JOIN kyc_records r ON r.id = a.record_id"
                        " WHERE a.account_id = %s", (account,)).fetchone()
        if row is None:
            return KycStatus(account_id=account, status="none")
        return KycStatus(account_id=account, status=row[0], strikes=row[1], record_cid=row[2])

    AdminErr = {401: {"description": "No token"}, 403: {"description": "Bad token"}}

    # ---------------------------------------------------------------- SEP-10
    @app.get("/auth", tags=["sep-10"], response_model=ChallengeOut, summary="SEP-10 challenge for an account")
    def challenge(account: Annotated[str, Query(min_length=1, max_length=100)],
                  home_domain: Annotated[str | None, Query(max_length=253)] = None) -> ChallengeOut:
        return ChallengeOut(transaction=sep10.challenge(account, home_domain),
                            network_passphrase=settings.network_passphrase)

    @app.post("/auth", tags=["sep-10"], summary="Exchange a signed challenge for a token",
              responses={401: {"description": "Not signed by the account"}})
    def token_(body: TokenIn) -> dict[str, str]:
        account = sep10.verify(body.transaction)
        log(logger, logging.INFO, "authenticated", account=account)
        return {"token": sep10.token(account)}

    # ---------------------------------------------------------------- participant
    @app.post("/kyc", tags=["kyc"], response_model=KycStatus, status_code=202,
              responses={401: {"description": "No or bad SEP-10 token"}, 409: {"description": "Already approved"}})
    def submit_kyc(c: Conn, body: KycIn, account: Annotated[str, Depends(participant)]) -> KycStatus:
        current = status_of(c, account)
        if current.status == "approved":
            raise ApiError(409, "KYC already approved for this account — "
                                "ask an operator to revoke it before resubmitting")
        sealed = kyc.seal(kek, account, body.fields)
        cid = store.add(sealed.envelope)
        with c.transaction():
            rid = c.execute("INSERT INTO kyc_records (account_id, cid, envelope_sha256, wrapped_key, kek_id)"
                            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                            (account, cid, sealed.envelope_sha256, sealed.wrapped_key, sealed.kek_id)).fetchone()[0]
            c.execute("INSERT INTO accounts (account_id, status, record_id) VALUES (%s, 'pending', %s)"
                      " ON CONFLICT (account_id) DO UPDATE SET status = 'pending', record_id = EXCLUDED.record_id,"
                      " updated_at = now()", (account, rid))
            audit(c, account, account, "kyc_submitted", cid=cid, envelope_sha256=sealed.envelope_sha256)
        log(logger, logging.INFO, "kyc submitted", account=account, cid=cid)
        return status_of(c, account)

    @app.get("/kyc", tags=["kyc"], response_model=KycStatus, responses={401: {"description": "No or bad token"}})
    def my_kyc(c: Conn, account: Annotated[str, Depends(participant)]) -> KycStatus:
        return status_of(c, account)

    # ---------------------------------------------------------------- operator
    @app.get("/admin/kyc", tags=["operator"], dependencies=[Depends(admin)], response_model=list[KycStatus],
             responses=AdminErr)
    def list_kyc(c: Conn, status: Literal["pending", "approved", "rejected", "revoked"] | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[KycStatus]:
        rows = c.execute("SELECT a.account_id, a.status, a.strikes, r.cid FROM accounts a"
                         " LEFT JOIN kyc_records r ON r.id = a.record_id"
                         " WHERE %s::text IS NULL OR a.status = %s ORDER BY a.updated_at LIMIT %s",
                         (status, status, limit)).fetchall()
        return [KycStatus(account_id=r[0], status=r[1], strikes=r[2], record_cid=r[3]) for r in rows]

    @app.get("/admin/kyc/{account}/record", tags=["operator"], dependencies=[Depends(admin)],
             responses=AdminErr | {404: {"description": "No record"}})
    def review(c: Conn, account: str, operator: Annotated[str, Query(min_length=1, max_length=64,
                                                                     pattern=r"^[A-Za-z0-9._@-]+$")]) -> dict[str, Any]:
        check_account(account)
        row = c.execute("SELECT r.cid, r.envelope_sha256, r.wrapped_key FROM accounts a JOIN kyc_records r"
                        " ON r.id = a.record_id WHERE a.account_id = %s", (account,)).fetchone()
        if row is None:
            raise ApiError(404, f"no KYC record for {account}")
        fields = kyc.open_sealed(kek, account, store.cat(row[0]), bytes(row[2]), row[1])
        audit(c, operator, account, "kyc_reviewed", cid=row[0])
        return {"account_id": account, "cid": row[0], "fields": fields}

    def _decide(c: psycopg.Connection[Any], account: str, body: Decision, decision: str) -> dict[str, Any]:
        check_account(account)
        current = status_of(c, account)
        allowed = {"approve": {"pending", "rejected", "revoked"}, "reject": {"pending"}, "revoke": {"approved"}}
        if current.status not in allowed[decision]:
            raise ApiError(409, f"cannot {decision} {account}: its KYC status is {current.status}, expected one of "
                                f"{', '.join(sorted(allowed[decision]))}")
        detail: dict[str, Any] = {"reason": body.reason}
        try:
            line = chain.trustline(account, dlc)
            if decision == "approve":
                if line is None:
                    raise ApiError(409, f"{account} has no {dlc.code} trustline — the participant must add one "
                                        f"(ChangeTrust {dlc.code}:{dlc.issuer}) before approval")
                detail["tx"] = chain.authorize(issuer, account, dlc, True,
                                               settings.dlc.approve_to == "maintain_liabilities")
            elif line is not None and (line.get("is_authorized") or line.get("is_authorized_to_maintain_liabilities")):
                if body.clawback and decision == "revoke" and Decimal(line.get("balance", "0")) > 0:
                    if not line.get("is_clawback_enabled"):
                        raise ApiError(409, f"cannot claw back from {account}: its trustline is not clawback-enabled "
                                            "(the issuer lacked AUTH_CLAWBACK_ENABLED when it was created)")
                    detail["clawback_tx"] = chain.clawback(issuer, account, dlc, Decimal(line["balance"]))
                    detail["clawed_back"] = line["balance"]
                detail["tx"] = chain.authorize(issuer, account, dlc, False)
        except ChainError as exc:
            audit(c, body.operator, account, f"{decision}_failed", error=str(exc), codes=exc.codes)
            status = exc.status if exc.status < 500 else 502
            raise ApiError(status, f"{decision} of {account} failed on chain: {exc}") from None
        new = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}[decision]
        with c.transaction():
            c.execute("UPDATE accounts SET status = %s, updated_at = now() WHERE account_id = %s", (new, account))
            audit(c, body.operator, account, decision, **detail)
        decisions.labels(decision).inc()
        log(logger, logging.INFO, "decision", account=account, decision=decision, operator=body.operator)
        return {"account_id": account, "status": new} | {k: v for k, v in detail.items() if k != "reason"}

    for _name in ("approve", "reject", "revoke"):
        def _route(c: Conn, account: str, body: Decision, _d: str = _name) -> dict[str, Any]:
            return _decide(c, account, body, _d)
        app.post(f"/admin/kyc/{{account}}/{_name}", tags=["operator"], dependencies=[Depends(admin)],
                 responses=AdminErr | {409: {"description": "Not allowed in the current state"},
                                       502: {"description": "Horizon failed"}},
                 name=f"kyc_{_name}", summary=f"{_name.capitalize()} an account's KYC")(_route)

    @app.put("/admin/accounts/{account}/strikes", tags=["operator"], dependencies=[Depends(admin)],
             response_model=KycStatus, responses=AdminErr | {404: {"description": "Unknown account"}})
    def set_strikes(c: Conn, account: str, body: StrikesIn) -> KycStatus:
        check_account(account)
        with c.transaction():
            cur = c.execute("UPDATE accounts SET strikes = %s, updated_at = now() WHERE account_id = %s",
                            (body.strikes, account))
            if cur.rowcount == 0:
                raise ApiError(404, f"{account} never submitted KYC")
            audit(c, body.operator, account, "strikes", strikes=body.strikes, reason=body.reason)
        return status_of(c, account)

    @app.get("/admin/audit", tags=["operator"], dependencies=[Depends(admin)], responses=AdminErr)
    def audit_log(c: Conn, account: Annotated[str | None, Query(max_length=56)] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        rows = c.execute("SELECT id, at, actor, account_id, action, detail FROM audit_log"
                         " WHERE %s::text IS NULL OR account_id = %s ORDER BY id DESC LIMIT %s",
                         (account, account, limit)).fetchall()
        return [{"id": r[0], "at": r[1].isoformat(), "actor": r[2], "account_id": r[3], "action": r[4],
                 "detail": r[5]} for r in rows]

    # ---------------------------------------------------------------- SEP-8 style approval
    def rejected(message: str) -> JSONResponse:
        approvals.labels("rejected").inc()
        return JSONResponse({"status": "rejected", "error": message}, status_code=400)

    @app.post("/tx-approve", tags=["sep-8"], summary="Approve (co-sign or revise) a DLC transfer or stake offer",
              responses={400: {"description": "Rejected, with the reason"}})
    def tx_approve(c: Conn, body: ApproveIn) -> JSONResponse:
        try:
            env = TransactionEnvelope.from_xdr(body.tx, settings.network_passphrase)
        except Exception:  # the XDR decoder raises assorted exception types on garbage input
            return rejected("tx: not a base64 XDR transaction envelope")
        source = env.transaction.source.account_id
        if not env.signatures:
            return rejected(f"tx: not signed — sign it with the source account {source} first")
        if not signed_by(env, source):
            return rejected("tx: no valid signature of the source account for this network — wrong network "
                            f"passphrase? expected {settings.network_passphrase!r}")

        def kyc_of(account: str) -> tuple[str, int]:
            st = status_of(c, account)
            return st.status, st.strikes

        rules = Rules(dlc, max_amount, stake_base, penalty, settings.dlc.stake_account, kyc_of, chain.horizon)
        try:
            touched = rules.check(env.transaction)
        except Rejected as exc:
            return rejected(str(exc))
        except DlnetError as exc:
            raise ApiError(502, f"cannot check the transaction against Horizon: {exc}") from None
        if settings.dlc.approve_to == "maintain_liabilities":
            try:
                revised = sandwich(env, issuer, dlc, touched, settings.network_passphrase)
            except InputError as exc:
                return rejected(str(exc))
            audit(c, "approval-server", source, "tx_revised", tx_hash=revised.hash_hex(), authorized=touched)
            approvals.labels("revised").inc()
            return JSONResponse({"status": "revised", "tx": revised.to_xdr(),
                                 "message": f"authorized by the {dlc.code} issuer for this transaction only:"
                                            " sign it with the source account and submit it"})
        env.sign(issuer)
        audit(c, "approval-server", source, "tx_approved", tx_hash=env.hash_hex())
        approvals.labels("success").inc()
        return JSONResponse({"status": "success", "tx": env.to_xdr(),
                             "message": f"approved by the {dlc.code} issuer"})

    return app
