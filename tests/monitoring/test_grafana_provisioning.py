"""The provisioning files load in a real Grafana: datasource with its fixed uid, the four dashboards, provisioned.

Grafana has no Debian package; this runs where a `grafana` or `grafana-server` binary is on PATH (or
GRAFANA_BIN points at one; GRAFANA_HOME at its homepath) and is skipped otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import urllib.request
from pathlib import Path

import pytest

from .conftest import MONITORING
from .harness import Processes, free_port, wait_for

PROVISIONING = MONITORING / "grafana" / "provisioning"
DASHBOARDS = MONITORING / "dashboards" / "json"


def _grafana() -> tuple[list[str], Path] | None:
    explicit = os.environ.get("GRAFANA_BIN")
    for name in filter(None, [explicit, "grafana", "grafana-server"]):
        path = shutil.which(name)
        if not path:
            continue
        real = Path(path).resolve()
        home = Path(os.environ.get("GRAFANA_HOME", ""))
        if not home.name:
            home = Path("/usr/share/grafana") if real.parent.name == "sbin" else real.parent.parent
        argv = [str(real), "server"] if real.name == "grafana" else [str(real)]
        return [*argv, "--homepath", str(home)], home
    return None


GRAFANA = _grafana()
pytestmark = pytest.mark.skipif(
    GRAFANA is None,
    reason="needs Grafana: put grafana (or grafana-server) on PATH or set GRAFANA_BIN and GRAFANA_HOME, then make test",
)


def test_grafana_loads_the_datasource_and_dashboards(tmp_path: Path) -> None:
    assert GRAFANA is not None
    argv, _ = GRAFANA
    port, password = free_port(), secrets.token_hex(12)
    password_file = tmp_path / "admin_password"
    password_file.write_text(password)
    password_file.chmod(0o600)
    provisioning = tmp_path / "provisioning"
    shutil.copytree(PROVISIONING, provisioning)
    (provisioning / "plugins").mkdir(exist_ok=True)
    (provisioning / "alerting").mkdir(exist_ok=True)
    env = {
        "GF_PATHS_DATA": str(tmp_path / "data"),
        "GF_PATHS_LOGS": str(tmp_path / "logs"),
        "GF_PATHS_PLUGINS": str(tmp_path / "plugins"),
        "GF_PATHS_PROVISIONING": str(provisioning),
        "GF_SERVER_HTTP_ADDR": "127.0.0.1",
        "GF_SERVER_HTTP_PORT": str(port),
        "GF_SECURITY_ADMIN_PASSWORD__FILE": str(password_file),  # as the role passes it
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
        "GF_PLUGINS_PREINSTALL_DISABLED": "true",
        "DLNET_PROMETHEUS_URL": "http://127.0.0.1:9",
        "DLNET_PROMETHEUS_SCRAPE_INTERVAL": "15s",
        "DLNET_DASHBOARDS_DIR": str(DASHBOARDS),
    }
    auth = base64.b64encode(f"admin:{password}".encode()).decode()

    def get(path: str) -> object:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    procs = Processes(tmp_path)
    try:
        procs.start("grafana", argv, env=env)
        wait_for("grafana /api/health", lambda: get("/api/health"), timeout=120)
        ds = get("/api/datasources/uid/dlnet-prometheus")
        assert ds["type"] == "prometheus" and ds["url"] == env["DLNET_PROMETHEUS_URL"], ds
        expected = {p.stem: json.loads(p.read_text()) for p in DASHBOARDS.glob("*.json")}
        found = wait_for("dashboards provisioned", lambda: {d["uid"] for d in get("/api/search?type=dash-db")}
                         >= expected.keys() and get("/api/search?type=dash-db"), timeout=60)
        assert {d["uid"] for d in found} >= expected.keys(), found
        for uid, data in expected.items():
            got = get(f"/api/dashboards/uid/{uid}")
            assert got["meta"]["provisioned"] is True, uid
            assert len(got["dashboard"]["panels"]) == len(data["panels"]), uid
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc}\n--- grafana log (tail) ---\n{procs.log('grafana')}") from exc
    finally:
        procs.stop_all()
