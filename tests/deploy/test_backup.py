"""`dlnet backup` / `dlnet restore` on the real ops network (3 validators, 1 s ledgers, PostgreSQL, Horizon).

Issue 12's done-when: a wiped validator restored from a backup and one restored from history both end on the
same ledger hash as the others. Also: a tampered backup and another network's backup are refused before
anything is touched, the backup's files are private and hold no secret in the clear, nothing secret reaches
the output, Horizon's dump restores, and `restore --postgres` puts it back under the running Horizon, which
re-ingests to the validators' chain. Every test leaves the network with all validators Synced!.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from dlnet import backup as bk
from tests.network import OPS_ENV, Deployment, ops_ports, run_cli

pytestmark = pytest.mark.stellar

PASSPHRASE = "backup passphrase of the ops test network"
VICTIM = "v3"
VICTIM_INDEX = 2


def _run(dep: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(dep, *args, "--json")


def _admin(i: int) -> str:
    return f"http://127.0.0.1:{ops_ports().peer + 10 * i + 1}"


def _info(i: int) -> dict:
    try:
        return httpx.get(f"{_admin(i)}/info", timeout=2).json()["info"]
    except (httpx.HTTPError, ValueError, KeyError):
        return {}


def same_ledger(timeout: float = 60, horizon_wait: int = 30) -> tuple[int, str]:
    """Sample the three validators until they report the same last closed ledger; its number and hash (after
    checking every hash and Horizon's record of that ledger agree)."""
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    while time.monotonic() < deadline:
        seen = [_info(i) for i in range(3)]
        nums = {s.get("ledger", {}).get("num") for s in seen}
        if all(s.get("state") == "Synced!" for s in seen) and len(nums) == 1:
            hashes = {s["ledger"]["hash"] for s in seen}
            assert len(hashes) == 1, f"same ledger {nums}, different hashes {hashes}: validators forked"
            num, hash_ = seen[0]["ledger"]["num"], hashes.pop()
            horizon = f"http://127.0.0.1:{ops_ports().horizon}/ledgers/{num}"
            for _ in range(horizon_wait):  # Horizon ingests a ledger or two behind (more after a restore)
                r = httpx.get(horizon, timeout=5)
                if r.status_code == 200:
                    assert r.json()["hash"] == hash_, f"Horizon's ledger {num} differs from the validators'"
                    return num, hash_
                time.sleep(1)
            pytest.fail(f"Horizon never served ledger {num}")
        time.sleep(0.2)
    pytest.fail(f"validators never agreed on one synced ledger within {timeout} s: {[s.get('ledger') for s in seen]}")


def published(i: int, above: int = 0, timeout: float = 40) -> int:
    """The last checkpoint validator i's history archive serves over HTTP, once past `above` (or at the deadline)."""
    url = f"http://127.0.0.1:{ops_ports().history + i}/.well-known/stellar-history.json"
    deadline, current = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        try:
            current = int(httpx.get(url, timeout=2).json()["currentLedger"])
        except (httpx.HTTPError, ValueError, KeyError):
            current = 0
        if current > above:
            return current
        time.sleep(1)
    return current


def wipe(dep: Deployment, name: str) -> None:
    """A wiped host: its containers and its whole data directory (ledger, buckets, archive) gone."""
    for kind in ("core", "history"):
        subprocess.run(["docker", "rm", "-f", f"dlnet-{OPS_ENV}-{kind}-{name}"], capture_output=True, check=True)
    shutil.rmtree(Path("/var/lib/dlnet") / OPS_ENV / "stellar-core" / name)


def started_at(name: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", f"dlnet-{OPS_ENV}-core-{name}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def backed_up(ops_network: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("backup")
    pfile = tmp / "passphrase"
    pfile.write_text(PASSPHRASE + "\n")
    pfile.chmod(0o600)
    before, _ = same_ledger()  # Horizon holds this ledger: its dump, taken later, holds at least this one
    start = time.monotonic()
    proc = _run(ops_network, "backup", str(tmp / "backups"), "--passphrase-file", str(pfile))
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads(proc.stdout)
    print(f"\nbackup: {took:.1f} s, {manifest['bytes'] / 1e6:.2f} MB, files {len(manifest['files'])}")
    same_ledger()  # every validator back after its copy
    return {
        "path": Path(manifest["path"]),
        "pfile": pfile,
        "manifest": manifest,
        "output": proc.stdout + proc.stderr,
        "before": before,
    }


def _secrets(dep: Deployment) -> list[bytes]:
    sdir = dep.state / OPS_ENV / "secrets"
    out = [p.read_bytes().strip() for p in sdir.iterdir() if p.is_file() and not p.name.endswith(".pub")]
    assert any(p.name.endswith(".seed") for p in sdir.iterdir()) and len(out) >= 4, sorted(sdir.iterdir())
    return out


def test_backup_holds_every_part_private_and_encrypted(ops_network, backed_up) -> None:
    path, m = backed_up["path"], backed_up["manifest"]
    files = set(m["files"])
    assert {f"ledgers/v{i}.tar" for i in (1, 2, 3)} <= files
    assert {"secrets/v1.seed", "secrets/funder.seed", "secrets/postgres.password"} <= files
    assert "postgres/pg1-horizon.dump" in files
    assert all(v["num"] > 1 and len(v["hash"]) == 64 for v in m["validators"].values()), m["validators"]
    for p in [path, *path.rglob("*")]:
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
    secrets = _secrets(ops_network)
    for p in path.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert not any(s in data for s in secrets), f"a secret in the clear in {p}"
    assert not any(s.decode() in backed_up["output"] for s in secrets), "a secret in dlnet backup's output"


def test_restore_wiped_validator_from_backup_rejoins_the_same_chain(ops_network, backed_up) -> None:
    wipe(ops_network, VICTIM)
    start = time.monotonic()
    proc = _run(
        ops_network,
        "restore",
        str(backed_up["path"]),
        "--validator",
        VICTIM,
        "--passphrase-file",
        str(backed_up["pfile"]),
    )
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["secrets"]["overwritten"] == [] and out["secrets"]["written"] == [], out["secrets"]
    assert out["validator"]["backup_ledger"]["num"] == backed_up["manifest"]["validators"][VICTIM]["num"]
    num, _ = same_ledger()
    assert num > out["validator"]["backup_ledger"]["num"]
    copied = out["validator"]["backup_ledger"]["num"]
    assert published(VICTIM_INDEX, above=copied) > copied, "its archive is not served and published again"
    secrets = _secrets(ops_network)
    logs = [p.read_text() for p in (ops_network.state / OPS_ENV / "logs").glob("*.log")]
    assert logs and not any(s.decode() in text for s in secrets for text in [proc.stdout + proc.stderr, *logs])
    print(f"\nrestore from backup: {took:.1f} s to Synced!")


def test_restore_wiped_validator_from_history_rejoins_the_same_chain(ops_network) -> None:
    wipe(ops_network, VICTIM)
    start = time.monotonic()
    proc = _run(ops_network, "restore", "--from-history", "--validator", VICTIM)
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    same_ledger()
    # Its own archive was created afresh (the host lost it), receives checkpoints again and is served.
    assert published(VICTIM_INDEX) > 0, "the restored validator's archive serves no checkpoint"
    print(f"\nrestore from history: {took:.1f} s to Synced!")


def _refused(dep: Deployment, backup: Path, pfile: Path, expect: str) -> None:
    before = started_at(VICTIM)
    secrets = {p: p.read_bytes() for p in (dep.state / OPS_ENV / "secrets").iterdir()}
    proc = _run(dep, "restore", str(backup), "--validator", VICTIM, "--force", "--passphrase-file", str(pfile))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expect in lines[0], proc.stderr
    assert started_at(VICTIM) == before, "the validator was touched"
    assert {p: p.read_bytes() for p in secrets} == secrets


def test_tampered_backup_is_refused_before_anything_is_touched(ops_network, backed_up, tmp_path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(backed_up["path"], copy)
    enc = copy / "ledgers" / f"{VICTIM}.tar.enc"
    data = bytearray(enc.read_bytes())
    data[len(data) // 2] ^= 0x01
    enc.write_bytes(bytes(data))
    _refused(ops_network, copy, backed_up["pfile"], f"ledgers/{VICTIM}.tar has sha256")


def test_backup_of_another_network_is_refused(ops_network, backed_up, tmp_path) -> None:
    # Another network's backup sealed with the same backup passphrase: only the network record differs.
    copy = tmp_path / "foreign"
    shutil.copytree(backed_up["path"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["network_record"] = bk.passphrase_digest("another private network")
    k = bk.Keys.derive(PASSPHRASE.encode(), bytes.fromhex(manifest["kdf"]["salt"]), manifest["kdf"])
    bk.write_manifest(copy, manifest, k.mac)
    _refused(ops_network, copy, backed_up["pfile"], "belongs to another network")


def test_horizon_dump_restores_into_a_scratch_database(ops_network, backed_up, tmp_path) -> None:
    dump = tmp_path / "horizon.dump"
    name = "postgres/pg1-horizon.dump"
    proc = _run(
        ops_network,
        "restore",
        str(backed_up["path"]),
        "--extract",
        name,
        "--to",
        str(dump),
        "--passphrase-file",
        str(backed_up["pfile"]),
    )
    assert proc.returncode == 0 and stat.S_IMODE(dump.stat().st_mode) == 0o600, proc.stderr
    v = bk.verify(backed_up["path"], PASSPHRASE.encode())
    pg = f"dlnet-{OPS_ENV}-postgres-pg1"
    port = str(ops_ports().postgres)
    psql = ["docker", "exec", "-i", pg, "psql", "-h", "/run/postgresql", "-p", port, "-tA", "-v", "ON_ERROR_STOP=1"]

    def sql(text: str, db: str = "postgres") -> str:
        proc = subprocess.run([*psql, "-d", db, "-c", text], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    sql("DROP DATABASE IF EXISTS restore_check")
    sql("CREATE DATABASE restore_check")
    try:
        with dump.open("rb") as fh:
            proc = subprocess.run(
                [
                    "docker",
                    "exec",
                    "-i",
                    pg,
                    "pg_restore",
                    "-h",
                    "/run/postgresql",
                    "-p",
                    port,
                    "-d",
                    "restore_check",
                    "--no-owner",
                    "--exit-on-error",
                ],
                stdin=fh,
                capture_output=True,
                check=False,
            )
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        count, low, top = map(
            int, sql("SELECT count(*), min(sequence), max(sequence) FROM history_ledgers", "restore_check").split("|")
        )
        # Every ingested ledger, without a gap, up to past the last validator's copy (the dump is taken after).
        assert count == top - low + 1 and top >= max(x["num"] for x in v.manifest["validators"].values()), (
            count,
            low,
            top,
        )
    finally:
        sql("DROP DATABASE IF EXISTS restore_check")


def _horizon(path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{ops_ports().horizon}{path}", timeout=10)


def _create_account(dep: Deployment) -> tuple[str, int]:
    """A new account through Horizon (funded by the kit's funder): its key and the ledger that created it."""
    from stellar_sdk import Keypair, Network, Server, TransactionBuilder

    from dlnet.config import load_network

    passphrase = load_network(dep.inventory).passphrase
    funder = Keypair.from_secret((dep.state / OPS_ENV / "secrets" / "funder.seed").read_text().strip())
    server = Server(f"http://127.0.0.1:{ops_ports().horizon}")
    new = Keypair.random()
    tx = (
        TransactionBuilder(server.load_account(funder.public_key), Network(passphrase).network_passphrase, 100)
        .append_create_account_op(new.public_key, "20")
        .set_timeout(60)
        .build()
    )
    tx.sign(funder)
    return new.public_key, int(server.submit_transaction(tx)["ledger"])


def test_restore_postgres_brings_horizon_back_on_the_same_history(ops_network, backed_up) -> None:
    """Horizon's database restored from the backup into the running network: Horizon stops, gets the backup's
    (older) database, starts, ingests again past the ledger it held, and serves the validators' history."""
    dump_ledger = min(x["num"] for x in backed_up["manifest"]["validators"].values())  # in the dump (taken after)
    account, created_in = _create_account(ops_network)  # after the backup: not in the dump
    num, _ = same_ledger()  # Horizon has ingested past the account's ledger
    assert num >= created_in
    held = _horizon("/").json()["history_latest_ledger"]
    assert _horizon(f"/accounts/{account}").status_code == 200
    start = time.monotonic()
    proc = _run(
        ops_network,
        "restore",
        str(backed_up["path"]),
        "--postgres",
        "pg1",
        "--passphrase-file",
        str(backed_up["pfile"]),
    )
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    pg = json.loads(proc.stdout)["postgres"]
    horizon = pg["consumers"]["horizon-horizon1"]
    restored = pg["restore"]["horizon_ledger"]["horizon"]
    # The database went back to the backup's point, before the account; Horizon then ingested past `held`.
    # (Its lower bound is what Horizon held when the backup began: the validators' copies, taken before the
    # dump, may be ahead of what Horizon had ingested by then.)
    before = backed_up["before"]
    assert before <= restored < created_in <= held, (before, dump_ledger, restored, created_in, held)
    assert horizon["held"] >= held and horizon["latest"] > horizon["held"] and not horizon["failed"], horizon
    # The same history as the validators: a ledger from before the backup, the account's, and the latest.
    caught = time.monotonic()
    # Horizon re-ingests from the restored point through its captive core: give it time to reach the tip
    # (CI once saw it more than 30 s behind).
    latest, latest_hash = same_ledger(timeout=120, horizon_wait=180)
    for seq in (dump_ledger, created_in):
        got = _horizon(f"/ledgers/{seq}").json()["hash"]
        want = _ledger_hash_from_validators(seq)
        assert got == want, f"ledger {seq}: Horizon {got}, validators {want}"
    assert _horizon(f"/ledgers/{latest}").json()["hash"] == latest_hash
    assert _horizon(f"/accounts/{account}").status_code == 200, "the account's creation was not ingested again"
    ledgers = _horizon("/ledgers?order=asc&limit=1").json()["_embedded"]["records"][0]["sequence"]
    assert ledgers <= dump_ledger, "Horizon lost the history before the backup"
    # Nothing secret in the output or the restore's log; no decrypted dump left behind.
    secrets = _secrets(ops_network)
    log = (ops_network.state / OPS_ENV / "logs" / "restore-postgres-pg1.log").read_text()
    assert not any(s.decode() in text for s in secrets for text in [proc.stdout + proc.stderr, log])
    assert not list((ops_network.state / OPS_ENV).glob("dlnet-restore-pg-*"))
    assert not list((Path("/var/lib/dlnet") / OPS_ENV / "backup").rglob("restore-*.dump"))
    print(
        f"\nrestore --postgres: dump {pg['databases']['horizon'] / 1e6:.2f} MB, pg_restore"
        f" {pg['restore']['seconds']['horizon']}, command {took:.1f} s; Horizon from ledger {restored}"
        f" (held {held}) answered in {horizon['seconds_to_answer']} s, past {horizon['held']} in"
        f" {horizon['seconds_to_pass_held']} s, on the validators' ledger {latest}"
        f" {time.monotonic() - caught + horizon['seconds_to_pass_held']:.1f} s after the start"
    )


def _ledger_hash_from_validators(seq: int) -> str:
    """A validator's hash of ledger `seq`, from its published history archive (the checkpoint file holding it)."""
    import gzip

    checkpoint = (seq // 8 + 1) * 8 - 1  # 1 s ledgers: a checkpoint every 8
    name = f"{checkpoint:08x}"
    url = f"http://127.0.0.1:{ops_ports().history}/ledger/{name[0:2]}/{name[2:4]}/{name[4:6]}/ledger-{name}.xdr.gz"
    published(0, above=checkpoint - 1, timeout=60)
    data = gzip.decompress(httpx.get(url, timeout=10).content)
    from stellar_sdk.xdr import LedgerHeaderHistoryEntry

    pos = 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big") & 0x7FFFFFFF
        entry = LedgerHeaderHistoryEntry.from_xdr_bytes(data[pos + 4 : pos + 4 + length])
        pos += 4 + length
        if entry.header.ledger_seq.uint32 == seq:
            return entry.hash.hash.hex()
    raise AssertionError(f"ledger {seq} not in checkpoint {checkpoint}")
