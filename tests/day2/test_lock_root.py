"""`dlnet lock-root` (run by `make up`) against the Horizon + ledger double: the root account, whose seed is
sha256 of the committed passphrase, ends with master weight 0 and its lumens with the kit's own funder."""

from __future__ import annotations

import json
import stat

from dlnet.cli import main
from dlnet.keys import secrets_dir
from tests.doubles.inventory import write_inventory
from tests.doubles.ledger import TOTAL_COINS, root_keypair


def _inv(tmp_path, h):
    return write_inventory(
        tmp_path,
        passphrase=h.passphrase,
        validators={"v1": int(h.url.rsplit(":", 1)[1])},  # the double answers the validator's `tx` too
        horizon_port=int(h.url.rsplit(":", 1)[1]),
        extra={"dlnet_dlc": {"home_domain": "org1.dlnet.test", "supply": "1000000", "holders": 2}},
    )


def _run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_lock_root_moves_the_lumens_to_a_private_funder_and_locks_the_root(tmp_path, horizon_double, capsys):
    h = horizon_double
    inv = _inv(tmp_path, h)
    code, out, err = _run(capsys, "lock-root", "-i", inv, "--json")
    assert code == 0, err
    res = json.loads(out)
    lg = h.double.ledger
    root = lg.accounts[root_keypair(h.passphrase).public_key]
    funder = lg.accounts[res["funder"]]
    assert res["changed"] is True and res["root_locked"] is True
    assert root.master_weight == 0
    # All but the root's reserve and one lumen (in stroops): nothing worth having stays behind the public seed.
    assert funder.balance > TOTAL_COINS - 100 * 10**7 and root.balance < 100 * 10**7
    seed_file = secrets_dir("test") / "funder.seed"
    assert stat.S_IMODE(seed_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_dir("test").stat().st_mode) == 0o700
    assert seed_file.read_text().strip() not in out + err
    submissions = h.double.submissions
    code, out, err = _run(capsys, "lock-root", "-i", inv, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["changed"] is False and again["funder"] == res["funder"]
    assert h.double.submissions == submissions


def test_after_lock_root_seed_funds_from_the_kit_funder_and_lock_root_option_is_a_no_op(
    tmp_path, horizon_double, capsys
):
    h = horizon_double
    inv = _inv(tmp_path, h)
    assert _run(capsys, "lock-root", "-i", inv)[0] == 0
    code, out, err = _run(capsys, "seed", "-i", inv, "--lock-root", "--json")  # no --yes: nothing to confirm
    assert code == 0, err
    res = json.loads(out)
    assert res["changed"] is True and h.double.ledger.accounts[res["distributor"]]


def test_root_locked_by_seed_lock_root_is_left_alone(tmp_path, horizon_double, capsys):
    h = horizon_double
    inv = _inv(tmp_path, h)
    assert _run(capsys, "seed", "-i", inv, "--lock-root", "--yes")[0] == 0
    submissions = h.double.submissions
    code, out, err = _run(capsys, "lock-root", "-i", inv, "--json")
    assert code == 0, err
    assert json.loads(out)["changed"] is False and h.double.submissions == submissions


def test_lock_root_on_a_genesis_network_without_upgrade_stops_with_one_line(tmp_path, horizon_factory, capsys):
    h = horizon_factory(protocol_version=0)
    code, out, err = _run(capsys, "lock-root", "-i", _inv(tmp_path, h), "--no-upgrade-genesis")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "protocol 0" in err and "dlnet upgrade --to-latest" in err
    assert h.double.ledger.accounts[root_keypair(h.passphrase).public_key].master_weight == 1
