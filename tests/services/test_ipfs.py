"""dlnet.ipfs against a real two-node kubo private swarm, and the CID <-> MEMO_HASH mapping."""

from __future__ import annotations

import hashlib
import secrets

import httpx
import pytest

from dlnet.errors import DlnetError
from dlnet.ipfs import Ipfs, b58decode, b58encode, cid_to_memo_hash, memo_hash_to_cid


def test_base58_round_trip():
    for data in (b"", b"\0\0abc", secrets.token_bytes(34)):
        assert b58decode(b58encode(data)) == data


def test_cid_memo_hash_round_trip():
    digest = hashlib.sha256(b"x").digest()
    cid = memo_hash_to_cid(digest)
    assert cid.startswith("Qm") and len(cid) == 46
    assert cid_to_memo_hash(cid) == digest
    with pytest.raises(DlnetError, match="CIDv0"):
        cid_to_memo_hash("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
    with pytest.raises(DlnetError, match="32 bytes"):
        memo_hash_to_cid(b"short")


def test_add_on_one_node_cat_on_the_other(kubo_swarm):
    a, b = Ipfs(kubo_swarm[0]), Ipfs(kubo_swarm[1])
    data = secrets.token_bytes(3000)
    cid = a.add(data)
    assert cid.startswith("Qm")
    assert memo_hash_to_cid(cid_to_memo_hash(cid)) == cid
    assert b.cat(cid) == data  # fetched across the private swarm
    assert a.peers() and b.peers()


def test_rpc_errors_are_clear(kubo_swarm):
    with pytest.raises(DlnetError, match="HTTP 500"):
        Ipfs(kubo_swarm[0]).cat("not-a-cid")
    with pytest.raises(DlnetError, match="is the kubo daemon running"):
        Ipfs("http://127.0.0.1:9", client=httpx.Client(timeout=1)).id()
