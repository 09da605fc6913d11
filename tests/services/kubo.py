"""A two-node kubo private swarm in temp dirs (swarm.key, LIBP2P_FORCE_PNET=1, autoconf off, loopback only)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.services.pg import free_port

ROOT = Path(__file__).resolve().parents[2]


def kubo_bin() -> str | None:
    for cand in (os.environ.get("IPFS_BIN"), str(ROOT / "build" / "bin" / "ipfs")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


@contextlib.contextmanager
def swarm(n: int = 2) -> Iterator[list[str]]:
    """Yield the RPC URLs of n connected private-swarm nodes."""
    exe = kubo_bin()
    assert exe
    root = Path(tempfile.mkdtemp(prefix="dlnet-kubo-"))
    key = f"/key/swarm/psk/1.0.0/\n/base16/\n{secrets.token_hex(32)}\n"
    nodes = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(n):
            home = root / f"n{i}"
            # Loopback only: no telemetry, no AutoTLS, plain TCP (the private network refuses the rest).
            env = {**os.environ, "IPFS_PATH": str(home), "LIBP2P_FORCE_PNET": "1", "IPFS_TELEMETRY": "off",
                   "LIBP2P_TCP_MUX": "false"}
            subprocess.run([exe, "init", "--profile=autoconf-off", "--empty-repo"], env=env, check=True,
                           capture_output=True)
            (home / "swarm.key").write_text(key)
            (home / "swarm.key").chmod(0o600)
            api, gw, sw = free_port(), free_port(), free_port()
            cfg = json.loads((home / "config").read_text())
            cfg["Addresses"].update(API=f"/ip4/127.0.0.1/tcp/{api}", Gateway=f"/ip4/127.0.0.1/tcp/{gw}",
                                    Swarm=[f"/ip4/127.0.0.1/tcp/{sw}"], Announce=[], NoAnnounce=[])
            cfg["Bootstrap"] = []
            cfg.setdefault("AutoTLS", {})["Enabled"] = False
            cfg.setdefault("Routing", {})["Type"] = "dht"  # no public HTTP routers in a private swarm
            plugins = cfg.get("Plugins") or {}
            plugins["Plugins"] = (plugins.get("Plugins") or {}) | {"telemetry": {"Config": {"Mode": "off"}}}
            cfg["Plugins"] = plugins
            cfg.setdefault("Swarm", {}).setdefault("Transports", {}).setdefault("Network", {}).update(
                Websocket=False, QUIC=False, WebTransport=False, WebRTCDirect=False)
            cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
            nodes.append({"home": home, "env": env, "api": api, "swarm": sw, "id": cfg["Identity"]["PeerID"],
                          "cfg": cfg})
        for i, node in enumerate(nodes):
            others = [f"/ip4/127.0.0.1/tcp/{o['swarm']}/p2p/{o['id']}" for j, o in enumerate(nodes) if j != i]
            node["cfg"]["Bootstrap"] = others
            node["cfg"].setdefault("Peering", {})["Peers"] = [
                {"ID": o["id"], "Addrs": [f"/ip4/127.0.0.1/tcp/{o['swarm']}"]} for j, o in enumerate(nodes) if j != i]
            (node["home"] / "config").write_text(json.dumps(node["cfg"]))
            log = open(node["home"] / "daemon.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen([exe, "daemon", "--migrate=false"], env=node["env"], stdout=log,
                                          stderr=subprocess.STDOUT))
        urls = [f"http://127.0.0.1:{node['api']}" for node in nodes]
        for url, p in zip(urls, procs, strict=True):
            for _ in range(300):
                if p.poll() is not None:
                    raise RuntimeError(f"kubo exited: see {root}")
                try:
                    if httpx.post(f"{url}/api/v0/id", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        # Wait until every node sees a peer that speaks bitswap (connected and identified).
        for url in urls:
            for _ in range(300):
                peers = httpx.post(f"{url}/api/v0/swarm/peers", params={"identify": "true"},
                                   timeout=2).json().get("Peers") or []
                if any("/ipfs/bitswap/1.2.0" in ((p.get("Identify") or {}).get("Protocols") or []) for p in peers):
                    break
                time.sleep(0.1)
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(root, ignore_errors=True)
