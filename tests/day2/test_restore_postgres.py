"""`dlnet restore BACKUP --postgres HOST` without a network: what it refuses before touching anything (one line:
what, expected, got, how to fix), what it hands the playbook, and that the decrypted dumps never outlive it.
The real restore into a running Horizon: tests/deploy/test_backup.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from dlnet import backup as bk
from dlnet import keys
from dlnet.cli import main
from dlnet.config import load_network
from dlnet.errors import DlnetError
from tests.doubles.inventory import write_inventory

PASS = "dlnet test network ; 2026"
BACKUP_PASS = "backup passphrase for the unit tests"
DUMPS = {"horizon": b"PGDMP horizon " * 1000, "dlnet_services": b"PGDMP services " * 10}


def _inv(root: Path, databases: list[str] | None = None) -> str:
    extra = {"postgres_databases": databases} if databases is not None else {}
    return write_inventory(root, passphrase=PASS, validators={"v1": 1}, postgres_port=15999, extra=extra)


@pytest.fixture
def backed_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A backup of an inventory with pg1 holding Horizon's and the services' databases (the playbook faked)."""
    inv = _inv(tmp_path / "src", ["horizon", "dlnet_services"])
    net = load_network(inv)
    sdir = keys.secrets_dir(net.env)
    sdir.mkdir(parents=True, mode=0o700)
    (sdir / "postgres.password").write_text("pw-" + "x" * 20 + "\n")

    def fake(net, name, extra, extra_vars, log):  # type: ignore[no-untyped-def]
        staging = Path(extra["dlnet_backup_staging"])
        (staging / "postgres").mkdir()
        for db, data in DUMPS.items():
            (staging / "postgres" / f"pg1-{db}.dump").write_bytes(data)
        log.write_text("PLAY RECAP\n")

    monkeypatch.setattr(bk, "run_playbook", fake)
    m = bk.backup(net, tmp_path / "backups", BACKUP_PASS.encode(), validators=False)
    pfile = tmp_path / "pass"
    pfile.write_text(BACKUP_PASS + "\n")
    pfile.chmod(0o600)
    calls: list[dict[str, Any]] = []

    def refuse(*args: Any) -> None:
        calls.append({"args": args})
        raise AssertionError("the playbook ran")

    monkeypatch.setattr(bk, "run_playbook", refuse)
    return {"path": m["path"], "pfile": str(pfile), "tmp": tmp_path, "calls": calls, "secrets": sdir}


