"""`dlnet status` over doubles of every component: one table, same data as --json, down shows as down."""

from __future__ import annotations

import json
import socket

import pytest

from dlnet.cli import main
from tests.doubles import services
from tests.doubles.inventory import write_inventory


@pytest.fixture
def world(tmp_path, core_factory, horizon_factory):
    core = core_factory(3, protocol_version=19, max_tx_set_size=500)
    h = horizon_factory()
    h.double.close_ledgers(4)
    h.double.ingest_lag = 2
    pg = services.PostgresDouble()
    ipfs1, ipfs2 = services.kubo(1), services.kubo(1)
    prom = services.prometheus(up=5, down=1)
    inv = write_inventory(
        tmp_path,
        passphrase=h.passphrase,
        validators={n: node.port for n, node in core.nodes.items()},
        horizon_port=int(h.url.rsplit(":", 1)[1]),
        postgres_port=pg.port,
        ipfs_api_ports={"ipfs1": ipfs1.port, "ipfs2": ipfs2.port},
        prometheus_port=prom.port,
    )
    yield inv, core, h
    for d in (pg, ipfs1, ipfs2, prom):
        d.stop()


def test_every_component_in_one_table_and_json(world, capsys):
    inv, core, _ = world
    core.set_mode("v3", "down")
    assert main(["status", "-i", inv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(v["name"], v["up"]) for v in data["validators"]] == [("v1", True), ("v2", True), ("v3", False)]
    v1 = data["validators"][0]
    assert (v1["protocol"], v1["max_tx_set_size"], v1["state"], v1["quorum_missing"]) == (19, 500, "Synced!", 1)
    assert data["horizon"][0]["up"] is True
    assert data["postgres"] == [
        {"name": "pg1", "url": f"127.0.0.1:{data['postgres'][0]['url'].split(':')[1]}", "up": True, "error": None}
    ]
    assert [n["peers"] for n in data["ipfs"]] == [1, 1]
    assert (data["prometheus"][0]["targets"], data["prometheus"][0]["targets_up"]) == (6, 5)
    assert data["healthy"] is False
    assert main(["status", "-i", inv]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].split() == ["COMPONENT", "NAME", "STATE", "DETAIL"]
    assert any(line.startswith("validator") and " v3 " in line and "DOWN" in line for line in lines)
    assert any(line.startswith("horizon") and "lag" in line for line in lines)
    assert lines[-1] == "test: NOT healthy"


def test_check_flag_exits_1_when_something_is_down(world, capsys):
    inv, core, _ = world
    assert main(["status", "-i", inv, "--check"]) == 0
    core.set_mode("v2", "hang")
    assert main(["status", "-i", inv, "--check"]) == 1
    assert "v2" in capsys.readouterr().out


def test_status_of_a_network_where_nothing_runs_never_hangs(tmp_path, capsys):
    ports = []
    for _ in range(6):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    inv = write_inventory(
        tmp_path,
        passphrase="p",
        validators={"v1": ports[0], "v2": ports[1]},
        horizon_port=ports[2],
        postgres_port=ports[3],
        ipfs_api_ports={"ipfs1": ports[4]},
        prometheus_port=ports[5],
    )
    assert main(["status", "-i", inv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert not any(e["up"] for k in ("validators", "horizon", "postgres", "ipfs", "prometheus") for e in data[k])
    assert all(e["error"] for e in data["validators"])
