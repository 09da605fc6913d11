"""`dlnet backup` and `dlnet restore` (logic in dlnet/backup.py; host work in deploy/backup.yml, restore.yml)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlnet import backup as bk
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.config import load_network
from dlnet.errors import DlnetError

PassphraseFile = Annotated[
    str | None,
    typer.Option(
        "--passphrase-file",
        help=f"File holding the backup passphrase (default: ${bk.PASSPHRASE_FILE_ENV}, else ${bk.PASSPHRASE_ENV}).",
    ),
]


def backup(
    dest: Annotated[Path, typer.Argument(help="Directory the backup goes under (a new <env>-<UTC time> folder).")],
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    passphrase_file: PassphraseFile = None,
    validators: Annotated[
        bool, typer.Option(help="Copy each validator's ledger (each stopped for a few seconds, one at a time).")
    ] = True,
    as_json: Json = False,
) -> None:
    """Back up secrets, every validator's ledger and buckets, and every PostgreSQL database, encrypted."""
    net = load_network(inventory, extra_vars)
    passphrase = bk.read_passphrase(passphrase_file)
    progress(f"backing up {net.env} into {dest} (validators one at a time)")
    m = bk.backup(net, dest, passphrase, extra_vars, validators=validators)
    size = sum(f["size"] for f in m["files"].values())
    ledgers = ", ".join(f"{n} {x.get('num')}" for n, x in sorted(m["validators"].items())) or "no validators"
    emit(
        as_json,
        {k: m[k] for k in ("path", "seconds", "validators", "versions", "created")}
        | {"files": {n: {"kind": f["kind"], "size": f["size"]} for n, f in m["files"].items()}, "bytes": size},
        f"backup {m['path']}: {len(m['files'])} files, {size / 1e6:.1f} MB, ledgers {ledgers}, {m['seconds']} s",
    )


def restore(
    source: Annotated[
        Path | None, typer.Argument(help="Backup directory (omit with --from-history).", show_default=False)
    ] = None,
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    passphrase_file: PassphraseFile = None,
    secrets: Annotated[bool, typer.Option(help="Put the backup's secrets back in the state directory.")] = True,
    validator: Annotated[
        str | None, typer.Option("--validator", help="Bring back this validator (on a wiped host).")
    ] = None,
    postgres: Annotated[
        str | None,
        typer.Option(
            "--postgres",
            help="Restore this PostgreSQL host's databases into the running network (their users stopped meanwhile).",
        ),
    ] = None,
    databases: Annotated[
        list[str] | None,
        typer.Option("--database", help="With --postgres: only this database (repeatable; default: all its dumps)."),
    ] = None,
    from_history: Annotated[
        bool, typer.Option(help="No backup: the validator catches up from the other validators' archives.")
    ] = False,
    verify_only: Annotated[bool, typer.Option("--verify", help="Only check the backup; touch nothing.")] = False,
    extract: Annotated[
        str | None,
        typer.Option("--extract", help="Only decrypt this file of the backup (e.g. postgres/pg1-horizon.dump)."),
    ] = None,
    to: Annotated[Path | None, typer.Option("--to", help="Where --extract writes (a new 0600 file).")] = None,
    force: Annotated[
        bool, typer.Option(help="Overwrite different secrets / replace the validator's existing ledger.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Verify a backup (passphrase, sha256 of every file, same network), then restore secrets, a validator, and
    a PostgreSQL host's databases."""
    net = load_network(inventory, extra_vars)
    if from_history:
        if source is not None or validator is None:
            raise DlnetError("restore --from-history: expected --validator NAME and no backup directory")
        progress(f"restoring {validator} from the other validators' history archives")
        out = bk.restore_validator(None, net, validator, extra_vars, _log_dir(net.env), force=force)
        emit(as_json, out, f"restored {validator} from history in {out['seconds']} s: Synced!")
        return
    if source is None:
        raise DlnetError("restore: expected a backup directory (or --from-history --validator NAME)")
    v = bk.verify(source, bk.read_passphrase(passphrase_file), net)
    result: dict[str, object] = {"backup": str(source), "verified": True}
    lines = [f"backup {source}: verified ({len(v.manifest['files'])} files, network {net.env})"]
    if extract is not None:
        if extract not in v.manifest["files"] or to is None or to.exists():
            raise DlnetError(
                f"restore --extract {extract}: expected one of {sorted(v.manifest['files'])} and --to a new file"
                f" (got --to {to})"
            )
        v.decrypt(extract, to)
        emit(as_json, {**result, "extracted": extract, "to": str(to)}, f"{extract} -> {to} (0600)")
        return
    if databases and postgres is None:
        raise DlnetError("restore --database: expected --postgres HOST with it (the host whose dump to restore)")
    if postgres is not None:
        bk.check_postgres(v, net, postgres, databases)  # refused here, before the secrets are touched
    if not verify_only:
        if secrets:
            done = bk.restore_secrets(v, net, force=force)
            result["secrets"] = done
            lines.append("secrets: " + ", ".join(f"{len(n)} {k}" for k, n in done.items()))
        if validator:
            progress(f"restoring {validator} from {source}")
            out = bk.restore_validator(v, net, validator, extra_vars, _log_dir(net.env), force=force)
            result["validator"] = out
            lines.append(
                f"{validator}: restored at ledger {out['backup_ledger'].get('num')}, Synced! in {out['seconds']} s"
            )
        if postgres is not None:
            progress(f"restoring the databases of {postgres} from {source} (their consumers stopped meanwhile)")
            pg = bk.restore_postgres(v, net, postgres, extra_vars, _log_dir(net.env), databases)
            result["postgres"] = pg
            lines.append(_postgres_line(pg))
    emit(as_json, result, "\n".join(lines))


def _postgres_line(pg: dict[str, object]) -> str:
    dbs = pg["databases"]
    assert isinstance(dbs, dict)
    text = f"{pg['host']}: restored {', '.join(f'{d} ({n / 1e6:.1f} MB)' for d, n in dbs.items())} in {pg['seconds']} s"
    consumers = pg.get("consumers")
    for name, rec in sorted(consumers.items()) if isinstance(consumers, dict) else []:
        if name.startswith("horizon-"):
            text += (
                f"; {name[len('horizon-') :]} ingesting from ledger {rec.get('answered_at')} past {rec.get('held')}"
                f" (held before) in {rec.get('seconds_to_pass_held')} s"
            )
        elif rec.get("restarted"):
            text += f"; restarted {', '.join(rec['restarted'])}"
    return text


def _log_dir(env: str) -> Path:
    from dlnet.preflight import state_dir

    return state_dir(env) / "logs"
