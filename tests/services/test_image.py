"""The services image runs a service as its non-root user against a real PostgreSQL (host network, loopback).

Needs the Docker engine and the image (`make image-services`); skips with one line otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import httpx
import pytest
import yaml

from tests.services.pg import free_port

IMAGE = os.environ.get("DLNET_SERVICES_IMAGE", "dlnet/services:0.1.0")
TOKEN = "image-test-admin-token-0123456789"

pytestmark = pytest.mark.integration


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode == 0


@pytest.fixture
def container_name():
    name = f"dlnet-test-svc-federation-{os.getpid()}"
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_federation_container_serves_and_stays_quiet_about_secrets(pg_cluster, tmp_path, container_name):
    if not _docker_ok():
        pytest.skip(f"needs the Docker engine and the image {IMAGE}: run `make image-services`")
    conf = tmp_path / "etc"
    (conf / "secrets").mkdir(parents=True)
    port = free_port()
    (conf / "secrets" / "admin_token").write_text(TOKEN + "\n")
    (conf / "secrets" / "database_password").write_text(pg_cluster.password + "\n")
    (conf / "service.yml").write_text(yaml.safe_dump({
        "listen_host": "127.0.0.1", "listen_port": port, "network_passphrase": "dlnet image test",
        "home_domain": "org1.image.test", "public_url": f"http://127.0.0.1:{port}",
        "database": {"dsn": pg_cluster.dsn(pg_cluster.new_database()),
                     "password_file": "/etc/dlnet/secrets/database_password"},
        "admin_token_file": "/etc/dlnet/secrets/admin_token"}))
    if os.geteuid() == 0:  # the container's user (UID 955) must read its config and secrets
        for p in [conf, *conf.rglob("*")]:
            os.chown(p, 955, 955)
    (conf / "secrets").chmod(0o700)
    subprocess.run(["docker", "run", "-d", "--name", container_name, "--network", "host",
                    "-e", f"DLNET_SERVICE_PORT={port}", "-v", f"{conf}:/etc/dlnet:ro", IMAGE, "federation"],
                   check=True, capture_output=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        logs = subprocess.run(["docker", "logs", container_name], capture_output=True, text=True).stderr
        pytest.fail(f"container never became healthy: {logs[-2000:]}")
    assert "FEDERATION_SERVER" in httpx.get(f"{base}/.well-known/stellar.toml").text
    assert httpx.get(f"{base}/federation", params={"q": "x*org1.image.test", "type": "name"}).status_code == 404
    user = subprocess.run(["docker", "exec", container_name, "id", "-u"], capture_output=True, text=True).stdout
    assert user.strip() == "955"
    logs = subprocess.run(["docker", "logs", container_name], capture_output=True, text=True)
    assert '"msg": "request"' in logs.stderr
    assert TOKEN not in logs.stdout + logs.stderr and pg_cluster.password not in logs.stdout + logs.stderr
