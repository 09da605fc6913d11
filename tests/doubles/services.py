"""Small doubles for `dlnet status`: PostgreSQL's SSLRequest answer, kubo RPC, Prometheus API."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class PostgresDouble:
    """Answers an SSLRequest with 'N' (no SSL), as a PostgreSQL accepting connections does."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if conn.recv(8)[4:] == b"\x04\xd2\x16\x2f":
                    conn.sendall(b"N")

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()


class JsonDouble:
    """HTTP server answering fixed JSON per (method, path); used for kubo RPC and Prometheus."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, Any]]) -> None:
        double = self
        self.routes = routes

        class Handler(BaseHTTPRequestHandler):
            wbufsize = 1 << 16  # one write per response
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, method: str) -> None:
                status, body = double.routes.get((method, self.path.split("?")[0]), (404, {"error": "no route"}))
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def kubo(peers: int) -> JsonDouble:
    """kubo RPC: POST only (a GET answers 405, as kubo does)."""
    body = {
        "Peers": [{"Addr": f"/ip4/127.0.0.1/tcp/{4001 + i}", "Peer": f"12D3KooWpeer{i}"} for i in range(peers)] or None
    }
    return JsonDouble(
        {
            ("POST", "/api/v0/swarm/peers"): (200, body),
            ("GET", "/api/v0/swarm/peers"): (405, "405 - Method Not Allowed"),
        }
    )


def prometheus(up: int, down: int) -> JsonDouble:
    targets = [{"health": "up"}] * up + [{"health": "down"}] * down
    return JsonDouble(
        {
            ("GET", "/-/ready"): (200, "Prometheus Server is Ready.\n"),
            ("GET", "/api/v1/targets"): (
                200,
                {"status": "success", "data": {"activeTargets": targets, "droppedTargets": []}},
            ),
        }
    )
