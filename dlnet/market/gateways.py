"""The market's way through the kit's participant services, when the network runs them.

- Compliance (dlnet/services/compliance.py): DLC is regulated (issuer flags AUTH_REQUIRED, AUTH_REVOCABLE;
  KYC-approved trustlines are authorized only to maintain liabilities), so the ledger refuses a partner's
  stake offer (`sell_not_authorized`) unless the compliance service wraps it in authorize -> offer ->
  back to maintain-liabilities (SEP-8 "revised", POST /tx-approve) after checking KYC and the stake its
  strikes require. `Compliance.approve` checks the revision (only our operations, wrapped) before signing.
- Bridge (dlnet/services/bridge.py): a validator's payment to an accepted partner is submitted by the
  bridge, which holds the validator's key: POST /path-payments (the partner receives the reward in XLM,
  the validator's VLM crossing the initiator's DLM/VLM and XLM/DLM offers, paper Fig. 3) and POST /payments
  (one VLM), each with an Idempotency-Key derived from the update's CID: a retried decision never pays
  twice. Without a bridge the validator sends one transaction itself (`DirectPayer`): its VLM buys the
  reward's DLM from the initiator's offer and sells it into the XLM offer, then it pays XLM and one VLM.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Protocol

import httpx
from stellar_sdk import Asset, Keypair, Price, TransactionEnvelope
from stellar_sdk.memo import HashMemo
from stellar_sdk.operation import ManageSellOffer, Payment

from dlnet.chain import DlnetError, InputError, SubmitFailed, Transactor, amount_text, asset_text, check_sandwich
from dlnet.market import checkpoint as ck
from dlnet.market.protocol import Market


class ServiceError(DlnetError):
    """A participant service unreachable or answering something unexpected."""


def _http(url: str, client: httpx.Client | None, timeout: float = 60.0) -> httpx.Client:
    return client or httpx.Client(base_url=url.rstrip("/"), timeout=timeout, trust_env=False)


class Compliance:
    """Client of the compliance service: SEP-10 login, KYC submission, SEP-8 style approval."""

    def __init__(self, url: str, passphrase: str, client: httpx.Client | None = None) -> None:
        self.url, self.passphrase = url.rstrip("/"), passphrase
        self.http = _http(url, client)

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, **kw: Any) -> httpx.Response:
        try:
            return self.http.post(path, **kw)
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"compliance service {self.url} unreachable ({type(exc).__name__}) — expected it"
                " running — check --compliance and `dlnet status`"
            ) from None

    def approve(self, env: TransactionEnvelope, dlc: Asset) -> TransactionEnvelope:
        """The transaction as the approval server revised (or co-signed) it, checked; InputError if refused."""
        r = self._post("/tx-approve", json={"tx": env.to_xdr()})
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code == 400 and body.get("status") == "rejected":
            raise InputError(f"refused by the compliance service: {body.get('error')}")
        if r.status_code != 200 or body.get("status") not in ("revised", "success"):
            raise ServiceError(f"compliance service /tx-approve answered HTTP {r.status_code}: {r.text[:200]}")
        revised = TransactionEnvelope.from_xdr(body["tx"], self.passphrase)
        if body["status"] == "revised":
            check_sandwich(env, revised, dlc)
        return revised

    def login(self, kp: Keypair) -> str:
        """SEP-10: a JWT for `kp`'s account."""
        try:
            ch = self.http.get("/auth", params={"account": kp.public_key})
        except httpx.HTTPError as exc:
            raise ServiceError(f"compliance service {self.url} unreachable ({type(exc).__name__})") from None
        if ch.status_code != 200:
            raise ServiceError(f"compliance /auth answered HTTP {ch.status_code}: {ch.text[:200]}")
        env = TransactionEnvelope.from_xdr(ch.json()["transaction"], self.passphrase)
        env.sign(kp)
        r = self._post("/auth", json={"transaction": env.to_xdr()})
        if r.status_code != 200:
            raise ServiceError(
                f"compliance SEP-10 login of {kp.public_key} refused: HTTP {r.status_code} {r.text[:200]}"
            )
        return str(r.json()["token"])

    def submit_kyc(self, kp: Keypair, fields: dict[str, str]) -> str:
        r = self._post("/kyc", json={"fields": fields}, headers={"Authorization": f"Bearer {self.login(kp)}"})
        if r.status_code not in (202, 409):
            raise ServiceError(f"compliance /kyc answered HTTP {r.status_code}: {r.text[:200]}")
        return str(r.json().get("status", "approved" if r.status_code == 409 else "pending"))

    def operator_approve(self, account: str, admin_token: str, operator: str = "dlnet-market") -> None:
        r = self._post(
            f"/admin/kyc/{account}/approve",
            json={"operator": operator, "reason": "market demo"},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        if r.status_code != 200 and "status is approved" not in r.text:
            raise ServiceError(f"compliance approval of {account} failed: HTTP {r.status_code} {r.text[:200]}")


# ---- paying accepted partners ---------------------------------------------------------------------------
class Payer(Protocol):
    def pay(self, market: Market, partner: str, cid: str) -> list[dict[str, Any]]: ...


def reward_ops(market: Market, partner: str) -> list[Any]:
    """The validator's VLM buys the reward's DLM from the initiator's offer, sells that DLM into the
    initiator's XLM offer (the offers cross), and pays the partner the XLM and one VLM."""
    m = market
    dlm = amount_text(m.reward_dlm)
    return [
        ManageSellOffer(m.vlm, m.dlm, dlm, Price(1, 1)),
        ManageSellOffer(m.dlm, Asset.native(), dlm, Price(m.xlm_per_dlm, 1)),
        Payment(partner, Asset.native(), amount_text(m.reward)),
        Payment(partner, m.vlm, "1"),
    ]


class DirectPayer:
    """No bridge: the validator signs and submits the payment itself, one transaction (reward_ops)."""

    via = "direct"

    def __init__(self, tx: Transactor, kp: Keypair) -> None:
        self.tx, self.kp = tx, kp

    def pay(self, market: Market, partner: str, cid: str) -> list[dict[str, Any]]:
        return [self.tx.run(self.kp, reward_ops(market, partner), memo=HashMemo(ck.cid_to_memo(cid)))]


class BridgePayer:
    """The kit's bridge holds the validator's key and submits; idempotent per (update, validator, leg)."""

    via = "bridge"

    def __init__(
        self, url: str, token: str, account: str, client: httpx.Client | None = None, settle_seconds: float = 60.0
    ) -> None:
        self.url, self.account = url.rstrip("/"), account
        self.http = _http(url, client)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.settle_seconds = settle_seconds
        held = self._call("GET", "/accounts")
        names = [a["name"] for a in held if a.get("account_id") == account]
        if not names:
            raise InputError(
                f"bridge {self.url} does not hold validator {account} — expected it among its accounts"
                f" ({', '.join(a.get('account_id', '')[:8] for a in held)}…) — add the validator's seed"
                " to the bridge's accounts, or run without --bridge"
            )
        self.name = names[0]

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, path, headers={**self.headers, **kw.pop("headers", {})}, **kw)
        except httpx.HTTPError as exc:
            raise ServiceError(f"bridge {self.url} unreachable ({type(exc).__name__}) — check --bridge") from None
        if r.status_code in (401, 403):
            raise ServiceError(
                f"bridge {self.url} refused the token (HTTP {r.status_code}) — check --bridge-token-file"
            )
        if method == "GET":
            if r.status_code != 200:
                raise ServiceError(f"bridge {path} answered HTTP {r.status_code}: {r.text[:200]}")
            return r.json()
        return r

    def _send(self, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST until the bridge settles it (200 or 409); the same Idempotency-Key, so at most one payment."""
        deadline = time.monotonic() + self.settle_seconds
        while True:
            r = self._call("POST", path, json=body, headers={"Idempotency-Key": key})
            out = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            if r.status_code == 200:
                return dict(out)
            if r.status_code == 409 and out.get("status") == "failed":
                raise SubmitFailed(
                    f"bridge payment {key} failed: {out.get('result_codes') or out.get('error')}",
                    out.get("result_codes") or {"transaction": "tx_failed"},
                )
            if r.status_code not in (202, 409) or time.monotonic() > deadline:
                raise ServiceError(
                    f"bridge {path} answered HTTP {r.status_code}: {r.text[:200]} — retrying with"
                    f" the same decision is safe (Idempotency-Key {key})"
                )
            time.sleep(1.0)  # submitted, outcome not known yet (or in progress): ask again

    def pay(self, market: Market, partner: str, cid: str) -> list[dict[str, Any]]:
        m = market
        memo = {"type": "hash", "value": ck.cid_to_memo(cid).hex()}
        key = f"market:{cid}:{self.account[:12]}"
        xlm = self._send(
            "/path-payments",
            key + ":xlm",
            {
                "source": self.name,
                "destination": partner,
                "asset": "native",
                "amount": amount_text(m.reward),
                "send_asset": asset_text(m.vlm),
                "send_max": amount_text(m.reward_dlm),
                "path": [asset_text(m.dlm)],
                "memo": memo,
            },
        )
        vlm = self._send(
            "/payments",
            key + ":vlm",
            {"source": self.name, "destination": partner, "asset": asset_text(m.vlm), "amount": "1", "memo": memo},
        )
        return [{"hash": x["tx_hash"], "ledger": x.get("ledger")} for x in (xlm, vlm)]


__all__ = ["BridgePayer", "Compliance", "Decimal", "DirectPayer", "Payer", "ServiceError", "reward_ops"]
