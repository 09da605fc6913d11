"""`dlnet upgrade` against the stellar-core double: outcomes in the ledger headers and armed state."""

from __future__ import annotations

import json

import httpx
import pytest

from dlnet.cli import main
from tests.doubles.inventory import write_inventory

PASS = "dlnet test network ; 2026"


def _inv(tmp_path, core, passphrase=PASS, **extra):
    return write_inventory(
        tmp_path,
        passphrase=passphrase,
        validators={n: node.port for n, node in core.nodes.items()},
        extra=extra or None,
    )


def _armed(core):
    return {
        n: httpx.get(core.url(n) + "/upgrades", params={"mode": "get"}).json()
        for n in core.nodes
        if core.nodes[n].mode not in ("down", "hang")
    }


def _nothing_armed(core) -> bool:
    return all(all(v.get("nullopt", True) for k, v in body.items() if k != "time") for body in _armed(core).values())


def _run(capsys, *args):
    code = main(["upgrade", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_to_latest_and_max_tx_set_size_apply_on_every_validator_then_rerun_changes_nothing(
    tmp_path, core_factory, capsys
):
    core = core_factory(3)
    inv = _inv(tmp_path, core)
    code, out, err = _run(capsys, "-i", inv, "--to-latest", "--max-tx-set-size", "500", "--lead", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["changed"] is True
    assert result["values"] == {"protocolversion": 19, "maxtxsetsize": 500}
    for n in core.nodes:
        lg = httpx.get(core.url(n) + "/info").json()["info"]["ledger"]
        assert (lg["version"], lg["maxTxSetSize"]) == (19, 500)
    applied = next(h for h in core.history if h.version == 19)
    assert result["ledger"] >= applied.num
    assert "upgrade: armed and confirmed on all 3 validators" in err  # progress of the wait
    assert _nothing_armed(core)
    code, out, err = _run(capsys, "-i", inv, "--to-latest", "--max-tx-set-size", "500", "--json")
    assert code == 0, err
    assert json.loads(out)["changed"] is False
    assert _nothing_armed(core)


def test_inventory_values_are_used_when_no_flag_is_given(tmp_path, core_factory, capsys):
    core = core_factory(3, protocol_version=19)
    inv = _inv(tmp_path, core, dlnet_upgrade={"base_reserve": 5000000, "lead_seconds": 1})
    code, out, err = _run(capsys, "-i", inv)
    assert code == 0, err
    assert "base reserve 5000000 applied" in out
    assert core.header.baseReserve == 5000000


def test_refusing_validator_means_none_stays_armed(tmp_path, core_factory, capsys):
    core = core_factory(3)
    core.set_mode("v3", "refuse")
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core), "--max-tx-set-size", "400", "--lead", "600")
    assert code == 1
    assert "v3: refused the upgrade" in err and "cleared on v1, v2, v3" in err
    assert len(err.strip().splitlines()) == 2  # one progress line, one error line
    assert _nothing_armed(core)
    assert core.header.maxTxSetSize == 100


@pytest.mark.parametrize("mode", ["down", "hang"])
def test_unreachable_validator_stops_before_arming_anything(tmp_path, core_factory, capsys, mode):
    core = core_factory(3, threshold=2, hang_seconds=3)
    core.set_mode("v2", mode)
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core), "--max-tx-set-size", "400")
    assert code == 1
    assert "v2" in err and "nothing was armed" in err and len(err.strip().splitlines()) == 1
    assert _nothing_armed(core)
    assert all(not n.upgrade_requests for n in core.nodes.values())


def test_lagging_validator_stops_before_arming(tmp_path, core_factory, capsys):
    core = core_factory(3, threshold=2)
    core.set_mode("v3", "lag")
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core), "--max-tx-set-size", "400")
    assert code == 1 and "v3 (Catching up)" in err
    assert all(not n.upgrade_requests for n in core.nodes.values())


