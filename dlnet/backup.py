"""Backup and restore of one environment (`dlnet backup`, `dlnet restore`).

What a backup holds, every file encrypted (AES-256-GCM in 1 MiB chunks, key from scrypt over a passphrase
read from a file or the environment, never from the command line):
- `secrets/*`: the controller's `$DLNET_STATE_DIR/<env>/secrets` (validator seeds, swarm key, PostgreSQL
  password, funder seed, services' secrets);
- `ledgers/<validator>.tar`: each validator's SQLite ledger, buckets, history archive and ledger marker, copied
  while that validator is stopped (one at a time: the others keep closing), so database and buckets agree;
- `postgres/<host>-<db>.dump`: `pg_dump -Fc` of every database on each PostgreSQL host (Horizon's, the
  services'), a consistent snapshot taken while Horizon keeps ingesting.
`manifest.json` lists the sha256 of every stored (encrypted) file, the versions, each validator's last closed
ledger and hash in its copy, and the network's passphrase record; `manifest.hmac` authenticates it with a key
derived from the same passphrase. The host-side work runs as playbooks (deploy/backup.yml, deploy/restore.yml):
Ansible is how the kit reaches every host; the encryption and every check run here, on the controller.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets as pysecrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from dlnet import keys
from dlnet.config import Network
from dlnet.errors import DlnetError
from dlnet.preflight import passphrase_digest, state_dir

FORMAT = "dlnet-backup/1"
KIT_ROOT = Path(__file__).resolve().parent.parent
MAGIC = b"DLNETBK1"
CHUNK = 1 << 20
# scrypt cost: ~0.1 s and 32 MiB on this class of machine; stored in the manifest so it can change later.
KDF = {"name": "scrypt", "n": 1 << 15, "r": 8, "p": 1}
PASSPHRASE_ENV = "DLNET_BACKUP_PASSPHRASE"
PASSPHRASE_FILE_ENV = "DLNET_BACKUP_PASSPHRASE_FILE"


# ---------------------------------------------------------------- keys and encryption


def read_passphrase(path: str | None) -> bytes:
    """From --passphrase-file, else $DLNET_BACKUP_PASSPHRASE_FILE, else $DLNET_BACKUP_PASSPHRASE."""
    path = path or os.environ.get(PASSPHRASE_FILE_ENV)
    if path:
        try:
            text = Path(path).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise DlnetError(f"backup passphrase file {path}: {exc.strerror} — expected a readable file") from None
    else:
        text = os.environ.get(PASSPHRASE_ENV, "").encode()
    if len(text) < 12:
        raise DlnetError(
            f"backup passphrase: expected at least 12 characters, got {len(text)} — put one in a 0600 file and pass"
            f" --passphrase-file (or set {PASSPHRASE_FILE_ENV} / {PASSPHRASE_ENV})"
        )
    return text


@dataclass(frozen=True)
class Keys:
    enc: bytes
    mac: bytes

    @classmethod
    def derive(cls, passphrase: bytes, salt: bytes, kdf: dict[str, Any] = KDF) -> Keys:
        if kdf.get("name") != "scrypt":
            raise DlnetError(f"backup key derivation: expected scrypt, got {kdf.get('name')!r}")
        raw = Scrypt(salt=salt, length=64, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"])).derive(passphrase)
        return cls(raw[:32], raw[32:])


def encrypt_file(src: Path, dest: Path, key: bytes, name: str) -> None:
    """Chunked AES-GCM; each chunk's associated data binds the file's name, its index and whether it is the
    last, so chunks cannot be reordered, cut off or moved to another file."""
    aead = AESGCM(key)
    prefix = pysecrets.token_bytes(8)
    size = src.stat().st_size
    with src.open("rb") as fin, _private_open(dest) as fout:
        fout.write(MAGIC + prefix)
        index = 0
        while True:
            chunk = fin.read(CHUNK)
            last = fin.tell() >= size
            nonce = prefix + struct.pack(">I", index)
            sealed = aead.encrypt(nonce, chunk, f"{name}:{index}:{int(last)}".encode())
            fout.write(struct.pack(">I", len(sealed)) + sealed)
            index += 1
            if last:
                break


def decrypt_chunks(src: Path, key: bytes, name: str) -> Iterator[bytes]:
    aead = AESGCM(key)
    with src.open("rb") as fin:
        head = fin.read(len(MAGIC) + 8)
        if not head.startswith(MAGIC):
            raise DlnetError(f"backup file {name}: not a dlnet backup file (bad header)")
        prefix = head[len(MAGIC) :]
        index, size = 0, src.stat().st_size
        while True:
            (length,) = struct.unpack(">I", fin.read(4))
            sealed = fin.read(length)
            last = fin.tell() >= size
            try:
                yield aead.decrypt(prefix + struct.pack(">I", index), sealed, f"{name}:{index}:{int(last)}".encode())
            except InvalidTag:
                raise DlnetError(f"backup file {name}: authentication failed (tampered or truncated)") from None
            index += 1
            if last:
                return


def decrypt_file(src: Path, dest: Path, key: bytes, name: str) -> None:
    with _private_open(dest) as fout:
        for chunk in decrypt_chunks(src, key, name):
            fout.write(chunk)


def decrypt_bytes(src: Path, key: bytes, name: str) -> bytes:
    return b"".join(decrypt_chunks(src, key, name))


@contextlib.contextmanager
def _private_open(path: Path) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as fh:
        yield fh


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- playbooks


def run_playbook(net: Network, name: str, extra: dict[str, Any], extra_vars: list[str] | None, log: Path) -> None:
    """Run deploy/<name> on the inventory; output goes to `log` (0600): tasks handling secrets are no_log."""
    playbook = Path(sys.executable).parent / "ansible-playbook"
    if not playbook.exists():
        playbook = Path(shutil.which("ansible-playbook") or "ansible-playbook")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(extra, fh)
        extra_file = fh.name
    try:
        args = [str(playbook), "-i", net.inventory, str(KIT_ROOT / "deploy" / name), "-e", f"@{extra_file}"]
        for item in extra_vars or []:
            args += ["-e", item]
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        proc = subprocess.run(args, capture_output=True, text=True, cwd=KIT_ROOT, env=env, check=False)
    finally:
        os.unlink(extra_file)
    with _private_open(log) as fh:
        fh.write((proc.stdout + proc.stderr).encode())
    if proc.returncode != 0:
        raise DlnetError(f"{name} failed: {_failure(proc.stdout)} (log: {log})")


def _failure(output: str) -> str:
    """The failed task's message (tasks that handle secrets are no_log: theirs is censored by Ansible)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("fatal:", "failed:")):
            for j in range(i, min(i + 12, len(lines))):
                if lines[j].strip().startswith("msg:"):
                    indent = len(lines[j]) - len(lines[j].lstrip())
                    parts = [lines[j].strip()[4:]]
                    for more in lines[j + 1 :]:  # YAML folds long messages onto deeper-indented lines
                        if not more.strip() or len(more) - len(more.lstrip()) <= indent:
                            break
                        parts.append(more.strip())
                    msg = " ".join(p.strip() for p in parts).strip().strip("'\"")
                    return line.split("=>")[0].strip() + " " + msg[:400]
            return line.strip()[:400]
    return "see the log"


