"""Processes for the monitoring integration test: kubo nodes, SDF's stellar-core exporter, the dlnet exporter
and the real Prometheus (Debian package), each on 127.0.0.1 and an ephemeral port, stopped by their pid."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dlnet.config import ansible_inventory_json
from tests.doubles.core import CoreNetwork
from tests.doubles.horizon import HorizonDouble
from tests.doubles.inventory import write_inventory

ROOT = Path(__file__).resolve().parents[2]
KUBO = ROOT / "build" / "bin" / "ipfs"
BIN = Path(sys.executable).parent
# Ports of the local deployment (inventories/local): never used by tests.
RESERVED = {*range(11570, 11647), 15432, 4001, 4002, 5001, 5002, 8000, 8080, 8081, 9090, 9470}

# SDF's exporter binds every interface and takes no address option: run it on 127.0.0.1 only.
SDF_EXPORTER_LOOPBACK = """
import sys
from stellar_core_prometheus_exporter import exporter as e
class Loopback(e._ThreadingSimpleServer):
    def __init__(self, address, handler):
        super().__init__(("127.0.0.1", address[1]), handler)
e._ThreadingSimpleServer = Loopback
e.main()
"""


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED:
            return port


def free_port_run(n: int) -> int:
    """First of n consecutive free ports (roles/prometheus numbers SDF exporters base + index)."""
    for _ in range(200):
        base = free_port()
        ports = range(base, base + n)
        if all(p not in RESERVED and _is_free(p) for p in ports):
            return base
    raise RuntimeError(f"no run of {n} free ports on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what}: not ready after {timeout} s (last error: {last!r})")


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


class Processes:
    """Started processes, stopped in reverse order by pid (SIGTERM, then SIGKILL)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


