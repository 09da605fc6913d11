"""An in-memory IPFS double: `add` names bytes by the CIDv0 kubo would give them, `cat` serves them.

`tamper(cid, data)` makes it serve other bytes under a CID (a lying or corrupted node), for the tests
that check the market refuses them. Shared by several "nodes" through one `blocks` dict.
"""

from __future__ import annotations

from dlnet.errors import DlnetError
from dlnet.market.checkpoint import cid_of


class MemoryIpfs:
    def __init__(self, blocks: dict[str, bytes] | None = None) -> None:
        self.blocks = {} if blocks is None else blocks
        self.adds = 0
        self.cats = 0

    def add(self, data: bytes) -> str:
        self.adds += 1
        cid = cid_of(data)
        self.blocks.setdefault(cid, data)
        return cid

    def cat(self, cid: str) -> bytes:
        self.cats += 1
        if cid not in self.blocks:
            raise DlnetError(f"IPFS cat at memory: HTTP 500: block {cid} not found")
        return self.blocks[cid]

    def tamper(self, cid: str, data: bytes) -> None:
        self.blocks[cid] = data

    def node(self) -> MemoryIpfs:
        """Another node of the same swarm (same blocks)."""
        return MemoryIpfs(self.blocks)