def _restore(capsys: pytest.CaptureFixture[str], inv: str, b: dict[str, Any], *args: str) -> tuple[int, str, str]:
    code = main(["restore", b["path"], "-i", inv, "--passphrase-file", b["pfile"], *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _refused(capsys: pytest.CaptureFixture[str], inv: str, b: dict[str, Any], *args: str) -> str:
    before = {p.name: p.read_bytes() for p in b["secrets"].iterdir()}
    (b["secrets"] / "postgres.password").unlink()  # a missing secret would be written back by a restore
    code, _, err = _restore(capsys, inv, b, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert not b["calls"], "the playbook ran"
    assert not (b["secrets"] / "postgres.password").exists(), "a secret was restored before the refusal"
    (b["secrets"] / "postgres.password").write_bytes(before["postgres.password"])
    return lines[0]


def test_unknown_postgres_host_is_refused(backed_up, capsys) -> None:
    line = _refused(
        capsys, _inv(backed_up["tmp"] / "same", ["horizon", "dlnet_services"]), backed_up, "--postgres", "pg9"
    )
    assert "no PostgreSQL host 'pg9'" in line and "expected one of ['pg1']" in line, line


def test_an_inventory_without_postgres_is_refused(backed_up, capsys) -> None:
    inv = write_inventory(backed_up["tmp"] / "nopg", passphrase=PASS, validators={"v1": 1})
    line = _refused(capsys, inv, backed_up, "--postgres", "pg1")
    assert "no PostgreSQL host 'pg1'" in line and "expected one of []" in line, line


def test_a_backup_without_that_hosts_dumps_is_refused(backed_up, capsys, monkeypatch) -> None:
    # The same backup, its dumps renamed as another host's in the manifest (re-sealed): pg1 has none.
    path = Path(backed_up["path"])
    manifest = json.loads((path / "manifest.json").read_text())
    for name in [n for n in manifest["files"] if n.startswith("postgres/")]:
        manifest["files"][name.replace("pg1-", "pg2-")] = manifest["files"].pop(name)
        (path / f"{name}.enc").rename(path / f"{name.replace('pg1-', 'pg2-')}.enc")
    k = bk.Keys.derive(BACKUP_PASS.encode(), bytes.fromhex(manifest["kdf"]["salt"]), manifest["kdf"])
    bk.write_manifest(path, manifest, k.mac)
    line = _refused(capsys, _inv(backed_up["tmp"] / "same"), backed_up, "--postgres", "pg1")
    assert "holds no dump of pg1" in line and "postgres/pg2-horizon.dump" in line and "use a backup" in line, line


def test_a_database_the_inventory_does_not_have_is_refused(backed_up, capsys) -> None:
    inv = _inv(backed_up["tmp"] / "horizon-only", ["horizon"])  # the services' database is gone from pg1
    line = _refused(capsys, inv, backed_up, "--postgres", "pg1")
    assert "database(s) ['dlnet_services']" in line and "postgres_databases ['horizon']" in line, line
    assert "--database horizon" in line, line


def test_a_database_not_in_the_backup_is_refused(backed_up, capsys) -> None:
    line = _refused(
        capsys, _inv(backed_up["tmp"] / "same", ["horizon", "x"]), backed_up, "--postgres", "pg1", "--database", "x"
    )
    assert "--database x: not in the backup" in line and "['dlnet_services', 'horizon']" in line, line


def test_database_without_postgres_is_refused(backed_up, capsys) -> None:
    line = _refused(capsys, _inv(backed_up["tmp"] / "same"), backed_up, "--database", "horizon")
    assert "expected --postgres HOST" in line, line


def test_dumps_reach_the_playbook_private_and_are_deleted_even_when_it_fails(backed_up, capsys, monkeypatch) -> None:
    inv = _inv(backed_up["tmp"] / "same", ["horizon", "dlnet_services"])
    seen: dict[str, Any] = {}

    def playbook(net, name, extra, extra_vars, log):  # type: ignore[no-untyped-def]
        seen.update(extra, name=name)
        for db, path in extra["dlnet_restore_postgres_dumps"].items():
            p = Path(path)
            assert p.read_bytes() == DUMPS[db]
            assert stat.S_IMODE(p.stat().st_mode) == 0o600 and stat.S_IMODE(p.parent.stat().st_mode) == 0o700
        report = Path(extra["dlnet_restore_postgres_report"])
        (report / "postgres.json").write_text(json.dumps({"seconds": {"horizon": "0:00:01.5"}, "failed": ""}))
        (report / "horizon-horizon1.json").write_text(
            json.dumps({"held": 90, "answered_at": 60, "latest": 91, "seconds_to_pass_held": 12.5, "failed": ""})
        )
        if seen.get("fail"):
            raise DlnetError("restore-postgres.yml failed: Horizon did not ingest past ledger 90")

    monkeypatch.setattr(bk, "run_playbook", playbook)
    code, out, err = _restore(capsys, inv, backed_up, "--postgres", "pg1", "--database", "horizon")
    assert code == 0, err
    assert seen["name"] == "restore-postgres.yml" and seen["dlnet_restore_postgres_host"] == "pg1"
    assert list(seen["dlnet_restore_postgres_dumps"]) == ["horizon"]
    assert "pg1: restored horizon" in out and "ingesting from ledger 60 past 90" in out, out
    assert not any(Path(p).exists() for p in seen["dlnet_restore_postgres_dumps"].values())

    seen.clear()
    seen["fail"] = True
    code, _, err = _restore(capsys, inv, backed_up, "--postgres", "pg1")
    assert code == 1 and "did not ingest past ledger 90" in err, err
    assert sorted(seen["dlnet_restore_postgres_dumps"]) == ["dlnet_services", "horizon"]
    assert not any(Path(p).exists() for p in seen["dlnet_restore_postgres_dumps"].values())
    leftovers = [p for p in Path(os.environ["DLNET_STATE_DIR"]).rglob("*") if "restore-pg" in p.name]
    assert leftovers == [], leftovers
