"""Secrets of one environment: generated once, never regenerated, never printed.

They live in the controller's state directory (`$DLNET_STATE_DIR/<env>/secrets`, 0700, files 0600),
outside git. Only public halves (`<validator>.pub`) are readable by others.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from stellar_sdk import Keypair

from dlnet.config import Network
from dlnet.errors import DlnetError
from dlnet.preflight import passphrase_digest, state_dir


def _write_private(path: Path, text: str) -> None:
    # O_EXCL: never overwrite a secret that appeared meanwhile; 0600 from the first byte.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def swarm_key_text() -> str:
    """kubo's private-network key format: /key/swarm/psk/1.0.0/, /base16/, 64 hex characters."""
    return f"/key/swarm/psk/1.0.0/\n/base16/\n{secrets.token_hex(32)}\n"


def secrets_dir(env: str) -> Path:
    return state_dir(env) / "secrets"


def ensure(net: Network) -> list[str]:
    """Create whatever secret is missing; return the names created (never their values)."""
    root = secrets_dir(net.env)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root, 0o700)
    created: list[str] = []
    if net.components.stellar_core:
        for v in net.validators:
            seed, pub = root / f"{v.name}.seed", root / f"{v.name}.pub"
            if not seed.exists():
                _write_private(seed, Keypair.random().secret + "\n")
                created.append(seed.name)
            public = Keypair.from_secret(seed.read_text().strip()).public_key
            if not pub.exists() or pub.read_text().strip() != public:
                pub.write_text(public + "\n")
                created.append(pub.name)
    wanted: dict[str, object] = {}
    if net.components.ipfs:
        wanted["swarm.key"] = swarm_key_text
    if net.components.postgres:
        wanted["postgres.password"] = lambda: secrets.token_urlsafe(24) + "\n"
    for name, make in wanted.items():
        path = root / name
        if not path.exists():
            _write_private(path, make())  # type: ignore[operator]
            created.append(name)
    state = state_dir(net.env)
    os.chmod(state, 0o700)
    record = state / "network.json"
    if record.exists() and "passphrase_sha256" in json.loads(record.read_text() or "{}"):
        # Written by an earlier kit: that field is sha256(passphrase), the root account's seed. Replace it
        # (preflight compared it with the inventory just before).
        record.unlink()
    if not record.exists():
        text = json.dumps({"env": net.env, "passphrase_record": passphrase_digest(net.passphrase)})
        _write_private(record, text + "\n")
        created.append(record.name)
    os.chmod(record, 0o600)
    return created


def reset_record(net: Network) -> None:
    """Forget the deployed passphrase (after the ledgers were deleted on purpose)."""
    record = state_dir(net.env) / "network.json"
    record.unlink(missing_ok=True)


# Key rotation (deploy/rotate-key.yml): `<name>.next.seed` / `.next.pub` hold the pending new key of one
# validator until every validator runs with it; then the old pair is kept as `<name>.retired-<UTC>.*`
# (0600) and the new pair takes the usual names.
def pending_rotation(env: str) -> str | None:
    """The validator whose key rotation is pending (its new seed exists), or None."""
    root = secrets_dir(env)
    pending = sorted(p.name.removesuffix(".next.seed") for p in root.glob("*.next.seed")) if root.is_dir() else []
    if len(pending) > 1:
        raise DlnetError(
            f"key rotation: new seeds pending for {', '.join(pending)} in {root} — expected one rotation at a time"
            " — finish one (make rotate-key) and move the other's .next.seed/.next.pub aside"
        )
    return pending[0] if pending else None


def request_rotation(net: Network, name: str) -> str:
    """Create `name`'s new seed (0600); return its public key. Refused while another rotation is pending."""
    if name not in {v.name for v in net.validators}:
        raise DlnetError(
            f"keys rotate: {name!r} — expected one of the validators {', '.join(v.name for v in net.validators)}"
            " — pass an inventory host of group 'stellar_core'"
        )
    root = secrets_dir(net.env)
    if not (root / f"{name}.seed").is_file():
        raise DlnetError(
            f"keys rotate: {name} has no key yet ({root / (name + '.seed')} missing) — expected a deployed"
            " network — run make up first"
        )
    pending = pending_rotation(net.env)
    if pending is not None:
        raise DlnetError(
            f"keys rotate: a new key for {pending} is already pending — expected none — apply it with"
            " `make rotate-key` before asking for another"
        )
    kp = Keypair.random()
    _write_private(root / f"{name}.next.seed", kp.secret + "\n")
    (root / f"{name}.next.pub").write_text(kp.public_key + "\n")
    return kp.public_key


def cancel_rotation(net: Network, name: str) -> bool:
    """Drop `name`'s pending new key; True when there was one."""
    root = secrets_dir(net.env)
    found = (root / f"{name}.next.seed").exists()
    for ext in ("seed", "pub"):
        (root / f"{name}.next.{ext}").unlink(missing_ok=True)
    return found


def public_key(env: str, name: str, *, new: bool = False) -> str:
    return (secrets_dir(env) / f"{name}{'.next' if new else ''}.pub").read_text().strip()


def promote(net: Network, name: str, now: datetime | None = None) -> str:
    """The new key becomes `name`'s key; the old pair is kept as `<name>.retired-<UTC>.seed/.pub` (0600).
    Returns the retired files' stem."""
    root = secrets_dir(net.env)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{name}.retired-{stamp}"
    for ext in ("seed", "pub"):
        old = root / f"{name}.{ext}"
        os.replace(old, root / f"{stem}.{ext}")
        os.chmod(root / f"{stem}.{ext}", 0o600)
    os.replace(root / f"{name}.next.seed", root / f"{name}.seed")
    os.replace(root / f"{name}.next.pub", root / f"{name}.pub")
    return stem
