"""The real network the benchmarks measure: inventories/local deployed as environment `bench`
(containers dlnet-bench-*, state in a temporary folder), with the real stellar-core and Horizon
artifacts, removed afterwards. Not a benchmark itself (make bench runs scripts/bench_*.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from dlnet.preflight import Artifacts  # noqa: E402

BIN = Path(sys.executable).parent
ENV = "bench"
INVENTORY = "inventories/local"
SKIP = ("needs the real stellar-core and Horizon (artifacts/ or STELLAR_CORE_BIN/HORIZON_BIN;"
        " `make fetch-artifacts` on an internet-connected host)")


def have_binaries() -> bool:
    art = Artifacts.resolve(ROOT / "artifacts")
    return art.stellar_core.is_file() and art.horizon.is_file()


def build_images() -> dict[str, float]:
    build = subprocess.run([sys.executable, "scripts/build_images.py"], cwd=ROOT, capture_output=True, text=True,
                           check=False)
    if build.returncode != 0:
        sys.exit(f"error: image build failed:\n{build.stderr[-2000:]}")
    return json.loads((ROOT / "build" / "image-build-times.json").read_text())


@dataclass
class BenchNetwork:
    state: str
    extra: Path

    def play(self, name: str) -> tuple[float, str]:
        env = {**os.environ, "DLNET_STATE_DIR": self.state, "ANSIBLE_NOCOLOR": "1"}
        start = time.monotonic()
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", INVENTORY, f"deploy/{name}", "-e",
                               f"@{self.extra}"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        took = time.monotonic() - start
        if proc.returncode != 0:
            sys.exit(f"error: {name} failed:\n{proc.stdout[-3000:]}")
        return took, proc.stdout

    def dlnet(self, *args: str) -> tuple[float, dict]:
        """Run a dlnet verb against this network with --json; (seconds, parsed output)."""
        env = {**os.environ, "DLNET_STATE_DIR": self.state}
        start = time.monotonic()
        proc = subprocess.run([str(BIN / "dlnet"), *args, "-i", INVENTORY, "-e", f"dlnet_env={ENV}", "--json"],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        took = time.monotonic() - start
        if proc.returncode != 0:
            sys.exit(f"error: dlnet {' '.join(args)} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return took, json.loads(proc.stdout)

    def until_healthy(self, start: float, limit: float = 300) -> float:
        while not healthy() and time.monotonic() - start < limit:
            time.sleep(0.25)
        return time.monotonic() - start


def healthy() -> bool:
    out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=dlnet.environment={ENV}", "--format",
                          "{{.Status}}"], capture_output=True, text=True, check=True).stdout.splitlines()
    return bool(out) and all("(healthy)" in s for s in out)


def changed(output: str) -> int:
    recap = output.split("PLAY RECAP", 1)[-1]
    return sum(int(part.split("=")[1]) for part in recap.split() if part.startswith("changed="))


@contextmanager
def bench_network(deploy: bool = True) -> Iterator[BenchNetwork]:
    """A fresh `bench` network (deployed unless deploy=False: the caller times it), removed on exit."""
    with tempfile.TemporaryDirectory() as state:
        extra = Path(state) / "extra.json"
        extra.write_text(json.dumps({"dlnet_env": ENV}))
        net = BenchNetwork(state, extra)
        net.play("remove-network.yml")
        try:
            if deploy:
                start = time.monotonic()
                net.play("site.yml")
                net.until_healthy(start)
            yield net
        finally:
            net.play("remove-network.yml")
