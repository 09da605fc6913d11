"""The services' view of the shared chain layer (dlnet/chain.py): build, sign, submit; HTTP-status errors.

Failures become ChainError carrying Horizon's result codes and the HTTP status a service should answer
(409: the network refused; 502: Horizon unreachable or rate-limiting past the retries), so callers answer
4xx/502 with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from stellar_sdk import Asset, Keypair, Network, TransactionBuilder, TrustLineFlags
from stellar_sdk.transaction_envelope import TransactionEnvelope

from dlnet.chain import Horizon, HorizonError, SubmitFailed, Transactor, balance
from dlnet.errors import DlnetError


class ChainError(Exception):
    """A transaction or query failed; `codes` are Horizon's result codes when it got that far."""

    def __init__(self, message: str, codes: dict[str, Any] | None = None, status: int = 502) -> None:
        super().__init__(message)
        self.codes = codes or {}
        self.status = status


class Chain:
    def __init__(self, horizon_url: str, passphrase: str, base_fee: int = 100, timeout: int = 30) -> None:
        # Submissions are resent only unchanged (same envelope) by the shared client; an ambiguous outcome
        # (timeout) is reported to the caller, who settles it by hash.
        self.horizon = Horizon(horizon_url, timeout=timeout + 30, retries=4, max_wait=10)
        self.tx = Transactor(self.horizon, passphrase, base_fee=base_fee, timeout=timeout)
        self.passphrase = passphrase
        self.base_fee = base_fee
        self.timeout = timeout

    def check_network(self, logger: Any = None) -> None:
        """Refuse to start against a Horizon of another network; only warn when it cannot be reached."""
        try:
            served = self.horizon.root().get("network_passphrase")
        except DlnetError as exc:
            if logger is not None:
                logger.warning("horizon unreachable at start; network passphrase not checked",
                               extra={"fields": {"error": type(exc).__name__}})
            return
        if served is not None and served != self.passphrase:
            raise DlnetError(f"wrong network: Horizon serves {served!r}, the config says {self.passphrase!r} — "
                             "fix network_passphrase or horizon_url")

    def account(self, account_id: str) -> dict[str, Any] | None:
        try:
            return self.horizon.account(account_id)
        except DlnetError as exc:
            raise ChainError(f"Horizon account lookup failed: {exc}") from None

    def trustline(self, account_id: str, asset: Asset) -> dict[str, Any] | None:
        acc = self.account(account_id)
        return None if acc is None else balance(acc, asset)

    def build(self, source: Keypair, add_ops: Callable[[TransactionBuilder], Any],
              memo: Any = None) -> TransactionEnvelope:
        acc = self.account(source.public_key)
        if acc is None:
            raise ChainError(f"source account {source.public_key} does not exist on the network", status=409)
        return self.tx.build(source, add_ops, memo=memo, sequence=int(acc["sequence"]))

    def submit(self, envelope: TransactionEnvelope | str) -> dict[str, Any]:
        if isinstance(envelope, str):
            envelope = TransactionEnvelope.from_xdr(envelope, self.passphrase)
        try:
            return self.horizon.submit(envelope.to_xdr(), envelope.hash_hex(), settle=False)
        except SubmitFailed as exc:
            raise ChainError(f"transaction refused: {exc.codes}", exc.codes, status=409) from None
        except HorizonError as exc:
            raise ChainError(f"Horizon: {exc}", status=502) from None
        except Exception as exc:  # timeouts: the outcome is unknown, the caller settles it by hash
            raise ChainError(f"Horizon unreachable: {type(exc).__name__}", status=502) from None

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            return self.horizon.transaction(tx_hash)
        except DlnetError as exc:
            raise ChainError(f"Horizon transaction lookup failed: {exc}") from None

    def authorize(self, issuer: Keypair, trustor: str, asset: Asset, authorized: bool,
                  maintain_only: bool = False) -> str:
        """Set (or clear) the trustline's AUTHORIZED flag; clearing also clears MAINTAIN_LIABILITIES.
        `maintain_only`: authorize only to maintain liabilities (regulated: each transfer is authorized
        for its own transaction by the approval server)."""
        full = TrustLineFlags.AUTHORIZED_FLAG | TrustLineFlags.AUTHORIZED_TO_MAINTAIN_LIABILITIES_FLAG

        def ops(b: TransactionBuilder) -> None:
            if authorized and maintain_only:
                b.append_set_trust_line_flags_op(
                    trustor, asset, clear_flags=TrustLineFlags.AUTHORIZED_FLAG,
                    set_flags=TrustLineFlags.AUTHORIZED_TO_MAINTAIN_LIABILITIES_FLAG)
            elif authorized:
                b.append_set_trust_line_flags_op(trustor, asset, clear_flags=None,
                                                 set_flags=TrustLineFlags.AUTHORIZED_FLAG)
            else:
                b.append_set_trust_line_flags_op(trustor, asset, clear_flags=full, set_flags=None)

        return str(self.submit(self.build(issuer, ops))["hash"])

    def clawback(self, issuer: Keypair, holder: str, asset: Asset, amount: Decimal) -> str:
        tx = self.build(issuer, lambda b: b.append_clawback_op(asset, holder, str(amount)))
        return str(self.submit(tx)["hash"])


__all__ = ["Asset", "Chain", "ChainError", "Network"]
