"""`dlnet seed` and `dlnet model register` against the Horizon + ledger double: outcomes on the chain."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from stellar_sdk import Keypair, Server, TransactionBuilder

from dlnet.cli import main
from dlnet.keys import secrets_dir
from tests.doubles.inventory import write_inventory
from tests.doubles.ledger import STROOPS, root_keypair


def _inv(tmp_path, h, passphrase=None, dlc=None, core_port=None):
    extra = {"dlnet_dlc": {"home_domain": "org1.dlnet.test", "supply": "1000000", **(dlc or {})}}
    # The validator's admin `tx` endpoint is the Horizon double's own (submissions go there, as to stellar-core).
    return write_inventory(
        tmp_path,
        passphrase=passphrase or h.passphrase,
        validators={"v1": core_port or int(h.url.rsplit(":", 1)[1])},
        horizon_port=int(h.url.rsplit(":", 1)[1]),
        extra=extra,
    )


def _run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _secrets() -> list[str]:
    d = secrets_dir("test")
    return [line for p in d.glob("*.seed*") for line in p.read_text().split()] if d.exists() else []


def _state(h):
    lg = h.double.ledger
    return {
        k: (
            a.balance,
            a.seq,
            a.flags,
            a.home_domain,
            a.master_weight,
            {t: (tl.balance, tl.flags) for t, tl in a.trustlines.items()},
            dict(a.data),
        )
        for k, a in lg.accounts.items()
    }


def test_seed_creates_the_coin_then_a_second_run_changes_nothing(tmp_path, horizon_double, capsys):
    h = horizon_double
    inv = _inv(tmp_path, h, dlc={"holders": 3})
    code, out, err = _run(capsys, "seed", "-i", inv, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["changed"] is True
    lg = h.double.ledger
    issuer = lg.accounts[res["issuer"]]
    dist = lg.accounts[res["distributor"]]
    key = ("DLC", res["issuer"])
    assert issuer.flags == 1 | 2 | 8 and issuer.home_domain == "org1.dlnet.test"
    assert dist.trustlines[key].balance == 1_000_000 * STROOPS and dist.trustlines[key].flags & 1
    holders = [a for k, a in lg.accounts.items() if key in a.trustlines and k != res["distributor"]]
    assert len(holders) == 3 and all(a.trustlines[key].flags & 1 for a in holders)
    # keys: 0600, never printed
    for p in secrets_dir("test").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert _secrets() and not any(s in out + err for s in _secrets())
    before, submissions = _state(h), h.double.submissions
    code, out, err = _run(capsys, "seed", "-i", inv, "--json")
    assert code == 0, err
    assert json.loads(out)["changed"] is False
    assert _state(h) == before and h.double.submissions == submissions


def test_interrupted_seed_resumes_without_issuing_twice(tmp_path, horizon_double, capsys):
    h = horizon_double
    inv = _inv(tmp_path, h, dlc={"holders": 40})
    h.double.inject("ok", "server_error")  # the second transaction dies: a crash mid-way
    code, _, err = _run(capsys, "seed", "-i", inv)
    assert code == 1 and "HTTP 500" in err.strip().splitlines()[-1]
    half = [a for a in h.double.ledger.accounts.values() if a.trustlines]
    assert 0 < len(half) < 41  # the first transaction applied, the rest did not
    code, out, err = _run(capsys, "seed", "-i", inv, "--json")
    assert code == 0, err
    res = json.loads(out)
    lg = h.double.ledger
    key = ("DLC", res["issuer"])
    assert lg.accounts[res["distributor"]].trustlines[key].balance == 1_000_000 * STROOPS
    holders = [a for a in lg.accounts.values() if key in a.trustlines and a.id != res["distributor"]]
    assert len(holders) == 40 and all(a.trustlines[key].flags & 1 for a in holders)


def test_try_again_later_and_timeouts_are_retried(tmp_path, horizon_double, capsys):
    h = horizon_double
    h.double.inject("try_again_later", "insufficient_fee")  # stellar-core: no room now, twice
    code, out, err = _run(capsys, "seed", "-i", _inv(tmp_path, h), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert "queue is full (TRY_AGAIN_LATER)" in err
    assert h.double.core_submissions == h.double.submissions  # every transaction went to the validator
    key = ("DLC", res["issuer"])
    assert h.double.ledger.accounts[res["distributor"]].trustlines[key].balance == 1_000_000 * STROOPS


def test_lock_root_with_yes_then_root_cannot_fund_more(tmp_path, horizon_double, capsys):
    h = horizon_double
    inv = _inv(tmp_path, h)
    code, out, err = _run(capsys, "seed", "-i", inv, "--lock-root", "--yes", "--json")
    assert code == 0, err
    root = h.double.ledger.accounts[root_keypair(h.passphrase).public_key]
    assert root.master_weight == 0
    code, out, err = _run(capsys, "seed", "-i", inv, "--lock-root", "--yes")
    assert code == 0 and "nothing to do" in out
    code, _, err = _run(capsys, "seed", "-i", inv, "--holders", "2")
    assert code == 1 and "locked (master weight 0)" in err and "--funder-secret-file" in err


def test_lock_root_without_confirmation_does_nothing(tmp_path, horizon_double, capsys):
    h = horizon_double
    before = _state(h)
    code, _, err = _run(capsys, "seed", "-i", _inv(tmp_path, h), "--lock-root")
    assert code == 1 and "pass --yes" in err
    assert _state(h) == before


def _funded(h, tmp_path, xlm: str, mode=0o600) -> str:
    kp = Keypair.random()
    root = root_keypair(h.passphrase)
    server = Server(h.url)
    tx = (
        TransactionBuilder(server.load_account(root.public_key), h.passphrase, 100)
        .append_create_account_op(kp.public_key, xlm)
        .set_timeout(30)
        .build()
    )
    tx.sign(root)
    server.submit_transaction(tx)
    path = tmp_path / "funder.seed"
    path.write_text(kp.secret + "\n")
    os.chmod(path, mode)
    return str(path)


def test_operator_funded_account_works_and_its_seed_is_never_printed(tmp_path, horizon_double, capsys):
    h = horizon_double
    path = _funded(h, tmp_path, "1000")
    code, out, err = _run(capsys, "seed", "-i", _inv(tmp_path, h), "--funder-secret-file", path)
    assert code == 0, err
    assert Path(path).read_text().strip() not in out + err
    assert "DLC:" in out


# ---- bad input: one line, exit 1, nothing changed on chain -----------------------------------------------
def _refused(capsys, h, args, needle):
    before = _state(h)
    code, out, err = _run(capsys, *args)
    assert code == 1, (out, err)
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert _state(h) == before


def test_insufficient_funder_balance(tmp_path, horizon_double, capsys):
    h = horizon_double
    path = _funded(h, tmp_path, "30")
    _refused(capsys, h, ["seed", "-i", _inv(tmp_path, h), "--funder-secret-file", path], "insufficient balance")


def test_insufficient_root_balance_for_many_holders(tmp_path, horizon_double, capsys):
    h = horizon_double
    inv = _inv(tmp_path, h, dlc={"holder_starting_balance": "900000000000"})
    # 100 billion XLM cannot fund two holders of 900 billion each: refused before any transaction
    _refused(capsys, h, ["seed", "-i", inv, "--holders", "2"], "insufficient balance")


def test_wrong_passphrase_for_the_network(tmp_path, horizon_double, capsys):
    h = horizon_double
    _refused(
        capsys, h, ["seed", "-i", _inv(tmp_path, h, passphrase="not this network")], "fix dlnet_network_passphrase"
    )


def test_protocol_zero_network_needs_an_upgrade_first(tmp_path, horizon_factory, capsys):
    h = horizon_factory(protocol_version=0)
    _refused(capsys, h, ["seed", "-i", _inv(tmp_path, h)], "dlnet upgrade --to-latest")


@pytest.mark.parametrize(
    ("dlc", "needle"),
    [
        ({"supply": "12.345678901"}, "dlnet_dlc.supply"),
        ({"supply": "-5"}, "dlnet_dlc.supply"),
        ({"supply": "lots"}, "dlnet_dlc.supply"),
        ({"supply": "922337203686"}, "dlnet_dlc.supply"),
        ({"code": "DEEP-LEARNING"}, "dlnet_dlc.code"),
        ({"holder_starting_balance": "0"}, "dlnet_dlc.holder_starting_balance"),
        ({"flags": ["auth_immortal"]}, "dlnet_dlc.flags"),
        ({"flags": ["auth_clawback_enabled"]}, "needs auth_revocable"),
        ({"home_domain": "a-very-long-home-domain-for-an-issuer.example.com"}, "dlnet_dlc.home_domain"),
        ({"colour": "blue"}, "unknown key"),
    ],
)
def test_malformed_asset_settings(tmp_path, horizon_double, capsys, dlc, needle):
    h = horizon_double
    _refused(capsys, h, ["seed", "-i", _inv(tmp_path, h, dlc=dlc)], needle)


def test_supply_lowered_after_issuing_is_refused(tmp_path, horizon_double, capsys):
    h = horizon_double
    assert _run(capsys, "seed", "-i", _inv(tmp_path, h))[0] == 0
    _refused(capsys, h, ["seed", "-i", _inv(tmp_path, h, dlc={"supply": "10"})], "never burns")


@pytest.mark.parametrize(
    ("content", "mode", "needle"),
    [
        ("not-a-seed", 0o600, "does not hold a Stellar secret seed"),
        ("SBADSEED", 0o600, "does not hold a Stellar secret seed"),
        (None, 0o600, "no such file"),
        ("S" * 56, 0o644, "chmod 600"),
    ],
)
def test_malformed_or_exposed_funder_key(tmp_path, horizon_double, capsys, content, mode, needle):
    h = horizon_double
    path = tmp_path / "funder.seed"
    if content is not None:
        path.write_text(content + "\n")
        os.chmod(path, mode)
    _refused(capsys, h, ["seed", "-i", _inv(tmp_path, h), "--funder-secret-file", str(path)], needle)


def test_unreachable_horizon(tmp_path, horizon_factory, capsys):
    h = horizon_factory()
    inv = _inv(tmp_path, h)
    h.double.stop()
    code, _, err = _run(capsys, "seed", "-i", inv)
    assert code == 1 and "unreachable" in err and len(err.strip().splitlines()) == 1


def test_bad_holders_count(tmp_path, horizon_double, capsys):
    h = horizon_double
    _refused(capsys, h, ["seed", "-i", _inv(tmp_path, h), "--holders", "-1"], "--holders -1")


# ---- models -------------------------------------------------------------------------------------------
def test_model_register_issues_dlm_and_vlm_once(tmp_path, horizon_double, capsys):
    h = horizon_double
    inv = _inv(tmp_path, h)
    code, out, err = _run(capsys, "model", "register", "mnist-cnn", "-i", inv, "--dlm-supply", "500", "--json")
    assert code == 0, err
    res = json.loads(out)
    ini = h.double.ledger.accounts[res["initiator"]]
    assert ini.trustlines[("DLM", res["issuer"])].balance == 500 * STROOPS
    assert ini.trustlines[("VLM", res["issuer"])].balance == 1000 * STROOPS
    before = _state(h)
    code, out, err = _run(capsys, "model", "register", "mnist-cnn", "-i", inv, "--dlm-supply", "500", "--json")
    assert code == 0 and json.loads(out)["changed"] is False and _state(h) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["Bad Name"], "model name"),
        (["mnist", "--dlm-supply", "0"], "--dlm-supply"),
        (["mnist", "--vlm-supply", "1e5"], "--vlm-supply"),
    ],
)
def test_model_register_bad_input(tmp_path, horizon_double, capsys, args, needle):
    h = horizon_double
    _refused(capsys, h, ["model", "register", *args, "-i", _inv(tmp_path, h)], needle)


def test_holders_go_through_channels_several_transactions_per_ledger(tmp_path, horizon_factory, capsys):
    import threading

    from tests.doubles.horizon import wait_until

    h = horizon_factory(max_tx_set_size=1000)
    inv = _inv(tmp_path, h, dlc={"holders": 60, "channels": 4})
    assert _run(capsys, "seed", "-i", inv, "--holders", "1")[0] == 0  # the coin and its channels first
    h.double.held = True
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(code=main(["seed", "-i", inv, "--json"])))
    worker.start()
    assert wait_until(lambda: len(h.double.ledger.queue) >= 2)  # channel transactions wait side by side
    h.double.held = False
    worker.join()
    assert result["code"] == 0, capsys.readouterr().err
    busiest = max(r["successful_transaction_count"] for r in h.double.ledger.ledgers)
    assert busiest >= 2
    key_holders = [a for a in h.double.ledger.accounts.values()
                   if any(t[0] == "DLC" and tl.flags & 1 for t, tl in a.trustlines.items())]
    assert len(key_holders) == 61  # distributor + 60 holders, all authorized


def test_channel_count_and_transaction_size_fill_ledgers():
    from dlnet import seed as sd
    from dlnet.day2 import DlcSettings

    # Whole transactions fill a ledger (3 operations per holder, at most 17 holders per transaction).
    for size in (100, 200, 300, 1000, 5000):
        n = sd.groups_per_tx(size, 3)
        assert 1 <= n <= 17 and (size // (3 * n)) * 3 * n >= 0.97 * (size - size % 3), (size, n)
    dlc = DlcSettings(holders=1000, channels=8)
    # One channel per transaction (19.14 queues one transaction per account), at least the configured count,
    # at most MAX_CHANNELS.
    assert sd.channels_needed(dlc, 1000) == 59  # 1,000 holders, 17 a transaction
    assert sd.channels_needed(dlc, 600) == 100  # 10 a transaction
    assert sd.channels_needed(dlc, 100) == 91  # 11 a transaction fill 99 of 100 operations
    assert sd.channels_needed(dlc.model_copy(update={"holders": 20}), 1000) == 8
    assert sd.channels_needed(dlc.model_copy(update={"holders": 0}), 1000) == 0


def test_seed_fills_ledgers_with_holders(tmp_path, horizon_factory, capsys):
    # 300 holders (900 operations) at max tx set size 200: no more ledgers than ceil(900 / 200) + 1.
    h = horizon_factory(max_tx_set_size=200, close_interval=0.25)
    code, out, err = _run(capsys, "seed", "-i", _inv(tmp_path, h, dlc={"holders": 300, "channels": 2}), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["holder_operations"] == 900
    assert res["holder_ledger_count"] <= -(-900 // 200) + 1, res
    busy = [r["operation_count"] for r in h.double.ledger.ledgers if r["operation_count"]]
    assert max(busy) <= 200 and sorted(busy)[-2] >= 190  # full transaction sets, within the limit


def test_a_full_queue_is_waited_out_not_fatal(tmp_path, horizon_double, capsys):
    # stellar-core refuses what its queue cannot hold at the base fee with tx_insufficient_fee: sent again.
    h = horizon_double
    h.double.inject("insufficient_fee", "insufficient_fee")
    code, out, err = _run(capsys, "seed", "-i", _inv(tmp_path, h, dlc={"holders": 5}), "--json")
    assert code == 0, err
    assert err.count("queue is full (txINSUFFICIENT_FEE)") == 1  # said once per transaction, then waited out
    assert h.double.core_submissions == h.double.submissions >= 3
    res = json.loads(out)
    key = ("DLC", res["issuer"])
    assert h.double.ledger.accounts[res["distributor"]].trustlines[key].balance == 1_000_000 * STROOPS
