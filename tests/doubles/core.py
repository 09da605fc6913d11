"""stellar-core HTTP admin double: a network of validators closing ledgers on a clock.

Built from ../shared/reference/stellar-core-19.14/ (19.14 responses): `info`, `upgrades` (set / get /
clear; a set answers an empty body with HTTP 200, errors are HTTP 200 too, as plain text or
`{"exception": ...}`), `tx`, `metrics` (medida JSON, `ledger.age.closed` buckets in ms), `quorum`, `peers`;
unknown commands answer 404 with stellar-core's HTML.

The network closes a ledger every `close_interval` wall seconds while a quorum (`threshold`, default
2/3+1 of the nodes) takes part. Close times are virtual: each ledger's closeTime is the previous one plus the
next value of `close_steps` (default 1 s), so an upgrade armed for "now + 10 s" applies after ten closes.
An upgrade parameter applies in the first ledger whose closeTime reaches the armed time once a quorum of the
participating nodes is armed with the same value; then, as in 19.14, `mode=get` shows it `nullopt` while
keeping `time`.

Node modes (`net.set_mode(name, mode)`): "ok"; "down" (connection refused); "hang" (accepts, never answers
in time); "lag" (stops following: state "Catching up", ledger behind, no vote); "disagree" (forked: its
own ledger hash, no vote); "refuse" (answers every `upgrades?mode=set` with an exception).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REFERENCE = Path(__file__).resolve().parent / "reference" / "stellar-core-19.14"

UPGRADE_KEYS = {
    "protocolversion": "version",
    "basefee": "fee",
    "basereserve": "reserve",
    "maxtxsetsize": "maxtxsize",
}
HEADER_KEYS = {"version": "version", "fee": "baseFee", "reserve": "baseReserve", "maxtxsize": "maxTxSetSize"}
BUCKETS_MS = [5000, 7000, 10000, 20000, 1.79769e308]


def reference(name: str) -> Any:
    """The recorded body of one HTTP response (JSON), e.g. reference('http/info-synced.json')."""
    return json.loads((REFERENCE / name).read_text())["body"]


@dataclass
class Header:
    num: int
    closeTime: int
    version: int
    baseFee: int
    baseReserve: int
    maxTxSetSize: int
    hash: str = ""
    txs: int = 0
    ops: int = 0


@dataclass
class Node:
    name: str
    max_protocol: int
    mode: str = "ok"
    armed: dict[str, int] = field(default_factory=dict)
    armed_time: int = 0
    header: Header | None = None
    close_gaps_ms: list[int] = field(default_factory=list)
    tx_counts: list[int] = field(default_factory=list)
    op_counts: list[int] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    port: int = 0
    seen: set[str] = field(default_factory=set)
    upgrade_requests: list[str] = field(default_factory=list)

    @property
    def votes(self) -> bool:
        return self.mode in ("ok", "refuse", "hang")  # a hung admin port says nothing about SCP


class CoreNetwork:
    def __init__(
        self,
        n: int = 3,
        *,
        passphrase: str = "dlnet test network ; 2026",
        names: list[str] | None = None,
        max_protocol: int = 19,
        protocol_version: int = 0,
        base_fee: int = 100,
        base_reserve: int = 100_000_000,
        max_tx_set_size: int = 100,
        close_interval: float = 0.02,
        close_steps: list[int] | None = None,
        threshold: int | None = None,
        start_ledger: int = 1,
        hang_seconds: float = 30.0,
    ) -> None:
        names = names or [f"v{i + 1}" for i in range(n)]
        self.passphrase = passphrase
        self.nodes = {name: Node(name, max_protocol) for name in names}
        self.threshold = threshold or (len(names) // 2 + 1)  # 3 validators: t=2, as in quorum.json
        self.close_interval = close_interval
        self._steps = itertools.cycle(close_steps or [1])
        self.hang_seconds = hang_seconds
        start = int(time.time())
        self.header = Header(
            start_ledger,
            0 if start_ledger == 1 else start,
            protocol_version,
            base_fee,
            base_reserve,
            max_tx_set_size,
            self._hash(start_ledger),
        )
        self.history: list[Header] = [copy.copy(self.header)]
        self.pending_txs: list[int] = []  # op counts of txs accepted for the next ledger
        self.lock = threading.RLock()
        self.wall_at_close = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.paused = False
        for node in self.nodes.values():
            node.header = copy.copy(self.header)

    def _hash(self, num: int, salt: str = "") -> str:
        return hashlib.sha256(f"{self.passphrase}:{num}:{salt}".encode()).hexdigest()

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> CoreNetwork:
        for node in self.nodes.values():
            self._listen(node)
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for node in self.nodes.values():
            self._close_listener(node)

    def __enter__(self) -> CoreNetwork:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.nodes[name].port}"

    @property
    def urls(self) -> dict[str, str]:
        return {name: self.url(name) for name in self.nodes}

    def _listen(self, node: Node) -> None:
        net = self

        class Handler(_Handler):
            network = net
            me = node

        server = ThreadingHTTPServer(("127.0.0.1", node.port), Handler)
        server.daemon_threads = True
        node.server = server
        node.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()

    @staticmethod
    def _close_listener(node: Node) -> None:
        if node.server:
            node.server.shutdown()
            node.server.server_close()
            node.server = None

    def set_mode(self, name: str, mode: str) -> None:
        node = self.nodes[name]
        with self.lock:
            was = node.mode
            node.mode = mode
            if mode == "disagree":
                assert node.header is not None
                node.header.hash = self._hash(node.header.num, "fork")
            if was in ("lag", "disagree") and mode in ("ok", "refuse"):
                node.header = copy.copy(self.header)  # caught up again
        if mode == "down" and was != "down":
            self._close_listener(node)
        elif was == "down" and mode != "down":
            self._listen(node)

    # ---- consensus ----------------------------------------------------------------------------
    def _tick(self) -> None:
        while not self._stop.wait(self.close_interval):
            if not self.paused:
                self.close_ledger()

    def participants(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.votes]

    def close_ledger(self) -> bool:
        """Close one ledger if a quorum takes part; apply due upgrades. Returns whether it closed."""
        with self.lock:
            voters = self.participants()
            if len(voters) < self.threshold:
                return False
            prev = self.header
            step = next(self._steps)
            close_time = (prev.closeTime if prev.closeTime else int(time.time()) - step) + step
            new = Header(
                prev.num + 1,
                close_time,
                prev.version,
                prev.baseFee,
                prev.baseReserve,
                prev.maxTxSetSize,
                self._hash(prev.num + 1),
            )
            take, ops = [], 0
            while self.pending_txs and ops + self.pending_txs[0] <= prev.maxTxSetSize:
                ops += self.pending_txs[0]
                take.append(self.pending_txs.pop(0))
            new.txs, new.ops = len(take), ops
            for key, hkey in HEADER_KEYS.items():
                values = [n.armed[key] for n in voters if key in n.armed and n.armed_time <= close_time]
                if values and len(values) >= self.threshold and len(set(values)) == 1:
                    setattr(new, hkey, values[0])
                    for n in voters:
                        n.armed.pop(key, None)
            self.header = new
            self.history.append(copy.copy(new))
            gap_ms = (close_time - prev.closeTime) * 1000 if prev.closeTime else 0
            for n in self.nodes.values():
                if n.mode in ("ok", "refuse", "hang"):
                    n.header = copy.copy(new)
                    if gap_ms:
                        n.close_gaps_ms.append(gap_ms)
                    n.tx_counts.append(new.txs)
                    n.op_counts.append(new.ops)
            self.wall_at_close = time.monotonic()
            return True

    def now(self) -> float:
        """Virtual now: the last closeTime plus the wall time since, scaled to the close cadence."""
        with self.lock:
            speed = 1.0 / self.close_interval if self.close_interval else 1.0
            return self.header.closeTime + (time.monotonic() - self.wall_at_close) * min(speed, 1.0)

    def wait_ledgers(self, n: int, timeout: float = 10.0) -> None:
        target = self.header.num + n
        deadline = time.monotonic() + timeout
        while self.header.num < target and time.monotonic() < deadline:
            time.sleep(self.close_interval / 2)

    # ---- responses -------------------------------------------------------------------------------
    def info(self, node: Node) -> dict[str, Any]:
        body = reference("http/info-synced.json")
        info = body["info"]
        with self.lock:
            h = node.header
            assert h is not None
            up = [n for n in self.nodes.values() if n.mode != "down" and n is not node]
            info["ledger"] = {
                "age": max(0, int(self.now() - h.closeTime)) if h.closeTime else 0,
                "baseFee": h.baseFee,
                "baseReserve": h.baseReserve,
                "closeTime": h.closeTime,
                "hash": h.hash,
                "maxTxSetSize": h.maxTxSetSize,
                "num": h.num,
                "version": h.version,
            }
            info["network"] = self.passphrase
            info["protocol_version"] = node.max_protocol
            info["peers"] = {"authenticated_count": len(up), "pending_count": 0}
            voters = self.participants()
            missing = [n for n in self.nodes.values() if not n.votes and n.mode != "disagree"]
            disagree = [n for n in self.nodes.values() if n.mode == "disagree"]
            qset = info["quorum"]["qset"]
            qset.update(
                agree=len(voters),
                missing=len(missing),
                disagree=len(disagree),
                fail_at=max(0, len(voters) - self.threshold + 1) if len(voters) >= self.threshold else 0,
                ledger=max(1, h.num - 1),
            )
            info["quorum"]["transitive"]["node_count"] = len(self.nodes)
            if node.mode == "lag":
                info["state"] = "Catching up"
            elif len(voters) < self.threshold and node.votes:
                info["state"] = "Joining SCP"
            status = []
            if node.armed:
                parts = [f"upgradetime={_iso(node.armed_time)}"]
                for key, name in (
                    ("version", "protocolversion"),
                    ("fee", "basefee"),
                    ("reserve", "basereserve"),
                    ("maxtxsize", "maxtxsetsize"),
                ):
                    if key in node.armed:
                        parts.append(f"{name}={node.armed[key]}")
                status.append("Armed with network upgrades: " + ", ".join(parts))
            if status:
                info["status"] = status
            else:
                info.pop("status", None)
        return body

    def upgrades(self, node: Node, query: dict[str, str]) -> tuple[int, Any]:
        mode = query.get("mode")
        with self.lock:
            if mode == "get":
                out: dict[str, Any] = {"time": node.armed_time}
                for key in ("fee", "flags", "maxtxsize", "reserve", "version"):
                    out[key] = (
                        {"data": node.armed[key], "nullopt": False}
                        if key in node.armed
                        else {"nullopt": True}
                    )
                return 200, out
            if mode == "clear":
                node.armed, node.armed_time = {}, 0
                return 200, ""
            if mode != "set":
                return 200, "mode required: set, get or clear"
            node.upgrade_requests.append(json.dumps(query, sort_keys=True))
            raw_time = query.get("upgradetime", "")
            try:
                when = datetime.strptime(raw_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            except ValueError:
                return 200, f"could not parse upgradetime: '{raw_time}'"
            if node.mode == "refuse":
                return 200, {"exception": "upgrade refused by this node (test double: mode refuse)"}
            armed: dict[str, int] = {}
            for qkey, key in UPGRADE_KEYS.items():
                if qkey in query:
                    try:
                        armed[key] = int(query[qkey])
                    except ValueError:
                        return 200, {"exception": f"stoi: could not parse {qkey}"}
            if "version" in armed and armed["version"] > node.max_protocol:
                return 200, {
                    "exception": f"Protocol version error: supported is up to {node.max_protocol},"
                    f" passed is {armed['version']}"
                }
            node.armed, node.armed_time = armed, int(when.timestamp())
            return 200, ""

    def tx(self, node: Node, blob: str) -> dict[str, Any]:
        from stellar_sdk import TransactionEnvelope

        try:
            raw = base64.b64decode(blob, validate=True)
            if len(raw) % 4:
                raise ValueError("xdr_generic_get: message size not multiple of 4")
            env = TransactionEnvelope.from_xdr(blob, self.passphrase)
        except Exception:
            return {"exception": "xdr_generic_get: message size not multiple of 4"}
        with self.lock:
            if self.header.version == 0:
                return reference("http/tx-protocol0.json")
            h = env.hash_hex()
            if h in node.seen:
                return {"status": "DUPLICATE"}
            node.seen.add(h)
            self.pending_txs.append(len(env.transaction.operations))
            return {"status": "PENDING"}

    def metrics(self, node: Node) -> dict[str, Any]:
        body = reference("http/metrics.json")
        m = body["metrics"]
        with self.lock:
            gaps = list(node.close_gaps_ms)
            buckets = []
            lower = 0.0
            for b in BUCKETS_MS:
                inside = [g for g in gaps if lower < g <= b]
                buckets.append(
                    {
                        **m["ledger.age.closed"]["buckets"][0],
                        "boundary": b,
                        "count": len(inside),
                        "mean": (sum(inside) / len(inside)) if inside else 0,
                        "sum": sum(inside),
                    }
                )
                lower = b
            m["ledger.age.closed"]["buckets"] = buckets
            m["ledger.age.current-seconds"] = {
                "count": int(self.now() - node.header.closeTime)
                if node.header and node.header.closeTime
                else 0,
                "type": "counter",
            }
            for name, values in (
                ("ledger.transaction.count", node.tx_counts),
                ("ledger.operation.count", node.op_counts),
            ):
                m[name] = {
                    **m[name],
                    "count": len(values),
                    "sum": sum(values),
                    "max": max(values, default=0),
                    "mean": (sum(values) / len(values)) if values else 0,
                }
        return body

    def quorum(self, node: Node) -> dict[str, Any]:
        body = reference("http/quorum.json")
        with self.lock:
            voters = [n.name for n in self.participants()]
            missing = [n.name for n in self.nodes.values() if not n.votes and n.mode != "disagree"]
            disagree = [n.name for n in self.nodes.values() if n.mode == "disagree"]
            q = body["qset"]
            q.update(
                agree=voters,
                missing=missing or None,
                disagree=disagree or None,
                fail_at=max(0, len(voters) - self.threshold + 1) if len(voters) >= self.threshold else 0,
                ledger=node.header.num if node.header else 1,
            )
            q["value"] = {"t": self.threshold, "v": list(self.nodes)}
        return body

    def peers(self, node: Node) -> dict[str, Any]:
        body = reference("http/peers.json")
        template = body["authenticated_peers"]["outbound"][0]
        others = [n for n in self.nodes.values() if n is not node and n.mode != "down"]
        body["authenticated_peers"] = {
            "inbound": [],
            "outbound": [{**template, "id": n.name, "address": f"127.0.0.1:{n.port}"} for n in others],
        }
        return body


class _Handler(BaseHTTPRequestHandler):
    network: CoreNetwork
    me: Node
    wbufsize = 1 << 16  # one write per response: no Nagle / delayed-ACK stalls between headers and body

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: Any, content_type: str | None = None) -> None:
        if isinstance(body, str):
            data = body.encode()
            ctype = content_type or "text/plain"
        else:
            data = json.dumps(body, indent=3).encode()
            ctype = content_type or "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        net, node = self.network, self.me
        if node.mode == "hang":
            net._stop.wait(net.hang_seconds)
            return
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        cmd = parts.path.strip("/")
        if cmd == "info":
            return self._reply(200, net.info(node))
        if cmd == "upgrades":
            status, body = net.upgrades(node, query)
            return self._reply(status, body)
        if cmd == "tx":
            return self._reply(200, net.tx(node, query.get("blob", "")))
        if cmd == "metrics":
            return self._reply(200, net.metrics(node))
        if cmd == "quorum":
            return self._reply(200, net.quorum(node))
        if cmd == "peers":
            return self._reply(200, net.peers(node))
        return self._reply(404, reference("http/unknown-command.txt"), "text/html")


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
