"""The day-2 commands against the network `make up` deployed from inventories/local (real binaries).

Skipped, with one line, unless the stellar-core and Horizon artifacts are supplied and a validator answers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dlnet import day2
from dlnet.cli import main
from dlnet.core_admin import CoreAdmin, CoreAdminError
from dlnet.exporter import registry_for
from dlnet.preflight import Artifacts

pytestmark = pytest.mark.stellar

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = str(ROOT / "inventories" / "local")
# The operator's own state directory (keys of the deployed network), captured before the per-test isolation:
# seeding the deployed network must reuse its issuer keys, not mint new accounts on every test run.
OPERATOR_STATE = os.environ.get("DLNET_STATE_DIR")
SKIP = ("needs stellar-core and Horizon: put the binaries in artifacts/ (stellar-core, stellar-horizon) or set"
        " STELLAR_CORE_BIN/HORIZON_BIN, then make up")


@pytest.fixture(scope="module")
def deployed():
    art = Artifacts.resolve(ROOT / "artifacts")
    if not (art.stellar_core.is_file() and art.horizon.is_file()):
        pytest.skip(SKIP)
    net, settings = day2.load(INVENTORY)
    admins = [CoreAdmin(v.name, f"http://{v.address}:{v.http_port}", timeout=2) for v in net.validators]
    try:
        admins[0].info()
    except CoreAdminError:
        pytest.skip(SKIP)
    yield net, settings, admins
    for a in admins:
        a.close()


def _cli(capsys, *args):
    code = main([*args, "-i", INVENTORY, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_upgrade_to_latest_and_new_max_tx_set_size_on_every_validator(deployed, capsys):
    _, _, admins = deployed
    current = admins[0].info().ledger.max_tx_set_size
    target = 1000 if current != 1000 else 1001
    top = min(a.info().protocol_max for a in admins)
    _cli(capsys, "upgrade", "--to-latest", "--max-tx-set-size", str(target))
    for a in admins:
        lg = a.info().ledger
        assert (a.name, lg.version, lg.max_tx_set_size) == (a.name, top, target)
        assert a.upgrades_get().empty
    assert _cli(capsys, "upgrade", "--to-latest", "--max-tx-set-size", str(target))["changed"] is False


def test_seed_twice_second_run_changes_nothing(deployed, capsys, monkeypatch):
    if OPERATOR_STATE is None:
        monkeypatch.delenv("DLNET_STATE_DIR", raising=False)
    else:
        monkeypatch.setenv("DLNET_STATE_DIR", OPERATOR_STATE)
    _cli(capsys, "upgrade", "--to-latest")
    first = _cli(capsys, "seed")
    assert first["asset"].startswith("DLC:")
    again = _cli(capsys, "seed")
    assert again["changed"] is False and again["transactions"] == 0


def test_exporter_histogram_counts_every_closed_ledger(deployed):
    net, settings, admins = deployed
    registry, _ = registry_for(net, settings.admin_timeout_seconds)

    def scrape():
        text = generate_latest(registry).decode()
        return {(s.name, s.labels.get("validator")): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples}

    first = scrape()
    start = {a.name: first[("dlnet_ledger_sequence", a.name)] for a in admins}
    deadline = time.monotonic() + 60
    while min(a.info().ledger.num for a in admins) < max(start.values()) + 5 and time.monotonic() < deadline:
        time.sleep(0.5)
    second = scrape()
    for a in admins:
        closed = second[("dlnet_ledger_sequence", a.name)] - start[a.name]
        assert closed >= 5
        assert second[("dlnet_ledger_close_seconds_count", a.name)] - first.get(
            ("dlnet_ledger_close_seconds_count", a.name), 0) == closed
