"""KYC records: encrypted per record, stored on the private IPFS swarm, never in plaintext anywhere.

Each record gets a fresh 256-bit data key (AES-256-GCM, authenticated; the account id is bound as
associated data). The data key is wrapped with the service's key-encryption key (KEK, 32 bytes from a
0600 file) and stored in PostgreSQL next to the record's CID and the SHA-256 of the stored envelope.
IPFS holds only the envelope (nonce + ciphertext); PostgreSQL only the wrapped key and references.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dlnet.errors import DlnetError

_AAD_RECORD = b"dlnet-kyc-record-v1|"
_AAD_KEY = b"dlnet-kyc-key-v1|"


def load_kek(text: str) -> bytes:
    try:
        kek = bytes.fromhex(text.strip())
    except ValueError:
        raise DlnetError("KYC key-encryption key: expected 64 hex characters (32 bytes)") from None
    if len(kek) != 32:
        raise DlnetError(f"KYC key-encryption key: expected 32 bytes (64 hex characters), got {len(kek)} bytes")
    return kek


def kek_id(kek: bytes) -> str:
    """A public fingerprint of the KEK (for rotation), not the key."""
    return hashlib.sha256(b"dlnet-kek-id|" + kek).hexdigest()[:16]


@dataclass(frozen=True)
class Sealed:
    envelope: bytes  # what goes to IPFS
    wrapped_key: bytes  # nonce + AES-GCM(KEK, data key): what goes to PostgreSQL
    envelope_sha256: str
    kek_id: str


def seal(kek: bytes, account: str, fields: dict[str, Any]) -> Sealed:
    plaintext = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    dek = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    ct = AESGCM(dek).encrypt(nonce, plaintext, _AAD_RECORD + account.encode())
    envelope = json.dumps({"v": 1, "alg": "AES-256-GCM", "nonce": base64.b64encode(nonce).decode(),
                           "ct": base64.b64encode(ct).decode()}, sort_keys=True).encode()
    knonce = os.urandom(12)
    wrapped = knonce + AESGCM(kek).encrypt(knonce, dek, _AAD_KEY + account.encode())
    return Sealed(envelope, wrapped, hashlib.sha256(envelope).hexdigest(), kek_id(kek))


def open_sealed(kek: bytes, account: str, envelope: bytes, wrapped_key: bytes, envelope_sha256: str) -> dict[str, Any]:
    """Decrypt a record; DlnetError if it was altered, belongs to another account or another KEK."""
    if hashlib.sha256(envelope).hexdigest() != envelope_sha256:
        raise DlnetError("KYC record: stored envelope does not match its recorded SHA-256 (altered?)")
    try:
        dek = AESGCM(kek).decrypt(wrapped_key[:12], wrapped_key[12:], _AAD_KEY + account.encode())
        doc = json.loads(envelope)
        nonce, ct = base64.b64decode(doc["nonce"]), base64.b64decode(doc["ct"])
        return dict(json.loads(AESGCM(dek).decrypt(nonce, ct, _AAD_RECORD + account.encode())))
    except (InvalidTag, ValueError, KeyError):
        raise DlnetError("KYC record: authentication failed (wrong key, wrong account or altered data)") from None


def rewrap(old_kek: bytes, new_kek: bytes, account: str, wrapped_key: bytes) -> bytes:
    """Re-wrap a record's data key under a new KEK (the IPFS envelope does not change)."""
    try:
        dek = AESGCM(old_kek).decrypt(wrapped_key[:12], wrapped_key[12:], _AAD_KEY + account.encode())
    except (InvalidTag, ValueError):
        raise DlnetError(f"KYC record of {account}: the old key-encryption key does not open it") from None
    knonce = os.urandom(12)
    return knonce + AESGCM(new_kek).encrypt(knonce, dek, _AAD_KEY + account.encode())


def rotate(conninfo: str, old_kek: bytes, new_kek: bytes, actor: str) -> int:
    """Re-wrap every record sealed under `old_kek` with `new_kek`, in one transaction; audit it."""
    import psycopg

    old_id, new_id = kek_id(old_kek), kek_id(new_kek)
    if old_id == new_id:
        raise DlnetError("the old and the new key-encryption keys are the same")
    with psycopg.connect(conninfo) as conn, conn.transaction():
        rows = conn.execute("SELECT id, account_id, wrapped_key FROM compliance.kyc_records WHERE kek_id = %s"
                            " FOR UPDATE", (old_id,)).fetchall()
        for rid, account, wrapped in rows:
            conn.execute("UPDATE compliance.kyc_records SET wrapped_key = %s, kek_id = %s WHERE id = %s",
                         (rewrap(old_kek, new_kek, account, bytes(wrapped)), new_id, rid))
        conn.execute("INSERT INTO compliance.audit_log (actor, action, detail) VALUES (%s, 'kek_rotated', %s)",
                     (actor, json.dumps({"records": len(rows), "from": old_id, "to": new_id})))
    return len(rows)