# ---------------------------------------------------------------- backup


def backup(
    net: Network, dest_root: Path, passphrase: bytes, extra_vars: list[str] | None = None, validators: bool = True
) -> dict[str, Any]:
    """Write a new backup directory under dest_root; return its manifest (with `path` and `seconds`)."""
    start = time.monotonic()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = dest_root / f"{net.env}-{stamp}"
    out.mkdir(mode=0o700)
    salt = pysecrets.token_bytes(16)
    k = Keys.derive(passphrase, salt)
    files: dict[str, dict[str, Any]] = {}

    def store(src: Path, name: str, kind: str) -> None:
        enc = out / (name + ".enc")
        encrypt_file(src, enc, k.enc, name)
        files[name] = {"kind": kind, "size": src.stat().st_size, "sha256": sha256_file(enc)}

    # Secrets straight from the state directory: no plaintext copy is made.
    sdir = keys.secrets_dir(net.env)
    if not sdir.is_dir():
        raise DlnetError(f"backup: no secrets at {sdir} — expected a deployed environment {net.env!r}")
    for path in sorted(sdir.rglob("*")):
        if path.is_file():
            store(path, f"secrets/{path.relative_to(sdir)}", "secret")

    try:
        ledgers = _from_hosts(net, out, validators, extra_vars, store)
    except BaseException as exc:
        # No half backup that looks like one: keep the playbook's log beside, drop the rest.
        failed_log = dest_root / f"{out.name}.failed.log"
        with contextlib.suppress(OSError):
            (out / "backup.log").replace(failed_log)
        shutil.rmtree(out, ignore_errors=True)
        if isinstance(exc, DlnetError):
            raise DlnetError(str(exc).replace(str(out / "backup.log"), str(failed_log))) from None
        raise
    manifest = {
        "format": FORMAT,
        "env": net.env,
        "network_record": passphrase_digest(net.passphrase),
        "created": stamp,
        "versions": {
            "dlnet": _kit_version(),
            "stellar_core": net.stellar_core_version,
            "horizon": net.horizon_version,
        },
        "kdf": {**KDF, "salt": salt.hex()},
        "validators": ledgers,
        "files": files,
    }
    write_manifest(out, manifest, k.mac)
    return {**manifest, "path": str(out), "seconds": round(time.monotonic() - start, 1)}


