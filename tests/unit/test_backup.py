"""dlnet/backup.py without a network: encryption, the manifest's checks, secrets restore (the real network's
backup and restore: tests/deploy/test_backup.py)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from stellar_sdk import Keypair

from dlnet import backup as bk
from dlnet.errors import DlnetError

PASS = b"correct horse battery staple"


def _net(env: str = "bk", passphrase: str = "dlnet bk network") -> SimpleNamespace:
    return SimpleNamespace(
        env=env,
        passphrase=passphrase,
        inventory=f"inventories/{env}",
        stellar_core_version="19.14.0",
        horizon_version="2.26.1",
        components=SimpleNamespace(stellar_core=False, postgres=False),
        validators=[],
        postgres=[],
    )


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DLNET_STATE_DIR", str(tmp_path / "state"))
    sdir = tmp_path / "state" / "bk" / "secrets"
    sdir.mkdir(parents=True, mode=0o700)
    (sdir / "v1.seed").write_text(Keypair.random().secret + "\n")
    (sdir / "postgres.password").write_text("pw-" + "x" * 20 + "\n")
    return sdir


def test_chunked_encryption_round_trips_and_refuses_cuts_and_moves(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bk, "CHUNK", 1000)
    src = tmp_path / "plain"
    data = os.urandom(3500)
    src.write_bytes(data)
    key = os.urandom(32)
    bk.encrypt_file(src, tmp_path / "enc", key, "ledgers/v1.tar")
    assert stat.S_IMODE((tmp_path / "enc").stat().st_mode) == 0o600
    assert bk.decrypt_bytes(tmp_path / "enc", key, "ledgers/v1.tar") == data
    with pytest.raises(DlnetError, match="authentication failed"):  # the same file under another name
        bk.decrypt_bytes(tmp_path / "enc", key, "ledgers/v2.tar")
    sealed = (tmp_path / "enc").read_bytes()
    (tmp_path / "cut").write_bytes(sealed[: 16 + 2 * (4 + 1016)])  # the last chunks dropped
    with pytest.raises(DlnetError, match="authentication failed"):
        bk.decrypt_bytes(tmp_path / "cut", key, "ledgers/v1.tar")


def test_backup_verify_and_refusals(state: Path, tmp_path: Path) -> None:
    net = _net()
    m = bk.backup(net, tmp_path / "out", PASS)  # type: ignore[arg-type]
    path = Path(m["path"])
    assert set(m["files"]) == {"secrets/v1.seed", "secrets/postgres.password"}
    for p in [path, *path.rglob("*")]:
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
    seed = (state / "v1.seed").read_text().strip().encode()
    assert not any(seed in p.read_bytes() for p in path.rglob("*") if p.is_file())
    v = bk.verify(path, PASS, net)  # type: ignore[arg-type]
    assert v.read("secrets/v1.seed").strip() == seed

    with pytest.raises(DlnetError, match="wrong backup passphrase"):
        bk.verify(path, b"another passphrase here", net)  # type: ignore[arg-type]
    with pytest.raises(DlnetError, match="another network"):
        bk.verify(path, PASS, _net(passphrase="someone else's network"))  # type: ignore[arg-type]
    enc = path / "secrets" / "v1.seed.enc"
    good = enc.read_bytes()
    enc.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(DlnetError, match=r"secrets/v1.seed has sha256 .* altered"):
        bk.verify(path, PASS, net)  # type: ignore[arg-type]
    enc.write_bytes(good)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["network_record"] = "0" * 64
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DlnetError, match="manifest was changed"):
        bk.verify(path, PASS, net)  # type: ignore[arg-type]


def test_restore_secrets_never_overwrites_without_force(state: Path, tmp_path: Path) -> None:
    net = _net()
    v = bk.verify(Path(bk.backup(net, tmp_path / "out", PASS)["path"]), PASS, net)  # type: ignore[arg-type]
    (state / "postgres.password").unlink()
    assert bk.restore_secrets(v, net) == {  # type: ignore[arg-type]
        "written": ["postgres.password"],
        "unchanged": ["v1.seed"],
        "overwritten": [],
    }
    assert stat.S_IMODE((state / "postgres.password").stat().st_mode) == 0o600
    other = Keypair.random().secret + "\n"
    (state / "v1.seed").write_text(other)
    with pytest.raises(DlnetError, match=r"v1.seed in .* differ from the backup's .* --force"):
        bk.restore_secrets(v, net)  # type: ignore[arg-type]
    assert (state / "v1.seed").read_text() == other
    assert bk.restore_secrets(v, net, force=True)["overwritten"] == ["v1.seed"]  # type: ignore[arg-type]


def test_passphrase_comes_from_a_file_or_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(bk.PASSPHRASE_FILE_ENV, raising=False)
    monkeypatch.delenv(bk.PASSPHRASE_ENV, raising=False)
    with pytest.raises(DlnetError, match="at least 12 characters"):
        bk.read_passphrase(None)
    (tmp_path / "p").write_text("a long enough passphrase\n")
    assert bk.read_passphrase(str(tmp_path / "p")) == b"a long enough passphrase"
    monkeypatch.setenv(bk.PASSPHRASE_ENV, "from the environment")
    assert bk.read_passphrase(None) == b"from the environment"


def test_a_failed_backup_leaves_no_backup_behind(state: Path, tmp_path: Path, monkeypatch) -> None:
    def fail(net, name, extra, extra_vars, log):  # type: ignore[no-untyped-def]
        log.write_text("PLAY RECAP\n")
        raise DlnetError(f"backup.yml failed: fatal: [v1] tar failed (log: {log})")

    monkeypatch.setattr(bk, "run_playbook", fail)
    net = _net()
    net.components.postgres, net.postgres = True, ["pg1"]
    with pytest.raises(DlnetError, match=r"tar failed \(log: .*\.failed\.log\)"):
        bk.backup(net, tmp_path / "out", PASS)  # type: ignore[arg-type]
    assert [p.name.endswith(".failed.log") for p in (tmp_path / "out").iterdir()] == [True]
