"""Authentication shared by the services.

- Admin/operator API: a bearer token read from a file, compared in constant time.
- SEP-10 (compliance): challenge transactions built and verified by stellar-sdk's own SEP-10 code,
  then a short-lived HS256 JWT whose `sub` is the account.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt
from fastapi import Request
from stellar_sdk import Keypair, StrKey, TransactionEnvelope
from stellar_sdk.exceptions import SdkError
from stellar_sdk.sep import stellar_web_authentication as sep10
from stellar_sdk.sep.ed25519_public_key_signer import Ed25519PublicKeySigner
from stellar_sdk.sep.exceptions import InvalidSep10ChallengeError

from dlnet.services.web import ApiError


class AdminToken:
    def __init__(self, token: str) -> None:
        if len(token) < 16:
            raise ValueError("admin token too short: expected at least 16 characters")
        self._digest = hashlib.sha256(token.encode()).digest()

    def check(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise ApiError(401, "missing bearer token — send Authorization: Bearer <admin token>",
                           headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(hashlib.sha256(value.strip().encode()).digest(), self._digest):
            raise ApiError(403, "invalid admin token")


def check_account(value: str, what: str = "account") -> str:
    if not isinstance(value, str) or not StrKey.is_valid_ed25519_public_key(value):
        shown = value if isinstance(value, str) and len(value) <= 80 else "(too long)"
        raise ApiError(400, f"{what}: expected a Stellar account id (G..., 56 characters), got {shown!r}")
    return value


class Sep10:
    """Challenge/response authentication (SEP-10) for one home domain."""

    def __init__(self, signing: Keypair, jwt_secret: str, home_domain: str, web_auth_domain: str,
                 passphrase: str, challenge_timeout: int, jwt_ttl: int, issuer_url: str,
                 account_lookup: Callable[[str], dict[str, Any] | None] | None = None) -> None:
        # account_lookup (Horizon): an existing account must be signed for by its signers up to its
        # medium threshold (SEP-10); an account not on the ledger yet, by its master key.
        self.lookup = account_lookup
        self.signing, self.secret = signing, jwt_secret
        self.home_domain, self.web_auth_domain = home_domain, web_auth_domain
        self.passphrase, self.timeout, self.ttl, self.issuer_url = passphrase, challenge_timeout, jwt_ttl, issuer_url

    def challenge(self, account: str, home_domain: str | None) -> str:
        check_account(account)
        if home_domain is not None and home_domain != self.home_domain:
            raise ApiError(400, f"home_domain: expected {self.home_domain!r}, got {home_domain[:100]!r}")
        return sep10.build_challenge_transaction(
            server_secret=self.signing.secret, client_account_id=account, home_domain=self.home_domain,
            web_auth_domain=self.web_auth_domain, network_passphrase=self.passphrase, timeout=self.timeout,
        )

    def verify(self, envelope: str) -> str:
        """The authenticated account of a signed challenge, or a 400/401 saying why not."""
        try:
            TransactionEnvelope.from_xdr(envelope, self.passphrase)
        except Exception:  # the XDR decoder raises EOFError, ValueError, ... on garbage
            raise ApiError(400, "transaction: not a base64 XDR transaction envelope") from None
        try:
            challenge = sep10.read_challenge_transaction(
                envelope, self.signing.public_key, self.home_domain, self.web_auth_domain, self.passphrase)
        except InvalidSep10ChallengeError as exc:
            raise ApiError(400, f"invalid challenge: {_short(exc)}") from None
        except (SdkError, ValueError, TypeError) as exc:
            raise ApiError(400, f"transaction: not a challenge transaction envelope ({type(exc).__name__}) — "
                                "expected base64 XDR signed for this network") from None
        client = str(challenge.client_account_id)
        account = self.lookup(client) if self.lookup is not None else None
        try:
            if account is None:
                sep10.verify_challenge_transaction_signed_by_client_master_key(
                    envelope, self.signing.public_key, self.home_domain, self.web_auth_domain, self.passphrase)
            else:
                signers = [Ed25519PublicKeySigner(s["key"], int(s["weight"])) for s in account.get("signers", [])
                           if s.get("type") == "ed25519_public_key" and int(s.get("weight", 0)) > 0]
                threshold = int(account.get("thresholds", {}).get("med_threshold", 0))
                sep10.verify_challenge_transaction_threshold(
                    envelope, self.signing.public_key, self.home_domain, self.web_auth_domain, self.passphrase,
                    threshold, signers)
        except InvalidSep10ChallengeError as exc:
            raise ApiError(401, f"challenge not signed by {challenge.client_account_id}: {_short(exc)}") from None
        except (SdkError, ValueError, TypeError) as exc:
            raise ApiError(400, f"invalid challenge ({type(exc).__name__})") from None
        return str(challenge.client_account_id)

    def token(self, account: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer_url, "sub": account, "iat": now, "exp": now + self.ttl,
                  "jti": secrets.token_hex(8)}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def account_of(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise ApiError(401, "missing SEP-10 token — authenticate at /auth, then send "
                                "Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
        try:
            claims: dict[str, Any] = jwt.decode(value.strip(), self.secret, algorithms=["HS256"],
                                                options={"require": ["sub", "exp", "iat"]}, issuer=self.issuer_url)
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "SEP-10 token expired — authenticate again at /auth") from None
        except jwt.PyJWTError:
            raise ApiError(401, "invalid SEP-10 token") from None
        return check_account(str(claims["sub"]), "token subject")


def _short(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
