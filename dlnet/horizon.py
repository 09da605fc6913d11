"""Thin Horizon client for the day-2 verbs: read accounts, submit transactions safely.

Submission is synchronous (`POST /transactions`) with our own retries, because a transaction is only
safe to resend unchanged: on 503 (stellar-core's TRY_AGAIN_LATER) the same envelope is resent after a
pause; on 504 or a client timeout the transaction may still apply, so its hash is looked up first and the
same envelope (same sequence number: it can apply at most once) is resent only if Horizon does not know it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from dlnet.errors import DlnetError


class HorizonError(DlnetError):
    """Horizon unreachable or answering something unexpected."""


class SubmitFailed(DlnetError):
    def __init__(self, message: str, codes: dict[str, Any]) -> None:
        super().__init__(message)
        self.codes = codes

    @property
    def tx_code(self) -> str:
        return str(self.codes.get("transaction", ""))


class Horizon:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), trust_env=False)

    def close(self) -> None:
        self.client.close()

    def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        try:
            return self.client.get(self.url + path, params=params)
        except httpx.TransportError as exc:
            raise HorizonError(
                f"Horizon {self.url}{path} unreachable ({type(exc).__name__}) — expected Horizon running — check"
                " `dlnet status` and horizon_port in the inventory"
            ) from None

    def root(self) -> dict[str, Any]:
        resp = self._get("/")
        try:
            body = resp.json()
            if resp.status_code != 200 or "network_passphrase" not in body:
                raise ValueError
            return dict(body)
        except ValueError:
            raise HorizonError(
                f"{self.url}/ answered HTTP {resp.status_code} without network_passphrase — expected"
                " Horizon's root resource — is horizon_port right?"
            ) from None

    def account(self, account_id: str) -> dict[str, Any] | None:
        resp = self._get(f"/accounts/{account_id}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise HorizonError(f"Horizon /accounts/{account_id} answered HTTP {resp.status_code}: {resp.text[:200]}")
        return dict(resp.json())

    def latest_ledger(self) -> dict[str, Any]:
        resp = self._get("/ledgers", {"order": "desc", "limit": "1"})
        try:
            return dict(resp.json()["_embedded"]["records"][0])
        except (ValueError, KeyError, IndexError):
            raise HorizonError(f"Horizon /ledgers answered HTTP {resp.status_code} without records") from None

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        resp = self._get(f"/transactions/{tx_hash}")
        return dict(resp.json()) if resp.status_code == 200 else None

    def submit(
        self, envelope_xdr: str, tx_hash: str, progress: Callable[[str], None] = lambda _m: None
    ) -> dict[str, Any]:
        """Submit until Horizon gives a verdict; return the applied record or raise SubmitFailed/HorizonError."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
                known = self.transaction(tx_hash)
                if known is not None:
                    return self._verdict(known)
            try:
                resp = self.client.post(self.url + "/transactions", data={"tx": envelope_xdr})
            except httpx.TimeoutException:
                last = "client timeout"
                progress(f"horizon: no answer for {tx_hash[:12]}… (timeout), checking and resending")
                continue
            except httpx.TransportError as exc:
                raise HorizonError(
                    f"Horizon {self.url} unreachable while submitting ({type(exc).__name__}) —"
                    " check `dlnet status`; re-running is safe"
                ) from None
            if resp.status_code == 200:
                return dict(resp.json())
            if resp.status_code in (503, 504):
                last = f"HTTP {resp.status_code}"
                progress(
                    f"horizon: {'TRY_AGAIN_LATER' if resp.status_code == 503 else 'timeout'} for"
                    f" {tx_hash[:12]}…, retrying ({attempt + 1}/{self.retries})"
                )
                continue
            try:
                body = resp.json()
            except ValueError:
                body = {}
            codes = (body.get("extras") or {}).get("result_codes")
            if codes:
                raise SubmitFailed(f"transaction {tx_hash[:12]}… failed: {codes}", codes)
            raise HorizonError(
                f"Horizon refused the transaction: HTTP {resp.status_code} {body.get('title', '')}"
                f" {body.get('detail', '')[:200]}"
            )
        raise HorizonError(
            f"transaction {tx_hash[:12]}… got no verdict after {self.retries + 1} attempts ({last}) —"
            " the network may be stalled: check `dlnet status`; re-running is safe"
        )

    @staticmethod
    def _verdict(record: dict[str, Any]) -> dict[str, Any]:
        if record.get("successful"):
            return record
        codes = record.get("result_codes") or {"transaction": "tx_failed"}
        raise SubmitFailed(f"transaction {str(record.get('hash', ''))[:12]}… failed: {codes}", codes)
