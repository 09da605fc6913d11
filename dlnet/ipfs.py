"""kubo (IPFS) RPC client over httpx, and the CIDv0 <-> 32-byte MEMO_HASH mapping (facts.md item 11).

The RPC API is POST-only and must only listen on localhost / the private network. `add` forces
`cid-version=0` so every CID fits a Stellar MEMO_HASH: CIDv0 = base58(0x12 0x20 + sha256 digest of the
root dag-pb node); the memo holds the 32 digest bytes and the CID is rebuilt by prefixing 0x1220.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from dlnet.errors import DlnetError

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_MULTIHASH_SHA256 = b"\x12\x20"


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + out


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise ValueError(f"not base58: character {c!r}")
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


def cid_to_memo_hash(cid: str) -> bytes:
    """The 32 bytes to put in a MEMO_HASH for a CIDv0 (Qm..., 46 characters)."""
    try:
        raw = b58decode(cid)
    except ValueError as exc:
        raise DlnetError(f"CID {cid[:60]!r} is not base58 ({exc}) — expected a CIDv0 such as Qm...") from None
    if len(raw) != 34 or raw[:2] != _MULTIHASH_SHA256:
        raise DlnetError(f"CID {cid[:60]!r} is not a CIDv0 (sha2-256 multihash, 34 bytes) — add with cid-version=0")
    return raw[2:]


def memo_hash_to_cid(memo: bytes) -> str:
    if len(memo) != 32:
        raise DlnetError(f"MEMO_HASH must be 32 bytes, got {len(memo)}")
    return b58encode(_MULTIHASH_SHA256 + memo)


class Ipfs:
    """A few kubo RPC calls (`/api/v0/...`); errors become DlnetError naming the call and the node."""

    def __init__(self, api_url: str, timeout: float = 30.0, client: httpx.Client | None = None) -> None:
        self.base = api_url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def _post(self, call: str, params: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        try:
            r = self._client.post(f"{self.base}/api/v0/{call}", params=params, **kw)
        except httpx.HTTPError as exc:
            raise DlnetError(
                f"IPFS {call} at {self.base}: {type(exc).__name__} — is the kubo daemon running?") from None
        if r.status_code != 200:
            try:
                detail = r.json().get("Message", "")
            except ValueError:
                detail = r.text[:200]
            raise DlnetError(f"IPFS {call} at {self.base}: HTTP {r.status_code}: {detail}")
        return r

    def add(self, data: bytes, pin: bool = True) -> str:
        """Store bytes; return their CIDv0."""
        r = self._post("add", {"cid-version": "0", "pin": str(pin).lower(), "quieter": "true"},
                       files={"file": ("blob", data, "application/octet-stream")})
        lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]
        return str(lines[-1]["Hash"])

    def cat(self, cid: str, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        r = self._post("cat", {"arg": cid, "length": str(max_bytes)})
        return r.content

    def pin_add(self, cid: str) -> None:
        """Pin a CID on this node, fetching its blocks from the swarm first (blocks until it has them)."""
        self._post("pin/add", {"arg": cid})

    def pin_rm(self, cid: str) -> None:
        self._post("pin/rm", {"arg": cid})

    def id(self) -> dict[str, Any]:
        return dict(self._post("id").json())

    def peers(self) -> list[str]:
        return [p["Peer"] for p in (self._post("swarm/peers").json().get("Peers") or [])]
