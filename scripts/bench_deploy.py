#!/usr/bin/env python3
"""Deployment benchmark: image builds, `make up` from cached images to all healthy, idempotent re-run.

Deploys inventories/local as environment `bench` (containers dlnet-bench-*), then removes it.
Without stellar-core/Horizon artifacts those components are left out, and the output says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from dlnet.preflight import Artifacts  # noqa: E402

PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def play(name: str, extra: Path, state: str) -> float:
    env = {**os.environ, "DLNET_STATE_DIR": state, "ANSIBLE_NOCOLOR": "1"}
    start = time.monotonic()
    proc = subprocess.run(
        [PLAYBOOK, "-i", "inventories/local", f"deploy/{name}", "-e", f"@{extra}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"error: {name} failed:\n{proc.stdout[-3000:]}")
    return took


def healthy(env: str) -> bool:
    out = subprocess.run(
        ["docker", "ps", "--filter", f"label=dlnet.environment={env}", "--format", "{{.Status}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return bool(out) and all("(healthy)" in s for s in out)


def main() -> int:
    build = subprocess.run(
        [sys.executable, "scripts/build_images.py"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if build.returncode != 0:
        sys.exit(f"error: image build failed:\n{build.stderr[-2000:]}")
    cached = json.loads((ROOT / "build" / "image-build-times.json").read_text())
    art = Artifacts.resolve(ROOT / "artifacts")
    stellar = art.stellar_core.is_file() and art.horizon.is_file()
    extra_vars: dict[str, object] = {"dlnet_env": "bench"}
    if not stellar:
        extra_vars["dlnet_components"] = {
            "stellar_core": False,
            "horizon": False,
            "postgres": True,
            "ipfs": True,
            "prometheus": True,
            "grafana": False,
        }
    with tempfile.TemporaryDirectory() as state:
        extra = Path(state) / "extra.json"
        extra.write_text(json.dumps(extra_vars))
        play("remove-network.yml", extra, state)
        start = time.monotonic()
        up = play("site.yml", extra, state)
        while not healthy("bench") and time.monotonic() - start < 300:
            time.sleep(0.5)
        to_healthy = time.monotonic() - start
        rerun = play("site.yml", extra, state)
        play("remove-network.yml", extra, state)
    print(
        "deploy benchmark (inventories/local as env 'bench'"
        + ("" if stellar else "; stellar-core and Horizon left out: no artifacts")
        + ")"
    )
    print("  image build times with a warm cache (s): " + ", ".join(f"{k} {v:.1f}" for k, v in cached.items()))
    print(f"  make up, cached images -> all components healthy: {to_healthy:6.1f} s (playbook {up:.1f} s)")
    print(f"  idempotent re-run (changed=0):                    {rerun:6.1f} s")
    print(f"  ratio re-run / first deploy:                      {rerun / up:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