class KuboNode:
    """A throwaway kubo node in a private swarm: its own IPFS_PATH, loopback only, no bootstrap, no mDNS."""

    def __init__(self, name: str, root: Path, swarm_key: str) -> None:
        self.name = name
        self.path = root / name
        self.api_port = free_port()
        self.swarm_port = free_port()
        self.env = {"IPFS_PATH": str(self.path), "IPFS_TELEMETRY": "off", "LIBP2P_FORCE_PNET": "1"}
        self.path.mkdir(parents=True)
        self._ipfs("init", "--profile=autoconf-off,test")
        (self.path / "swarm.key").write_text(swarm_key)
        for key, value in {
            "Bootstrap": "[]",
            "Addresses.API": json.dumps(f"/ip4/127.0.0.1/tcp/{self.api_port}"),
            "Addresses.Gateway": json.dumps(f"/ip4/127.0.0.1/tcp/{free_port()}"),
            "Addresses.Swarm": json.dumps([f"/ip4/127.0.0.1/tcp/{self.swarm_port}"]),
            "Discovery.MDNS.Enabled": "false",
            "Routing.Type": json.dumps("none"),
            "Swarm.RelayClient.Enabled": "false",
            "Swarm.RelayService.Enabled": "false",
            "AutoTLS.Enabled": "false",
        }.items():
            self._ipfs("config", "--json", key, value)
        self.peer_id = self._ipfs("config", "Identity.PeerID").strip()

    def _ipfs(self, *args: str) -> str:
        res = subprocess.run(
            [str(KUBO), *args], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60
        )
        if res.returncode != 0:
            raise RuntimeError(f"ipfs {' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout

    @staticmethod
    def swarm_key() -> str:
        return "/key/swarm/psk/1.0.0/\n/base16/\n" + secrets.token_hex(32) + "\n"

    def start(self, procs: Processes) -> None:
        procs.start(f"kubo-{self.name}", [str(KUBO), "daemon"], env=self.env)
        wait_for(f"kubo {self.name}", lambda: http_get(self.metrics_url), timeout=60)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/debug/metrics/prometheus"

    def connect(self, other: KuboNode, verb: str = "connect") -> None:
        addr = f"/ip4/127.0.0.1/tcp/{other.swarm_port}/p2p/{other.peer_id}"
        url = f"http://127.0.0.1:{self.api_port}/api/v0/swarm/{verb}?arg={urllib.parse.quote(addr)}"
        req = urllib.request.Request(url, method="POST")  # the RPC API is POST-only
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        if b"success" not in body:
            raise RuntimeError(f"swarm {verb} {addr}: {body!r}")

    def disconnect(self, other: KuboNode) -> None:
        self.connect(other, "disconnect")


class Prometheus:
    """The Debian package's prometheus binary on a rendered configuration."""

    def __init__(self, config: Path, data: Path, port: int) -> None:
        self.config, self.data, self.port = config, data, port
        self.url = f"http://127.0.0.1:{port}"

    def start(self, procs: Processes) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus not installed"
        procs.start(
            "prometheus",
            [
                binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
        )
        wait_for("prometheus ready", lambda: http_get(f"{self.url}/-/ready"), timeout=60)

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        body = json.loads(http_get(url, timeout=30))
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def query_range(self, expr: str, seconds: int, step: str = "1s") -> list[dict[str, Any]]:
        end = time.time()
        return self.api("query_range", query=expr, start=str(end - seconds), end=str(end), step=step)["result"]


PASSPHRASE = "dlnet monitoring test ; 2026"
VALIDATORS = ["v1", "v2", "v3"]


def _couple(core: CoreNetwork, horizon: HorizonDouble) -> None:
    """One network: Horizon ingests every ledger the validators close, with the same close time, and each
    ledger carries a few transactions (1-3 operations each) so throughput panels have something to show."""
    close = core.close_ledger
    load = itertools.cycle([[1], [1, 2], [3, 1, 2], [2, 2, 2, 2], []])

    def close_both() -> bool:
        with core.lock:
            core.pending_txs.extend(next(load))
            closed = close()
            if closed:
                horizon.ledger.close_time_step = max(1, core.header.closeTime - horizon.ledger.close_time)
                horizon.close_ledgers(1)
                with horizon.ledger.lock:  # Horizon reports what the validators applied
                    record = horizon.ledger.ledgers[-1]
                    record["successful_transaction_count"] = core.header.txs
                    record["operation_count"] = record["tx_set_operation_count"] = core.header.ops
        return closed

    core.close_ledger = close_both  # type: ignore[method-assign]


@contextlib.contextmanager
def monitoring_stack(tmp: Path, warmup: float = 25.0) -> Iterator[dict[str, Any]]:
    """Doubles, exporters, two kubo nodes and Prometheus on the role-rendered configuration; all on
    127.0.0.1 and ephemeral ports; everything stopped on exit. Yields prom, core, config, inventory."""
    procs = Processes(tmp)
    core = CoreNetwork(
        # threshold 2 of 3: the quorum set stellar-core 19.14 derived for one organisation of three
        # validators (../shared/reference/: fail_at 2 when healthy).
        3, passphrase=PASSPHRASE, threshold=2, protocol_version=19, max_tx_set_size=500, close_interval=0.5,
        close_steps=[5, 5, 6, 5, 4, 7, 5, 8, 5, 6],
    ).start()
    horizon = HorizonDouble(PASSPHRASE)
    _couple(core, horizon)
    horizon.start()
    try:
        key = KuboNode.swarm_key()
        kubos = [KuboNode(name, tmp / "ipfs", key) for name in ("ipfs1", "ipfs2")]
        prom_port, exporter_port, sdf_base = free_port(), free_port(), free_port_run(len(VALIDATORS))
        inventory = write_inventory(
            tmp,
            passphrase=PASSPHRASE,
            validators={name: core.nodes[name].port for name in VALIDATORS},
            horizon_port=int(horizon.url.rsplit(":", 1)[1]),
            ipfs_api_ports={k.name: k.api_port for k in kubos},
            prometheus_port=prom_port,
            extra={
                "dlnet_exporter_enabled": True,
                "dlnet_exporter_port": exporter_port,
                "prometheus_stellar_core_exporter_port": sdf_base,
                "prometheus_horizon_admin_port": 0,  # no real Horizon here: its own metrics are not scraped
                # 2 s (and its scrape timeout) and a 1 s probe timeout: room for a loaded 2-core CI machine.
                "prometheus_scrape_interval": "2s",
                "dlnet_admin_timeout_seconds": 1.0,
            },
            env="itest",
        )
        out = tmp / "rendered"
        res = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", inventory, str(ROOT / "tests/monitoring/render-prometheus.yml"),
             "-e", f"render_out={out}"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
        if res.returncode != 0:
            raise RuntimeError("rendering the Prometheus configuration failed:\n" + res.stdout[-3000:] + res.stderr)
        config = out / "prom1" / "prometheus.yml"

        for k in kubos:
            k.start(procs)
        kubos[0].connect(kubos[1])
        for i, name in enumerate(VALIDATORS):
            procs.start(
                f"sdf-exporter-{name}",
                [sys.executable, "-c", SDF_EXPORTER_LOOPBACK,
                 "--stellar-core-address", core.url(name), "--port", str(sdf_base + i)],
            )
        # As roles/dlnet_exporter runs it: the resolved inventory as JSON (the image carries no Ansible).
        inventory_json = tmp / "inventory.json"
        inventory_json.write_text(json.dumps(ansible_inventory_json(inventory)))
        procs.start(
            "dlnet-exporter",
            [str(BIN / "dlnet"), "exporter", "--inventory-json", str(inventory_json), "--port", str(exporter_port),
             "--listen", "127.0.0.1"],
        )
        for i, _ in enumerate(VALIDATORS):
            wait_for("SDF exporter", lambda i=i: http_get(f"http://127.0.0.1:{sdf_base + i}/metrics"))
        wait_for("dlnet exporter", lambda: http_get(f"http://127.0.0.1:{exporter_port}/metrics"))

        prom = Prometheus(config, tmp / "tsdb", prom_port)
        prom.start(procs)
        wait_for(
            "every target up",
            lambda: all(t["health"] == "up" for t in prom.api("targets")["activeTargets"]),
            timeout=60,
        )
        time.sleep(warmup)
        yield {"prom": prom, "core": core, "config": config, "procs": procs, "inventory": inventory,
               "kubos": kubos}
    finally:
        procs.stop_all()
        core.stop()
        horizon.stop()
