"""`dlnet artifacts fetch`: SDF's official stellar-core and Horizon, verified, into artifacts/ (dlnet/artifacts.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from dlnet import day2
from dlnet.artifacts import Fetcher, Source, Unreachable
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.preflight import Artifacts

artifacts_app = typer.Typer(no_args_is_help=True, help="The stellar-core and Horizon binaries the network runs.")


@artifacts_app.command("fetch")
def fetch(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    dest: Annotated[Path, typer.Option(help="Folder for the binaries.")] = Path("artifacts"),
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing where STELLAR_CORE_BIN/HORIZON_BIN or the files are given.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Download the inventory's pinned versions from SDF's signed apt repository, verify them, install them.

    Source: DLNET_APT_URL (default https://apt.stellar.org), DLNET_APT_SUITE (jammy); the signing key:
    DLNET_APT_KEYRING (a pinned key file) or the repository's SDF.asc, checked against
    DLNET_APT_KEY_FINGERPRINT when set, and recorded at the first fetch.
    """
    net, _ = day2.load(inventory, extra_vars)
    wanted = {}
    if net.components.stellar_core and net.validators:
        wanted["stellar-core"] = net.stellar_core_version
    if net.components.horizon and net.horizon:
        wanted["stellar-horizon"] = net.horizon_version
    if if_missing:
        given = Artifacts.resolve(dest)
        supplied = {"stellar-core": os.environ.get("STELLAR_CORE_BIN") or given.stellar_core.is_file(),
                    "stellar-horizon": os.environ.get("HORIZON_BIN") or given.horizon.is_file()}
        if all(supplied[p] for p in wanted):
            emit(as_json, {"changed": False, "fetched": []}, "artifacts: supplied, nothing to fetch")
            return
    source = Source.from_env()
    fetcher = Fetcher(source, dest, progress=lambda m: progress(f"fetching {m} from {source.url}"))
    try:
        got = fetcher.fetch(wanted)
    except Unreachable as e:
        if not if_missing:
            raise
        # `make up` goes on: preflight then names what is missing and how to supply it.
        progress(f"artifacts: {e}")
        emit(as_json, {"changed": False, "fetched": [], "unreachable": str(e)}, "artifacts: not fetched")
        return
    payload = {
        "changed": any(f.downloaded for f in got),
        "fetched": [{"package": f.package, "version": f.package_version, "path": str(f.path), "sha256": f.sha256,
                     "downloaded": f.downloaded} for f in got],
    }
    lines = [f"{'fetched' if f.downloaded else 'kept   '} {f.path} ({f.package} {f.package_version},"
             f" sha256 {f.sha256[:16]}…)" for f in got]
    emit(as_json, payload, "\n".join(lines) or "artifacts: nothing to fetch (stellar-core and Horizon are off)")
