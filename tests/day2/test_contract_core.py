"""Contract: the admin client reads the *recorded* stellar-core 19.14 answers, and the double answers alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest

from dlnet.core_admin import CoreAdmin, CoreAdminError, armed_from_status
from tests.doubles.core import REFERENCE


def _recorded(name: str) -> dict:
    return json.loads((REFERENCE / "http" / name).read_text())


def _replay(*names: str) -> CoreAdmin:
    """A client whose transport answers with recorded responses, matched on the request path and mode."""
    records = [_recorded(n) for n in names]

    def handler(request: httpx.Request) -> httpx.Response:
        for rec in records:
            _method, target = rec["request"].split(" ", 1)
            want = urlsplit(target)
            if request.url.path == want.path and (
                not want.query or ("mode=" + request.url.params.get("mode", "")) in want.query
            ):
                body = rec["body"]
                content = body if isinstance(body, str) else json.dumps(body)
                return httpx.Response(rec["status"], content=content.encode())
        return httpx.Response(404, content=_recorded("unknown-command.txt")["body"].encode())

    return CoreAdmin("v1", "http://127.0.0.1:1", client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_info_synced_armed_upgraded_and_booting_parse():
    info = _replay("info-synced.json").info()
    assert (info.state, info.ledger.num, info.ledger.version, info.ledger.max_tx_set_size, info.protocol_max) == (
        "Synced!",
        22,
        0,
        100,
        19,
    )
    assert (info.qset["agree"], info.qset["fail_at"], info.intersection, info.peers) == (3, 2, True, 2)
    armed = _replay("info-armed.json").info()
    assert armed_from_status(armed.status) == {"protocolversion": 19, "basereserve": 5000000, "maxtxsetsize": 500}
    up = _replay("info-upgraded.json").info()
    assert (up.ledger.version, up.ledger.base_reserve, up.ledger.max_tx_set_size) == (19, 5000000, 500)
    assert armed_from_status(up.status) == {}  # a publishing status line is not an armed upgrade
    booting = _replay("info-booting.json").info()
    assert booting.ledger.num == 1 and "agree" not in booting.qset and booting.intersection is None


def test_upgrades_get_armed_after_and_cleared():
    assert _replay("upgrades-get-armed.json").upgrades_get().values == {
        "protocolversion": 19,
        "basereserve": 5000000,
        "maxtxsetsize": 500,
    }
    after = _replay("upgrades-get-after.json").upgrades_get()
    assert after.empty and after.time == 1795635970  # applied: values dropped, time kept
    assert _replay("upgrades-get-cleared.json").upgrades_get().time == 0


def test_upgrades_set_empty_body_is_success_and_errors_come_as_http_200():
    when = datetime(2026, 11, 25, 19, 46, 10, tzinfo=UTC)
    _replay("upgrades-set-v1.txt").upgrades_set(when, {"protocolversion": 19})
    with pytest.raises(CoreAdminError, match="supported is up to 19, passed is 99"):
        _replay("upgrades-set-too-high.txt").upgrades_set(when, {"protocolversion": 99})
    with pytest.raises(CoreAdminError, match="could not parse upgradetime"):
        _replay("upgrades-set-bad-time.txt").upgrades_set(when, {"protocolversion": 19})
    _replay("upgrades-clear.txt").upgrades_clear()


def test_unknown_command_html_is_an_error_not_a_crash():
    admin = _replay()
    with pytest.raises(CoreAdminError, match="expected JSON from stellar-core"):
        admin.info()


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__ if value is not None else None


@pytest.mark.parametrize(
    ("command", "recorded"),
    [
        ("info", "info-synced.json"),
        ("upgrades?mode=get", "upgrades-get-empty.json"),
        ("quorum", "quorum.json"),
    ],
)
def test_double_answers_with_the_recorded_shape(core_network, command, recorded):
    got = httpx.get(f"{core_network.url('v1')}/{command}").json()
    want = _recorded(recorded)["body"]
    if command == "info":
        got["info"].pop("status", None)
    assert set(_shape(got)) == set(_shape(want))
    if command == "info":
        assert _shape(got["info"]["ledger"]) == _shape(want["info"]["ledger"])
        assert set(got["info"]) == set(want["info"])


def test_double_refuses_like_the_recorded_node(core_network):
    url = core_network.url("v1")
    too_high = httpx.get(
        f"{url}/upgrades", params={"mode": "set", "upgradetime": "2000-01-01T00:00:00Z", "protocolversion": 99}
    )
    assert (too_high.status_code, too_high.json()) == (200, _recorded("upgrades-set-too-high.txt")["body"])
    bad_time = httpx.get(f"{url}/upgrades", params={"mode": "set", "upgradetime": "not-a-time", "protocolversion": 19})
    assert (bad_time.status_code, bad_time.text) == (200, _recorded("upgrades-set-bad-time.txt")["body"])
    garbage = httpx.get(f"{url}/tx", params={"blob": "AAAA"})
    assert garbage.json() == _recorded("tx-garbage.json")["body"]
    unknown = httpx.get(f"{url}/nosuchcommand")
    assert (unknown.status_code, unknown.text) == (404, _recorded("unknown-command.txt")["body"])
