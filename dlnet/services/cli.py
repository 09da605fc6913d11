"""`dlnet serve <service> --config FILE` and `dlnet services migrate <service> --config FILE`."""

from __future__ import annotations

from typing import Annotated

import typer

from dlnet.errors import DlnetError

SERVICES = ("federation", "compliance", "bridge")
serve_app = typer.Typer(no_args_is_help=True,
                        help="Run one of the participant services (federation, compliance, bridge).")
services_app = typer.Typer(no_args_is_help=True, help="Operate the participant services' databases.")

Config = Annotated[str, typer.Option("--config", "-c", envvar="DLNET_SERVICE_CONFIG",
                                     help="The service's YAML config (rendered by its role).")]


def build(service: str, config: str):
    from dlnet.services import settings

    s = settings.load(service, config)
    if service == "federation":
        from dlnet.services.federation import create_app
    elif service == "compliance":
        from dlnet.services.compliance import create_app  # type: ignore[assignment]
    else:
        from dlnet.services.bridge import create_app  # type: ignore[assignment]
    return s, create_app(s)  # type: ignore[arg-type]


def _run(service: str, config: str) -> None:
    import uvicorn

    from dlnet.services import db

    s, app = build(service, config)
    # Migrate before serving: a database problem is then one clear line from the CLI, not a lifespan traceback.
    db.migrate(s.database.conninfo(), service)
    # uvicorn's own access log is off: the app logs every request as JSON, without query strings.
    uvicorn.run(app, host=s.listen_host, port=s.listen_port, log_level="warning", access_log=False,
                proxy_headers=False, server_header=False)


for _svc in SERVICES:
    def _cmd(config: Config, _s: str = _svc) -> None:
        _run(_s, config)

    _cmd.__doc__ = f"Serve the {_svc} service (runs its migrations first)."
    serve_app.command(_svc)(_cmd)


@services_app.command("migrate")
def migrate(service: Annotated[str, typer.Argument(help="federation, compliance or bridge")], config: Config) -> None:
    """Apply pending schema migrations of a service and exit."""
    from dlnet.services import db, settings

    if service not in SERVICES:
        raise DlnetError(f"unknown service {service!r} — expected one of {', '.join(SERVICES)}")
    s = settings.load(service, config)
    applied = db.migrate(s.database.conninfo(), service)
    typer.echo(f"{service}: applied {', '.join(applied)}" if applied else f"{service}: schema up to date")


@services_app.command("rotate-kek")
def rotate_kek(
    config: Config,
    old_kek_file: Annotated[str, typer.Option("--old-kek-file", help="File holding the previous KEK (64 hex).")],
    operator: Annotated[str, typer.Option("--operator", help="Who rotates (written to the audit log).")],
) -> None:
    """Re-wrap every KYC record's key from the old KEK to the config's kyc_kek_file (stop the service first)."""
    from pathlib import Path

    from dlnet.services import db, kyc, settings

    s = settings.load("compliance", config)
    assert isinstance(s, settings.ComplianceSettings)
    conninfo = s.database.conninfo()
    db.migrate(conninfo, "compliance")
    old = kyc.load_kek(settings.read_secret(Path(old_kek_file), "old KYC key-encryption key"))
    new = kyc.load_kek(settings.read_secret(s.kyc_kek_file, "KYC key-encryption key"))
    n = kyc.rotate(conninfo, old, new, operator)
    typer.echo(f"compliance: {n} KYC record key(s) re-wrapped ({kyc.kek_id(old)} -> {kyc.kek_id(new)})")