def _from_hosts(net: Network, out: Path, validators: bool, extra_vars: list[str] | None, store: Any) -> dict[str, Any]:
    """Run deploy/backup.yml into a private staging folder, store (encrypt) what it fetched, return the
    validators' ledgers as their copies hold them."""
    ledgers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=out) as staging_name:
        staging = Path(staging_name)
        os.chmod(staging, 0o700)
        hosts_ran = (validators and net.components.stellar_core and net.validators) or (
            net.components.postgres and net.postgres
        )
        if hosts_ran:
            run_playbook(
                net,
                "backup.yml",
                {"dlnet_backup_staging": str(staging), "dlnet_backup_validators": validators},
                extra_vars,
                out / "backup.log",
            )
        for path in sorted(staging.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(staging)
            if rel.parts[0] == "ledgers" and path.suffix == ".json":
                ledgers[path.stem] = json.loads(path.read_text())
            elif rel.parts[0] == "ledgers":
                store(path, f"ledgers/{rel.name}", "validator-ledger")
            elif rel.parts[0] == "postgres":
                store(path, f"postgres/{rel.name}", "postgres-dump")
    return ledgers


def _kit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dlnet")
    except PackageNotFoundError:
        return "unknown"


def write_manifest(out: Path, manifest: dict[str, Any], mac_key: bytes) -> None:
    body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    with _private_open(out / "manifest.json") as fh:
        fh.write(body)
    with _private_open(out / "manifest.hmac") as fh:
        fh.write(hmac.new(mac_key, body, hashlib.sha256).hexdigest().encode() + b"\n")


# ---------------------------------------------------------------- verification


@dataclass
class Verified:
    path: Path
    manifest: dict[str, Any]
    keys: Keys

    def decrypt(self, name: str, dest: Path) -> None:
        decrypt_file(self.path / (name + ".enc"), dest, self.keys.enc, name)

    def read(self, name: str) -> bytes:
        return decrypt_bytes(self.path / (name + ".enc"), self.keys.enc, name)


def verify(path: Path, passphrase: bytes, net: Network | None = None) -> Verified:
    """Every check a restore needs, before anything is touched: the manifest's HMAC (right passphrase, manifest
    untouched), the sha256 of every stored file, no file missing or extra, and the network it belongs to."""
    try:
        body = (path / "manifest.json").read_bytes()
        mac = (path / "manifest.hmac").read_text().strip()
        manifest = json.loads(body)
    except (OSError, ValueError) as exc:
        raise DlnetError(
            f"backup {path}: no readable manifest ({exc}) — expected a directory `dlnet backup` wrote"
        ) from None
    if manifest.get("format") != FORMAT:
        raise DlnetError(f"backup {path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    kdf = manifest.get("kdf", {})
    k = Keys.derive(passphrase, bytes.fromhex(kdf.get("salt", "")), kdf)
    if not hmac.compare_digest(hmac.new(k.mac, body, hashlib.sha256).hexdigest(), mac):
        raise DlnetError(
            f"backup {path}: manifest authentication failed — wrong backup passphrase, or the manifest was changed"
        )
    stored = {p.relative_to(path).as_posix()[: -len(".enc")] for p in path.rglob("*.enc")}
    listed = set(manifest["files"])
    if stored != listed:
        extra, missing = sorted(stored - listed), sorted(listed - stored)
        raise DlnetError(f"backup {path}: files do not match the manifest (missing {missing}, not listed {extra})")
    for name, meta in sorted(manifest["files"].items()):
        got = sha256_file(path / (name + ".enc"))
        if got != meta["sha256"]:
            raise DlnetError(
                f"backup {path}: {name} has sha256 {got[:12]}…, the manifest says {meta['sha256'][:12]}… — the backup"
                " was altered or damaged; use another backup"
            )
    if net is not None and manifest["network_record"] != passphrase_digest(net.passphrase):
        raise DlnetError(
            f"backup {path}: it belongs to another network (passphrase record {manifest['network_record'][:12]}…,"
            f" inventory {net.inventory or net.env} has {passphrase_digest(net.passphrase)[:12]}…) — restore it"
            " with that network's inventory"
        )
    return Verified(path, manifest, k)


# ---------------------------------------------------------------- restore


def restore_secrets(v: Verified, net: Network, force: bool = False) -> dict[str, list[str]]:
    """Put the backup's secrets back in the state directory. Missing ones are written, equal ones left, and
    different ones refused (all checked before any is written) unless `force`."""
    sdir = keys.secrets_dir(net.env)
    wanted = {n[len("secrets/") :]: v.read(n) for n, m in v.manifest["files"].items() if m["kind"] == "secret"}
    differ = sorted(n for n, data in wanted.items() if (sdir / n).is_file() and (sdir / n).read_bytes() != data)
    if differ and not force:
        raise DlnetError(
            f"restore: {', '.join(differ)} in {sdir} differ from the backup's — expected the same secrets (or none);"
            " move them aside, or pass --force to overwrite them"
        )
    result: dict[str, list[str]] = {"written": [], "unchanged": [], "overwritten": []}
    state = state_dir(net.env)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    sdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(sdir, 0o700)
    for name, data in sorted(wanted.items()):
        target = sdir / name
        if target.is_file() and target.read_bytes() == data:
            result["unchanged"].append(name)
            continue
        result["overwritten" if target.exists() else "written"].append(name)
        with _private_open(target) as fh:
            fh.write(data)
    return result


def restore_validator(
    v: Verified | None, net: Network, validator: str, extra_vars: list[str] | None, log_dir: Path, force: bool = False
) -> dict[str, Any]:
    """Bring one validator back on its host: from the backup's copy of its ledger (then it replays what it
    missed), or with v=None from the other validators' history archives. deploy/restore.yml runs the
    stellar_core role for that host, which starts it with --wait-for-consensus and waits for Synced!."""
    names = [x.name for x in net.validators]
    if validator not in names:
        raise DlnetError(f"restore: no validator {validator!r} in {net.inventory} — expected one of {names}")
    if not (keys.secrets_dir(net.env) / f"{validator}.seed").is_file():
        raise DlnetError(
            f"restore: no seed for {validator} in {keys.secrets_dir(net.env)} — restore the secrets first"
            " (dlnet restore BACKUP --secrets)"
        )
    start = time.monotonic()
    extra: dict[str, Any] = {"dlnet_restore_host": validator, "dlnet_restore_force": force}
    with tempfile.TemporaryDirectory(prefix="dlnet-restore-", dir=state_dir(net.env)) as tmp:
        os.chmod(tmp, 0o700)
        if v is not None:
            name = f"ledgers/{validator}.tar"
            if name not in v.manifest["files"]:
                raise DlnetError(
                    f"restore: the backup holds no ledger of {validator} (it has {sorted(v.manifest['files'])})"
                )
            tar = Path(tmp) / f"{validator}.tar"
            v.decrypt(name, tar)
            extra["dlnet_restore_ledger"] = str(tar)
        run_playbook(net, "restore.yml", extra, extra_vars, log_dir / f"restore-{validator}.log")
    out: dict[str, Any] = {"validator": validator, "seconds": round(time.monotonic() - start, 1)}
    if v is not None:
        out["backup_ledger"] = v.manifest["validators"].get(validator, {})
    return out


def postgres_dumps(v: Verified, host: str) -> dict[str, str]:
    """The backup's dumps of one PostgreSQL host: database -> file name (`postgres/<host>-<db>.dump`; database
    names hold no dash, so the last one separates them)."""
    out: dict[str, str] = {}
    for name, meta in v.manifest["files"].items():
        if meta.get("kind") != "postgres-dump" or not name.endswith(".dump"):
            continue
        owner, _, db = name[len("postgres/") : -len(".dump")].rpartition("-")
        if owner == host:
            out[db] = name
    return out


def check_postgres(v: Verified, net: Network, host: str, databases: list[str] | None = None) -> dict[str, str]:
    """What `restore --postgres HOST` would restore (database -> file), or one line saying why not. Runs before
    anything is touched: the host is a PostgreSQL host of the inventory, the backup holds its dumps, and every
    database to restore is one the inventory has there."""
    hosts = {p.name: p for p in net.postgres} if net.components.postgres else {}
    if host not in hosts:
        raise DlnetError(
            f"restore --postgres {host}: no PostgreSQL host {host!r} in {net.inventory or net.env} — expected one of"
            f" {sorted(hosts)}; pass one of those (group `postgres`, with dlnet_components.postgres on)"
        )
    dumps = postgres_dumps(v, host)
    if not dumps:
        held = sorted(n for n, m in v.manifest["files"].items() if m.get("kind") == "postgres-dump")
        raise DlnetError(
            f"restore --postgres {host}: the backup {v.path} holds no dump of {host} — expected"
            f" postgres/{host}-<database>.dump, got {held or 'no dumps at all'}; use a backup taken while {host} ran"
        )
    wanted = databases or sorted(dumps)
    missing = [db for db in wanted if db not in dumps]
    if missing:
        raise DlnetError(
            f"restore --postgres {host} --database {','.join(missing)}: not in the backup — expected one of"
            f" {sorted(dumps)}; pick from those"
        )
    unknown = [db for db in wanted if db not in hosts[host].databases]
    if unknown:
        raise DlnetError(
            f"restore --postgres {host}: the backup has database(s) {unknown} that {host} does not have in"
            f" {net.inventory or net.env} (postgres_databases {hosts[host].databases}) — add them to"
            f" postgres_databases and run make up, or leave them out with --database"
            f" {','.join(db for db in wanted if db not in unknown) or 'NAME'}"
        )
    return {db: dumps[db] for db in wanted}


def restore_postgres(
    v: Verified,
    net: Network,
    host: str,
    extra_vars: list[str] | None,
    log_dir: Path,
    databases: list[str] | None = None,
) -> dict[str, Any]:
    """Restore one PostgreSQL host's databases from the backup into the running network. The dumps are decrypted
    here into 0600 files of a 0700 temporary directory (deleted whatever happens); deploy/restore-postgres.yml
    stops each database's consumers (Horizon, the dlnet services), runs `pg_restore --clean --if-exists` in one
    transaction inside the PostgreSQL container, starts the consumers again and waits until Horizon ingests past
    the ledger it held before."""
    plan = check_postgres(v, net, host, databases)
    start = time.monotonic()
    state = state_dir(net.env)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="dlnet-restore-pg-", dir=state) as tmp:
        os.chmod(tmp, 0o700)
        files: dict[str, str] = {}
        for db, name in plan.items():
            files[db] = str(Path(tmp) / f"{db}.dump")
            v.decrypt(name, Path(files[db]))
        decrypted = round(time.monotonic() - start, 1)
        # The playbook's record: postgres.json (restore timings), horizon-<host>.json (its ledgers, catch-up time),
        # services-<host>.json (which it stopped and started).
        report = Path(tmp) / "report"
        report.mkdir(mode=0o700)
        extra = {
            "dlnet_restore_postgres_host": host,
            "dlnet_restore_postgres_dumps": files,
            "dlnet_restore_postgres_report": str(report),
        }
        run_playbook(net, "restore-postgres.yml", extra, extra_vars, log_dir / f"restore-postgres-{host}.log")
        hosts = {p.stem: json.loads(p.read_text()) for p in sorted(report.glob("*.json"))}
    return {
        "host": host,
        "databases": {db: v.manifest["files"][name]["size"] for db, name in plan.items()},
        "decrypt_seconds": decrypted,
        "restore": hosts.pop("postgres", {}),
        "consumers": hosts,
        "seconds": round(time.monotonic() - start, 1),
    }