def test_timeout_clears_on_all_and_reports_each_validator(tmp_path, core_factory, capsys):
    core = core_factory(3, close_interval=3600)  # a stalled network: no ledger closes, the upgrade never applies
    code, _, err = _run(
        capsys, "-i", _inv(tmp_path, core), "--max-tx-set-size", "300", "--lead", "0", "--deadline", "1"
    )
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert "not applied within 1s" in last and "cleared on v1, v2, v3" in last
    assert all(f"{n}: ledger" in last for n in ("v1", "v2", "v3"))
    assert _nothing_armed(core)
    assert core.header.maxTxSetSize == 100


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--protocol", "20"], "above what the binaries support"),
        (["--protocol", "0"], "expected a protocol version of 1 or more"),
        (["--base-fee", "0"], "base fee of at least 1"),
        (["--base-reserve", "0"], "base reserve of at least 1"),
        (["--max-tx-set-size", "0"], "max tx set size of at least 1"),
        (["--max-tx-set-size", "-5"], "max tx set size of at least 1"),
        (["--to-latest", "--protocol", "19"], "--to-latest and --protocol both given"),
        (["--max-tx-set-size", "300", "--at", "tomorrow"], "expected a UTC time"),
        (["--max-tx-set-size", "300", "--at", "2001-01-01T00:00:00Z"], "is in the past"),
    ],
)
def test_nonsense_is_refused_before_touching_anything(tmp_path, core_factory, capsys, args, needle):
    core = core_factory(3)
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core), *args)
    assert code == 1, err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert all(not n.upgrade_requests for n in core.nodes.values())


def test_protocol_below_current_is_refused(tmp_path, core_factory, capsys):
    core = core_factory(3, protocol_version=19)
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core), "--protocol", "18")
    assert code == 1 and "below the network's protocol 19" in err
    assert all(not n.upgrade_requests for n in core.nodes.values())


def test_wrong_passphrase_in_inventory_is_refused(tmp_path, core_factory, capsys):
    core = core_factory(3)
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core, passphrase="some other network"), "--to-latest")
    assert code == 1 and "check -i/--inventory" in err
    assert all(not n.upgrade_requests for n in core.nodes.values())


def test_older_binary_on_one_validator_limits_to_latest(tmp_path, core_factory, capsys):
    core = core_factory(3)
    core.nodes["v2"].max_protocol = 18
    code, out, err = _run(capsys, "-i", _inv(tmp_path, core), "--to-latest", "--lead", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["values"] == {"protocolversion": 18}
    assert core.header.version == 18


def test_nothing_requested_is_an_error(tmp_path, core_factory, capsys):
    core = core_factory(3)
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core))
    assert code == 1 and "nothing requested" in err


def test_first_ledger_with_the_values_is_found_in_horizons_history(horizon_factory):
    from dlnet.upgrade import first_ledger_with

    h = horizon_factory()
    h.double.close_ledgers(3)  # ledgers 2..4 at 100 operations
    h.double.ledger.max_tx_set_size = 500
    h.double.ledger.protocol_version = 20
    h.double.close_ledgers(3)  # ledgers 5..7 show the upgrade
    assert first_ledger_with(h.url, 2, 7, {"maxtxsetsize": 500, "protocolversion": 20}, 2) == 5
    assert first_ledger_with(h.url, 2, 4, {"maxtxsetsize": 500}, 2, wait_seconds=0) is None
    h.double.stop()
    assert first_ledger_with(h.url, 2, 7, {"maxtxsetsize": 500}, 0.5) is None


def test_forked_validator_never_shows_the_upgrade_so_it_times_out_naming_it(tmp_path, core_factory, capsys):
    core = core_factory(3, threshold=2)
    core.set_mode("v3", "disagree")  # synced on its own fork: armed fine, but never follows the others
    code, _, err = _run(capsys, "-i", _inv(tmp_path, core), "--max-tx-set-size", "400", "--lead", "0",
                        "--deadline", "2")
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert "v1: ledger" in last and "max_tx_set_size=400" in last  # applied where consensus is
    assert "v3: ledger" in last and "max_tx_set_size=100" in last  # not on the fork
    assert _nothing_armed(core)
