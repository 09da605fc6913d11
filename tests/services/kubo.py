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
            # kubo >= 0.36 broadcasts wants only to peers that sent blocks before and otherwise waits for
            # DHT provider records (swept slowly): in a small private swarm, ask every connected peer.
            internal = cfg.get("Internal") or {}
            bitswap = internal.get("Bitswap") or {}
            bitswap["BroadcastControl"] = {"Enable": False}
            internal["Bitswap"] = bitswap
            cfg["Internal"] = internal
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
            proc = subprocess.Popen([exe, "daemon", "--migrate=false"], env=node["env"], stdout=log,
                                    stderr=subprocess.STDOUT)
            procs.append(proc)
            # One at a time: two nodes dialling each other at the same instant can end up with a
            # half-closed duplicate connection that bitswap never uses.
            url = f"http://127.0.0.1:{node['api']}"
            for _ in range(300):
                if proc.poll() is not None:
                    raise RuntimeError(f"kubo exited: see {node['home'] / 'daemon.log'}")
                try:
                    if httpx.post(f"{url}/api/v0/id", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        urls = [f"http://127.0.0.1:{node['api']}" for node in nodes]
        # Wait until every node sees a peer that speaks bitswap (connected and identified).
        for url in urls:
            for _ in range(300):
                peers = httpx.post(f"{url}/api/v0/swarm/peers", params={"identify": "true"},
                                   timeout=2).json().get("Peers") or []
                if any("/ipfs/bitswap/1.2.0" in ((p.get("Identify") or {}).get("Protocols") or []) for p in peers):
                    break
                time.sleep(0.1)
        _ensure_blocks_flow(urls)
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


def _ensure_blocks_flow(urls: list[str]) -> None:
    """Connected is not enough: kubo 0.39 nodes on one host sometimes keep a connection that bitswap never
    uses (blocks never arrive). Probe with a block added on the first node; reconnect until it flows."""
    first = httpx.post(f"{urls[0]}/api/v0/id", timeout=5).json()
    addr = next(a for a in first["Addresses"] if a.startswith("/ip4/127.0.0.1/tcp/"))
    for url in urls[1:]:
        for _ in range(8):
            probe = httpx.post(f"{urls[0]}/api/v0/add", params={"cid-version": "0"},
                               files={"file": ("probe", secrets.token_bytes(64))}, timeout=10).json()["Hash"]
            try:
                httpx.post(f"{url}/api/v0/cat", params={"arg": probe}, timeout=3).raise_for_status()
                break
            except httpx.HTTPError:
                httpx.post(f"{url}/api/v0/swarm/disconnect", params={"arg": addr}, timeout=5)
                time.sleep(0.5)
                httpx.post(f"{url}/api/v0/swarm/connect", params={"arg": addr}, timeout=5)
                time.sleep(0.5)
        else:
            raise RuntimeError(f"kubo private swarm: blocks do not flow from {urls[0]} to {url}")
