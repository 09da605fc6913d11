"""Model checkpoints: safetensors bytes, their IPFS CIDv0, and the 32-byte MEMO_HASH that names them.

A checkpoint is a safetensors file (float32 tensors plus string metadata: model, round, sample count,
parent CID). Its CID is computed here exactly as kubo's `ipfs add --cid-version=0` does (UnixFS file,
256 KiB chunks, dag-pb nodes, balanced layout, sha2-256), so whoever downloads bytes by a CID checks
them locally against the memo without trusting the IPFS node that served them: bytes changed after the
CID was recorded are refused as tampered.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import TYPE_CHECKING, Any

from dlnet.chain import InputError
from dlnet.ipfs import b58encode, cid_to_memo_hash, memo_hash_to_cid

CHUNK = 256 * 1024  # kubo's default chunker size-262144
MAX_LINKS = 174  # kubo's balanced layout: links per node
MAX_CHECKPOINT = 64 * 1024 * 1024

if TYPE_CHECKING:
    import numpy as np

Params = dict[str, "np.ndarray"]  # numpy is imported where tensors are handled: the CID and memo helpers
# also serve the compliance service's image, which ships no numpy


class CheckpointError(InputError):
    """A checkpoint that is not what its CID or its model says (tampered, malformed, wrong shapes)."""


# ---- safetensors -----------------------------------------------------------------------------------
def dumps(params: Params, metadata: dict[str, Any] | None = None) -> bytes:
    """Serialize float32 tensors and string metadata to safetensors bytes, deterministically (the same
    parameters always give the same bytes, hence the same CID): the safetensors layout written with sorted
    keys — the library's own writer orders the metadata by hash. Read back by the library (`loads`)."""
    import numpy as np

    meta = {str(k): str(v) for k, v in sorted((metadata or {}).items())}
    header: dict[str, Any] = {"__metadata__": meta} if meta else {}
    blobs, offset = [], 0
    for name, value in sorted(params.items()):
        arr = np.ascontiguousarray(value, dtype="<f4")
        blob = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of safetensors bytes (the header is a little-endian u64 length and JSON)."""
    if len(data) < 8:
        raise CheckpointError(f"checkpoint: {len(data)} bytes — expected a safetensors file (8-byte header length)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError("checkpoint: header length runs past the end — expected a safetensors file")
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError:
        raise CheckpointError("checkpoint: header is not JSON — expected a safetensors file") from None
    return {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}


def loads(data: bytes, shapes: dict[str, tuple[int, ...]] | None = None) -> tuple[Params, dict[str, str]]:
    """Tensors and metadata of safetensors bytes; with `shapes`, refuse any other names or shapes."""
    import numpy as np
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    if len(data) > MAX_CHECKPOINT:
        raise CheckpointError(f"checkpoint: {len(data)} bytes — expected at most {MAX_CHECKPOINT}")
    meta = metadata(data)
    try:
        params = {k: np.asarray(v, dtype=np.float32) for k, v in st_load(data).items()}
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"checkpoint: not a valid safetensors file ({str(exc)[:80]})") from None
    if shapes is not None:
        got = {k: tuple(v.shape) for k, v in params.items()}
        want = {k: tuple(v) for k, v in shapes.items()}
        if got != want:
            raise CheckpointError(f"checkpoint: tensors {got} — expected the model's {want}")
    for k, v in params.items():
        if not np.all(np.isfinite(v)):
            raise CheckpointError(f"checkpoint: tensor {k} holds NaN or infinite values")
    return params, meta


# ---- CIDv0 (kubo's UnixFS/dag-pb encoding) ----------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _unixfs_file(data: bytes, filesize: int, blocksizes: list[int] = ()) -> bytes:  # type: ignore[assignment]
    out = _varint(1 << 3) + _varint(2)  # Type = File
    if data:
        out += _field(2, data)
    out += _varint(3 << 3) + _varint(filesize)
    for b in blocksizes:
        out += _varint(4 << 3) + _varint(b)
    return out


def _node(links: list[tuple[bytes, int]], unixfs: bytes) -> bytes:
    """dag-pb PBNode: Links (field 2) first, then Data (field 1), as go-codec-dagpb writes it."""
    out = b""
    for mh, tsize in links:
        link = _field(1, mh) + _field(2, b"") + _varint(3 << 3) + _varint(tsize)
        out += _field(2, link)
    return out + _field(1, unixfs)


def _mh(block: bytes) -> bytes:
    return b"\x12\x20" + hashlib.sha256(block).digest()


def cid_of(data: bytes) -> str:
    """The CIDv0 kubo gives `data` (`ipfs add --cid-version=0`, default chunker, balanced layout)."""
    if len(data) <= CHUNK:
        return b58encode(_mh(_node([], _unixfs_file(data, len(data)))))
    # level 0: leaves; each entry (multihash, tsize = cumulative encoded size, file bytes)
    level = []
    for i in range(0, len(data), CHUNK):
        chunk = data[i : i + CHUNK]
        block = _node([], _unixfs_file(chunk, len(chunk)))
        level.append((_mh(block), len(block), len(chunk)))
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), MAX_LINKS):
            kids = level[i : i + MAX_LINKS]
            size = sum(k[2] for k in kids)
            block = _node([(k[0], k[1]) for k in kids], _unixfs_file(b"", size, [k[2] for k in kids]))
            nxt.append((_mh(block), len(block) + sum(k[1] for k in kids), size))
        level = nxt
    return b58encode(level[0][0])


def check_cid(cid: str, what: str = "CID") -> str:
    """A CIDv0 (Qm..., sha2-256), or InputError saying what it is not."""
    try:
        cid_to_memo_hash(cid)
    except Exception as exc:  # DlnetError with the reason
        raise InputError(f"{what}: {exc}") from None
    return cid


def cid_to_memo(cid: str) -> bytes:
    return cid_to_memo_hash(check_cid(cid))


def memo_to_cid(memo: bytes) -> str:
    return memo_hash_to_cid(memo)


def verify(data: bytes, cid: str) -> None:
    """Refuse bytes that are not the ones `cid` names (tampered after the CID was recorded)."""
    got = cid_of(data)
    if got != cid:
        raise CheckpointError(
            f"checkpoint {cid}: the {len(data)} bytes served hash to {got} — expected {cid} — tampered or"
            " corrupted after its CID was recorded; refused"
        )
