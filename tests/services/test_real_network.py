"""The compliance and bridge flows against the session's deployed network (inventories/local with the
real stellar-core + Horizon, tests/network.py). Without the binaries it skips with one line saying what
to supply (in CI, where they are supplied, that is a failure).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from stellar_sdk import Keypair, TransactionEnvelope

from dlnet.services import bridge, compliance
from dlnet.services.settings import BridgeSettings, ComplianceSettings
from tests.conftest import skip_or_fail
from tests.network import Deployment, stellar_artifacts, wait_for
from tests.services.ledger_setup import Net

ROOT = Path(__file__).resolve().parents[2]
SKIP = ("needs stellar-core and Horizon: put the binaries in artifacts/ or set STELLAR_CORE_BIN/HORIZON_BIN,"
        " then make test")
TOKEN = "real-network-token-0123456789abcdef"

pytestmark = pytest.mark.stellar


@pytest.fixture
def real_horizon(request: pytest.FixtureRequest) -> tuple[str, str]:
    if not stellar_artifacts():
        skip_or_fail(SKIP)
    deployment: Deployment = request.getfixturevalue("deployment")
    assert not deployment.double, "real binaries supplied, yet the deployment runs the test double"
    passphrase = yaml.safe_load((ROOT / "inventories/local/group_vars/all/network.yml").read_text())[
        "dlnet_network_passphrase"]
    port = yaml.safe_load((ROOT / "inventories/local/hosts.yml").read_text())["all"]["children"]["horizon"][
        "hosts"]["horizon1"]["horizon_port"]
    url = f"http://127.0.0.1:{port}"

    def ingesting() -> bool:
        try:
            root = httpx.get(url, timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return False
        return root.get("network_passphrase") == passphrase and root.get("history_latest_ledger", 0) > 1

    assert wait_for(ingesting, timeout=180, every=2), f"Horizon at {url} never ingested the deployed network"
    return url, passphrase


def test_revocation_takes_effect_on_the_real_network(real_horizon, database, kubo_swarm, secret_file):
    url, passphrase = real_horizon
    net = Net(url, passphrase)
    issuer, dlc = net.regulated_asset()
    alice = Keypair.random()
    net.fund(alice)
    net.trust(alice, dlc)
    signing = Keypair.random()
    s = ComplianceSettings(
        network_passphrase=passphrase, database=database, home_domain="org1.dlnet.local",
        web_auth_domain="compliance.org1.dlnet.local", horizon_url=url, ipfs_api_url=kubo_swarm[0],
        dlc={"issuer": issuer.public_key}, signing_key_file=secret_file("sk", signing.secret),
        jwt_secret_file=secret_file("jwt", secrets.token_hex(16)),
        kyc_kek_file=secret_file("kek", secrets.token_hex(32)),
        issuer_seed_file=secret_file("iss", issuer.secret))
    admin = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(compliance.create_app(s, admin_token=TOKEN)) as c:
        ch = c.get("/auth", params={"account": alice.public_key}).json()["transaction"]
        env = TransactionEnvelope.from_xdr(ch, passphrase)
        env.sign(alice)
        jwt = c.post("/auth", json={"transaction": env.to_xdr()}).json()["token"]
        assert c.post("/kyc", json={"fields": {"first_name": "A"}},
                      headers={"Authorization": f"Bearer {jwt}"}).status_code == 202
        r = c.post(f"/admin/kyc/{alice.public_key}/approve", json={"operator": "op"}, headers=admin)
        assert r.status_code == 200, r.text
        assert net.line(alice.public_key, dlc)["is_authorized"] is True
        r = c.post(f"/admin/kyc/{alice.public_key}/revoke", json={"operator": "op"}, headers=admin)
        assert r.status_code == 200, r.text
        assert net.line(alice.public_key, dlc)["is_authorized"] is False
    from stellar_sdk import Asset

    result = net.try_tx(issuer, lambda b: b.append_payment_op(alice.public_key, Asset(dlc.code, dlc.issuer), "1"))
    assert result.get("operations") == ["op_not_authorized"]


def test_bridge_retries_pay_once_on_the_real_network(real_horizon, database, secret_file):
    url, passphrase = real_horizon
    net = Net(url, passphrase)
    payer, dest = Keypair.random(), Keypair.random()
    net.fund(payer, dest)
    s = BridgeSettings(network_passphrase=passphrase, database=database, horizon_url=url, follow=False,
                       accounts=[{"name": "p", "seed_file": secret_file("p", payer.secret)}],
                       webhook_secret_file=secret_file("h", "h" * 32))
    before = float(net.native_balance(dest.public_key))
    with TestClient(bridge.create_app(s, api_token=TOKEN)) as c:
        for _ in range(5):
            r = c.post("/payments", json={"source": "p", "destination": dest.public_key, "asset": "native",
                                          "amount": "7"},
                       headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "real-1"})
            assert r.status_code in (200, 202)
    assert float(net.native_balance(dest.public_key)) - before == pytest.approx(7)
