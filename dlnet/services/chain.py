"""Transactions on the network through Horizon (stellar-sdk's sync Server): build, sign, submit.

Failures become ChainError carrying Horizon's result codes, so callers answer 4xx/502 with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from stellar_sdk import Asset, Keypair, Network, Server, TransactionBuilder, TrustLineFlags
from stellar_sdk import exceptions as sx
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.transaction_envelope import TransactionEnvelope


class ChainError(Exception):
    """A transaction or query failed; `codes` are Horizon's result codes when it got that far."""

    def __init__(self, message: str, codes: dict[str, Any] | None = None, status: int = 502) -> None:
        super().__init__(message)
        self.codes = codes or {}
        self.status = status


class Chain:
    def __init__(self, horizon_url: str, passphrase: str, base_fee: int = 100, timeout: int = 30) -> None:
        # No transport-level retries: an ambiguous submission is settled by the caller (by hash), never
        # hidden behind an automatic re-POST.
        self.server = Server(horizon_url, client=RequestsClient(num_retries=0, request_timeout=timeout,
                                                                post_timeout=timeout + 30))
        self.passphrase = passphrase
        self.base_fee = base_fee
        self.timeout = timeout

    def check_network(self, logger: Any = None) -> None:
        """Refuse to start against a Horizon of another network; only warn when it cannot be reached."""
        try:
            served = self.server.root().call().get("network_passphrase")
        except sx.SdkError as exc:
            if logger is not None:
                logger.warning("horizon unreachable at start; network passphrase not checked",
                               extra={"fields": {"error": type(exc).__name__}})
            return
        if served is not None and served != self.passphrase:
            from dlnet.errors import DlnetError

            raise DlnetError(f"wrong network: Horizon serves {served!r}, the config says {self.passphrase!r} — "
                             "fix network_passphrase or horizon_url")

    def account(self, account_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.server.accounts().account_id(account_id).call())
        except sx.NotFoundError:
            return None
        except sx.SdkError as exc:
            raise ChainError(f"Horizon account lookup failed: {type(exc).__name__}") from None

    def trustline(self, account_id: str, asset: Asset) -> dict[str, Any] | None:
        acc = self.account(account_id)
        if acc is None:
            return None
        for b in acc.get("balances", []):
            if b.get("asset_code") == asset.code and b.get("asset_issuer") == asset.issuer:
                return dict(b)
        return None

    def build(self, source: Keypair, add_ops: Callable[[TransactionBuilder], Any],
              memo: Any = None) -> TransactionEnvelope:
        try:
            src = self.server.load_account(source.public_key)
        except sx.NotFoundError:
            raise ChainError(f"source account {source.public_key} does not exist on the network", status=409) from None
        except sx.SdkError as exc:
            raise ChainError(f"Horizon unreachable while loading {source.public_key}: {type(exc).__name__}") from None
        builder = TransactionBuilder(src, self.passphrase, base_fee=self.base_fee).set_timeout(self.timeout)
        if memo is not None:
            builder.add_memo(memo)
        add_ops(builder)
        tx = builder.build()
        tx.sign(source)
        return tx

    def submit(self, envelope: TransactionEnvelope | str) -> dict[str, Any]:
        try:
            return dict(self.server.submit_transaction(envelope))
        except sx.BadRequestError as exc:
            extras = (exc.extras or {}) if hasattr(exc, "extras") else {}
            codes = extras.get("result_codes", {})
            raise ChainError(f"transaction refused: {codes or exc.title}", codes, status=409) from None
        except sx.BadResponseError as exc:
            raise ChainError(f"Horizon answered {exc.status}: {exc.title}", status=502) from None
        except sx.SdkError as exc:
            raise ChainError(f"Horizon unreachable: {type(exc).__name__}", status=502) from None

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            return dict(self.server.transactions().transaction(tx_hash).call())
        except sx.NotFoundError:
            return None
        except sx.SdkError as exc:
            raise ChainError(f"Horizon transaction lookup failed: {type(exc).__name__}") from None

    def authorize(self, issuer: Keypair, trustor: str, asset: Asset, authorized: bool) -> str:
        """Set (or clear) the trustline's AUTHORIZED flag; clearing also clears MAINTAIN_LIABILITIES."""
        full = TrustLineFlags.AUTHORIZED_FLAG | TrustLineFlags.AUTHORIZED_TO_MAINTAIN_LIABILITIES_FLAG

        def ops(b: TransactionBuilder) -> None:
            if authorized:
                b.append_set_trust_line_flags_op(trustor, asset, clear_flags=None,
                                                 set_flags=TrustLineFlags.AUTHORIZED_FLAG)
            else:
                b.append_set_trust_line_flags_op(trustor, asset, clear_flags=full, set_flags=None)

        return str(self.submit(self.build(issuer, ops))["hash"])

    def clawback(self, issuer: Keypair, holder: str, asset: Asset, amount: Decimal) -> str:
        tx = self.build(issuer, lambda b: b.append_clawback_op(asset, holder, str(amount)))
        return str(self.submit(tx)["hash"])


__all__ = ["Asset", "Chain", "ChainError", "Network"]
