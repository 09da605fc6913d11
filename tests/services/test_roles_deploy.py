"""Deploy the federation and bridge roles for real (deploy/deploy-services.yml) on this host: containers
dlnet-test-svc-*, a throwaway PostgreSQL, the Horizon double; then idempotence and check mode.

Needs the Docker engine and the services image (`make image-services`); skips with one line otherwise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import psycopg
import pytest
import yaml
from stellar_sdk import Keypair

from tests.conftest import ROOT
from tests.services.ledger_setup import Net
from tests.services.pg import free_port
from tests.services.test_image import IMAGE, _docker_ok

pytestmark = pytest.mark.integration
PLAYBOOK = ROOT / "deploy" / "deploy-services.yml"


def _play(inventory, extra, *flags: str) -> subprocess.CompletedProcess[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return subprocess.run([exe, "-i", str(inventory), str(PLAYBOOK), "-e", f"@{extra}", *flags],
                          capture_output=True, text=True, check=False, cwd=ROOT,
                          env=os.environ | {"ANSIBLE_NOCOLOR": "1"})


def _changed(out: str) -> int:
    return sum(int(m) for m in re.findall(r"changed=(\d+)", out))


@pytest.fixture
def cleanup():
    names: list[str] = []
    yield names
    for n in names:
        subprocess.run(["docker", "rm", "-f", n], capture_output=True, check=False)


def test_roles_deploy_idempotent_and_check_mode(pg_cluster, horizon_double, kubo_swarm, tmp_path, cleanup):
    if not _docker_ok():
        pytest.skip(f"needs the Docker engine and the image {IMAGE}: run `make image-services`")
    with psycopg.connect(pg_cluster.conninfo(), autocommit=True) as c:
        c.execute("CREATE DATABASE dlnet_services")
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    (secrets_dir / "postgres.password").write_text(pg_cluster.password + "\n")
    payer = Keypair.random()
    fed_port, bridge_port, comp_port = free_port(), free_port(), free_port()
    issuer, _ = Net(horizon_double.url, horizon_double.passphrase).regulated_asset()
    signing = Keypair.random()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"dlnet_services": {"hosts": {"svc1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({
        "dlnet_env": "test", "dlnet_network_passphrase": horizon_double.passphrase,
        "dlnet_data_root": str(tmp_path / "data"), "dlnet_container_prefix": "dlnet-test-svc",
        "dlnet_secrets_dir": str(secrets_dir), "dlnet_image_tag": IMAGE.split(":")[1],
        "dlnet_components": {"services": True},
        "dlnet_services_enabled": {"federation": True, "compliance": True, "bridge": True},
        "dlnet_compliance_port": comp_port, "dlnet_compliance_database_port": pg_cluster.port,
        "dlnet_compliance_database_user": "dlnet", "dlnet_compliance_home_domain": "org1.roles.test",
        "dlnet_compliance_web_auth_domain": "compliance.org1.roles.test",
        "dlnet_compliance_horizon_url": horizon_double.url, "dlnet_compliance_ipfs_api_url": kubo_swarm[0],
        "dlnet_compliance_dlc": {"issuer": issuer.public_key},
        "dlnet_compliance_signing_seed": signing.secret, "dlnet_compliance_issuer_seed": issuer.secret,
        "dlnet_compliance_ready_timeout": 60,
        "dlnet_federation_port": fed_port, "dlnet_federation_home_domain": "org1.roles.test",
        "dlnet_federation_database_port": pg_cluster.port, "dlnet_federation_database_user": "dlnet",
        "dlnet_bridge_database_user": "dlnet",
        "dlnet_bridge_port": bridge_port, "dlnet_bridge_database_port": pg_cluster.port,
        "dlnet_bridge_horizon_url": horizon_double.url,
        "dlnet_bridge_accounts": [{"name": "rewards", "seed": payer.secret}],
        "dlnet_federation_ready_timeout": 60, "dlnet_bridge_ready_timeout": 60,
    }))
    cleanup += ["dlnet-test-svc-federation-svc1", "dlnet-test-svc-compliance-svc1", "dlnet-test-svc-bridge-svc1"]
    first = _play(inventory, extra)
    if first.returncode != 0:
        logs = "".join(subprocess.run(["docker", "logs", n], capture_output=True, text=True).stderr[-1500:]
                       for n in cleanup)
        pytest.fail(f"deploy failed: {first.stdout[-1500:]}\ncontainer logs: {logs}")
    for secret in (payer.secret, issuer.secret, signing.secret, pg_cluster.password):
        assert secret not in first.stdout + first.stderr
    challenge = httpx.get(f"http://127.0.0.1:{comp_port}/auth", params={"account": payer.public_key})
    assert challenge.status_code == 200 and challenge.json()["network_passphrase"] == horizon_double.passphrase
    kek = (secrets_dir / "compliance.kyc_kek").read_text().strip()
    assert len(kek) == 64 and int(kek, 16) >= 0
    toml = httpx.get(f"http://127.0.0.1:{fed_port}/.well-known/stellar.toml").text
    assert 'NETWORK_PASSPHRASE = "' + horizon_double.passphrase in toml
    assert httpx.get(f"http://127.0.0.1:{bridge_port}/health").json()["ok"] is True
    token = (secrets_dir / "bridge.admin_token").read_text().strip()
    assert oct((secrets_dir / "bridge.admin_token").stat().st_mode & 0o777) == "0o600"
    accounts = httpx.get(f"http://127.0.0.1:{bridge_port}/accounts", headers={"Authorization": f"Bearer {token}"})
    assert accounts.json() == [{"name": "rewards", "account_id": payer.public_key}]
    seed_file = tmp_path / "data" / "bridge" / "svc1" / "secrets" / "account-rewards.seed"
    assert oct(seed_file.stat().st_mode & 0o777) == "0o600" and seed_file.stat().st_uid == 955
    second = _play(inventory, extra)
    assert second.returncode == 0 and _changed(second.stdout) == 0, second.stdout[-3000:]
    check = _play(inventory, extra, "--check")
    assert check.returncode == 0 and _changed(check.stdout) == 0, check.stdout[-3000:]
