"""stellar-core HTTP admin client (the validator's localhost-only admin port).

Shaped by the recorded 19.14 responses (shared/reference/stellar-core-19.14/): every answer is HTTP 200,
errors included (plain text such as "could not parse upgradetime: ..." or JSON `{"exception": ...}`), so
bodies are checked, not status codes. `upgrades?mode=set` succeeds with an empty body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from dlnet.errors import DlnetError

# upgrades?mode=set parameter -> upgrades?mode=get key -> info.ledger key
PARAMS = {
    "protocolversion": ("version", "version"),
    "basefee": ("fee", "baseFee"),
    "basereserve": ("reserve", "baseReserve"),
    "maxtxsetsize": ("maxtxsize", "maxTxSetSize"),
}


class CoreAdminError(DlnetError):
    """A validator's admin endpoint could not be used (down, timed out, refused, answered nonsense)."""


@dataclass(frozen=True)
class Ledger:
    num: int
    close_time: int
    version: int
    base_fee: int
    base_reserve: int
    max_tx_set_size: int
    age: int
    hash: str

    def value(self, param: str) -> int:
        return int(
            getattr(
                self,
                {
                    "protocolversion": "version",
                    "basefee": "base_fee",
                    "basereserve": "base_reserve",
                    "maxtxsetsize": "max_tx_set_size",
                }[param],
            )
        )


@dataclass(frozen=True)
class Info:
    state: str
    ledger: Ledger
    protocol_max: int  # the highest protocol the binary supports (info.protocol_version)
    network: str
    peers: int
    qset: dict[str, Any] = field(default_factory=dict)
    intersection: bool | None = None
    status: tuple[str, ...] = ()

    @property
    def synced(self) -> bool:
        return self.state == "Synced!"


@dataclass(frozen=True)
class Armed:
    time: int
    values: dict[str, int]  # set-parameter name -> value

    @property
    def empty(self) -> bool:
        return not self.values


class CoreAdmin:
    def __init__(
        self, name: str, url: str, *, timeout: float = 2.0, client: httpx.Client | None = None
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout), trust_env=False)

    def close(self) -> None:
        self._client.close()

    def _get(self, command: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return self._client.get(f"{self.url}/{command}", params=params, timeout=self.timeout)
        except httpx.TimeoutException:
            raise CoreAdminError(
                f"{self.name}: {self.url}/{command} did not answer within {self.timeout:g}s"
                f" — expected a running"
                f" stellar-core — check the validator (make status) or raise dlnet_admin_timeout_seconds"
            ) from None
        except httpx.TransportError as exc:
            raise CoreAdminError(
                f"{self.name}: cannot reach {self.url}/{command} ({type(exc).__name__})"
                f" — expected stellar-core's"
                f" admin port to listen there — check the validator is running and stellar_core_http_port"
            ) from None

    def _json(self, command: str, params: dict[str, Any] | None = None) -> Any:
        resp = self._get(command, params)
        try:
            body = resp.json()
        except json.JSONDecodeError:
            raise CoreAdminError(
                f"{self.name}: {command} answered HTTP {resp.status_code} {resp.text[:120]!r}"
                f" — expected JSON from"
                f" stellar-core — is {self.url} really a stellar-core admin port?"
            ) from None
        if isinstance(body, dict) and "exception" in body:
            raise CoreAdminError(f"{self.name}: {command} failed: {body['exception']}")
        return body

    def info(self) -> Info:
        body = self._json("info")
        try:
            info = body["info"]
            lg = info["ledger"]
            ledger = Ledger(
                int(lg["num"]),
                int(lg["closeTime"]),
                int(lg["version"]),
                int(lg["baseFee"]),
                int(lg["baseReserve"]),
                int(lg["maxTxSetSize"]),
                int(lg.get("age", 0)),
                str(lg.get("hash", "")),
            )
            quorum = info.get("quorum") or {}
            transitive = quorum.get("transitive") or {}
            return Info(
                state=str(info["state"]),
                ledger=ledger,
                protocol_max=int(info["protocol_version"]),
                network=str(info.get("network", "")),
                peers=int((info.get("peers") or {}).get("authenticated_count", 0)),
                qset=dict(quorum.get("qset") or {}),
                intersection=transitive.get("intersection"),
                status=tuple(info.get("status") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CoreAdminError(
                f"{self.name}: info lacks {exc} — expected stellar-core's info document (19.x or later)"
            ) from None

    def upgrades_get(self) -> Armed:
        body = self._json("upgrades", {"mode": "get"})
        values: dict[str, int] = {}
        for param, (key, _) in PARAMS.items():
            slot = body.get(key) or {}
            if slot.get("nullopt") is False:
                values[param] = int(slot["data"])
        return Armed(int(body.get("time", 0)), values)

    def upgrades_set(self, when: datetime, values: dict[str, int]) -> None:
        params: dict[str, Any] = {"mode": "set", "upgradetime": iso(when), **values}
        resp = self._get("upgrades", params)
        text = resp.text.strip()
        if resp.status_code != 200 or text:
            try:
                body = json.loads(text)
                reason = body.get("exception", text) if isinstance(body, dict) else text
            except json.JSONDecodeError:
                reason = text
            raise CoreAdminError(f"{self.name}: refused the upgrade: {reason or f'HTTP {resp.status_code}'}")

    def upgrades_clear(self) -> None:
        resp = self._get("upgrades", {"mode": "clear"})
        if resp.text.strip():
            raise CoreAdminError(f"{self.name}: could not clear armed upgrades: {resp.text.strip()[:200]}")

    def metrics(self) -> dict[str, Any]:
        body = self._json("metrics")
        return dict(body.get("metrics") or {})


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def armed_from_status(status: tuple[str, ...]) -> dict[str, int]:
    """Upgrades a node is armed with, from info.status ("Armed with network upgrades: ...=N, ...")."""
    out: dict[str, int] = {}
    for line in status:
        if not line.startswith("Armed with network upgrades:"):
            continue
        for part in line.split(":", 1)[1].split(","):
            key, _, value = part.strip().partition("=")
            if key in PARAMS and value.strip().isdigit():
                out[key] = int(value)
    return out
