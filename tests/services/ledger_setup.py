"""Set up accounts, the regulated DLC and trustlines on a Horizon (double or real) for service tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stellar_sdk import Asset, AuthorizationFlag, Keypair, Server, TransactionBuilder
from stellar_sdk.exceptions import BadRequestError


def root_keypair(passphrase: str) -> Keypair:
    import hashlib

    return Keypair.from_raw_ed25519_seed(hashlib.sha256(passphrase.encode()).digest())


class Net:
    def __init__(self, url: str, passphrase: str, funder: Keypair | None = None) -> None:
        """funder: the account that pays for new accounts; the root by default (the doubles). On a network
        `make up` deployed, the root is locked and the kit's funder (secrets/funder.seed) pays."""
        self.url, self.passphrase = url, passphrase
        self.server = Server(url)
        self.root = funder or root_keypair(passphrase)

    def tx(self, source: Keypair, ops: Callable[[TransactionBuilder], Any], *signers: Keypair) -> dict[str, Any]:
        acc = self.server.load_account(source.public_key)
        b = TransactionBuilder(acc, self.passphrase, base_fee=100).set_timeout(60)
        ops(b)
        t = b.build()
        for k in (source, *signers):
            t.sign(k)
        return dict(self.server.submit_transaction(t))

    def try_tx(self, source: Keypair, ops: Callable[[TransactionBuilder], Any]) -> dict[str, Any]:
        """The result codes of a transaction expected to fail (or {'ok': hash})."""
        try:
            return {"ok": self.tx(source, ops)["hash"]}
        except BadRequestError as exc:
            return dict(exc.extras.get("result_codes", {})) if exc.extras else {"error": exc.title}

    def fund(self, *kps: Keypair, amount: str = "1000") -> None:
        def ops(b: TransactionBuilder) -> None:
            for k in kps:
                b.append_create_account_op(k.public_key, amount)
        self.tx(self.root, ops)

    def regulated_asset(self, code: str = "DLC") -> tuple[Keypair, Asset]:
        issuer = Keypair.random()
        self.fund(issuer)
        flags = AuthorizationFlag.AUTHORIZATION_REQUIRED | AuthorizationFlag.AUTHORIZATION_REVOCABLE | \
            AuthorizationFlag.AUTHORIZATION_CLAWBACK_ENABLED
        self.tx(issuer, lambda b: b.append_set_options_op(set_flags=flags))
        return issuer, Asset(code, issuer.public_key)

    def trust(self, kp: Keypair, asset: Asset) -> None:
        self.tx(kp, lambda b: b.append_change_trust_op(asset))

    def line(self, account: str, asset: Asset) -> dict[str, Any] | None:
        acc = self.server.accounts().account_id(account).call()
        return next((b for b in acc["balances"] if b.get("asset_code") == asset.code
                     and b.get("asset_issuer") == asset.issuer), None)

    def native_balance(self, account: str) -> str:
        acc = self.server.accounts().account_id(account).call()
        return next(b["balance"] for b in acc["balances"] if b["asset_type"] == "native")
