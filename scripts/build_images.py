#!/usr/bin/env python3
"""Build dlnet's images locally (no registry): `build_images.py [NAME ...]`, default all.

The base image comes from debootstrap + `docker import`; the others are classic `docker build`s
whose contexts are staged under build/context/<name> (Dockerfile, binaries, the dlnet wheel, the
extra CA bundle). stellar-core and Horizon are built only when their artifacts are supplied.
Prints one line per image with its build time, which `make bench` reads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from dlnet.preflight import Artifacts  # noqa: E402


def versions() -> dict[str, str]:
    out = {}
    for line in (ROOT / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = os.environ.get(k, v)
    return out


V = versions()
TAG = V["IMAGE_TAG"]
BASE = f"dlnet/base:{V['DEBIAN_SUITE']}"


def run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False).returncode == 0


def build_base() -> str:
    if image_exists(BASE) and os.environ.get("FORCE_BASE") != "1":
        return "cached"
    rootfs = ROOT / "build" / "rootfs" / V["DEBIAN_SUITE"]
    if rootfs.exists():
        shutil.rmtree(rootfs)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    run(
        ["debootstrap", "--variant=minbase", V["DEBIAN_SUITE"], str(rootfs), V["DEBIAN_MIRROR"]],
        stdout=subprocess.DEVNULL,
    )
    # Keep images small: no apt lists or docs from the bootstrap.
    for junk in ("var/lib/apt/lists", "var/cache/apt/archives", "usr/share/doc", "usr/share/man"):
        shutil.rmtree(rootfs / junk, ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    run(["docker", "import", "--change", 'CMD ["/bin/bash"]', "-", BASE], stdin=tar.stdout, stdout=subprocess.DEVNULL)
    if tar.wait() != 0:
        raise SystemExit("error: tar of the debootstrap tree failed")
    shutil.rmtree(rootfs)
    return "built"


def stage(name: str, extra: dict[str, Path]) -> Path:
    ctx = ROOT / "build" / "context" / name
    if ctx.exists():
        shutil.rmtree(ctx)
    shutil.copytree(ROOT / "images" / name, ctx)
    for dest, src in extra.items():
        shutil.copy2(src, ctx / dest)
    return ctx


def docker_build(name: str, ctx: Path, args: dict[str, str]) -> None:
    cmd = ["docker", "build", "--quiet", "--force-rm", "--network", "host", "-t", f"dlnet/{name}:{TAG}"]
    for k, v in {"BASE_IMAGE": BASE, "IMAGE_VERSION": TAG, **args}.items():
        cmd += ["--build-arg", f"{k}={v}"]
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # classic builder: no frontend image to pull
    run([*cmd, str(ctx)], stdout=subprocess.DEVNULL, env=env)


def ca_bundle() -> Path:
    path = Path(os.environ.get("EXTRA_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt")
    if not path.is_file():
        empty = ROOT / "build" / "empty-ca.crt"
        empty.parent.mkdir(parents=True, exist_ok=True)
        empty.write_text("")
        return empty
    return path


def wheel() -> Path:
    out = ROOT / "build" / "wheels"
    shutil.rmtree(out, ignore_errors=True)
    # A fixed SOURCE_DATE_EPOCH makes the wheel byte-identical across builds, so the image cache holds.
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},
        stdout=subprocess.DEVNULL,
    )
    return next(out.glob("dlnet-*.whl"))


def main(argv: list[str]) -> int:
    art = Artifacts.resolve(ROOT / "artifacts")
    ipfs = ROOT / "build" / "bin" / "ipfs"
    plan = {
        "base": lambda: build_base(),
        "postgres": lambda: docker_build("postgres", stage("postgres", {}), {"POSTGRES_MAJOR": V["POSTGRES_MAJOR"]}),
        "kubo": lambda: docker_build("kubo", stage("kubo", {"ipfs": ipfs}), {"KUBO_VERSION": V["KUBO_VERSION"]}),
        "prometheus": lambda: docker_build("prometheus", stage("prometheus", {}), {}),
        "tools": lambda: docker_build("tools", stage_tools(), {}),
        "services": lambda: docker_build("services", stage_services(), {}),
        "stellar-core": lambda: docker_build(
            "stellar-core", stage("stellar-core", {"stellar-core": art.stellar_core}), {}
        ),
        "horizon": lambda: docker_build(
            "horizon", stage("horizon", {"stellar-horizon": art.horizon}), {"CORE_IMAGE": f"dlnet/stellar-core:{TAG}"}
        ),
    }

    def stage_tools() -> Path:
        ctx = stage("dlnet", {"extra-ca.crt": ca_bundle()})
        shutil.copy2(wheel(), ctx)
        return ctx

    def stage_services() -> Path:
        ctx = stage("services", {"extra-ca.crt": ca_bundle()})
        shutil.copy2(wheel(), ctx)
        return ctx

    wanted = argv or list(plan)
    unknown = [w for w in wanted if w not in plan]
    if unknown:
        print(f"error: unknown image {', '.join(unknown)} — expected one of {', '.join(plan)}", file=sys.stderr)
        return 1
    if "kubo" in wanted and not ipfs.is_file():
        print("error: build/bin/ipfs missing — run `make kubo` first", file=sys.stderr)
        return 1
    results = {}
    for name in wanted:
        if name == "stellar-core" and not art.stellar_core.is_file():
            print(
                f"skip  stellar-core: no artifact at {art.stellar_core} (put the binary there or set STELLAR_CORE_BIN)"
            )
            continue
        if name == "horizon" and not (art.horizon.is_file() and image_exists(f"dlnet/stellar-core:{TAG}")):
            print(f"skip  horizon: needs {art.horizon} (or HORIZON_BIN) and the stellar-core image")
            continue
        start = time.monotonic()
        outcome = plan[name]() or "built"
        took = time.monotonic() - start
        results[name] = round(took, 2)
        print(f"image {name:<13} {outcome:<7} {took:7.1f} s")
    timings = ROOT / "build" / "image-build-times.json"
    timings.parent.mkdir(parents=True, exist_ok=True)
    timings.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
