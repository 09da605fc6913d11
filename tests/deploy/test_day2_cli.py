"""The day-2 CLI (issue 3) against the network the deployment tests stand up from inventories/local.

Runs `dlnet upgrade`, `dlnet seed` (twice) and the exporter for real when the stellar-core and Horizon
artifacts are supplied; otherwise the whole module skips with one line saying what to supply.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dlnet import day2
from dlnet.cli import main
from dlnet.core_admin import CoreAdmin, CoreAdminError
from dlnet.exporter import registry_for
from tests.conftest import skip_or_fail
from tests.network import ENV, INVENTORY, STATE, Deployment, stellar_artifacts, wait_for

SKIP = ("needs stellar-core and Horizon: put the binaries in artifacts/ (stellar-core, stellar-horizon) or set"
        " STELLAR_CORE_BIN/HORIZON_BIN, then make up")

if not stellar_artifacts():
    skip_or_fail(SKIP, module=True)

pytestmark = pytest.mark.stellar
EXTRA = ["-e", f"dlnet_env={ENV}"]


@pytest.fixture(scope="module")
def network(deployment: Deployment):
    net, settings = day2.load(INVENTORY, [f"dlnet_env={ENV}"])
    admins = [CoreAdmin(v.name, f"http://{v.address}:{v.http_port}", timeout=2) for v in net.validators]
    try:
        admins[0].info()
    except CoreAdminError as e:
        pytest.fail(f"the deployed validators do not answer: {e}")
    yield net, settings, admins
    for a in admins:
        a.close()


@pytest.fixture(autouse=True)
def _deployment_state(monkeypatch: pytest.MonkeyPatch) -> None:
    # The deployment's own state directory: seed keys live beside the network's other secrets.
    monkeypatch.setenv("DLNET_STATE_DIR", str(STATE))


def _cli(capsys, *args):
    code = main([*args, "-i", str(INVENTORY), *EXTRA, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_upgrade_to_latest_and_new_max_tx_set_size_on_every_validator(network, capsys):
    _, _, admins = network
    current = admins[0].info().ledger.max_tx_set_size
    target = 1000 if current != 1000 else 1001
    top = min(a.info().protocol_max for a in admins)
    _cli(capsys, "upgrade", "--to-latest", "--max-tx-set-size", str(target))
    for a in admins:
        lg = a.info().ledger
        assert (a.name, lg.version, lg.max_tx_set_size) == (a.name, top, target)
        assert a.upgrades_get().empty
    assert _cli(capsys, "upgrade", "--to-latest", "--max-tx-set-size", str(target))["changed"] is False


def test_seed_twice_second_run_changes_nothing(network, capsys):
    net, _, _ = network
    _cli(capsys, "upgrade", "--to-latest")
    url = day2.horizon_url(net)

    def horizon_ingesting() -> bool:
        try:
            root = httpx.get(url + "/", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return int(root.get("history_latest_ledger") or 0) > 0 and int(root.get("current_protocol_version") or 0) > 0

    assert wait_for(horizon_ingesting, timeout=180), f"Horizon at {url} never ingested"
    # 300 holders tripped real Horizon's default rate limit (3,600 requests an hour) before issue 8.
    first = _cli(capsys, "seed", "--holders", "300")
    assert first["asset"].startswith("DLC:")
    again = _cli(capsys, "seed", "--holders", "300")
    assert again["changed"] is False and again["transactions"] == 0


def test_exporter_histogram_counts_every_closed_ledger(network):
    net, settings, admins = network
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
        counted = second[("dlnet_ledger_close_seconds_count", a.name)] - first.get(
            ("dlnet_ledger_close_seconds_count", a.name), 0)
        assert counted == closed
