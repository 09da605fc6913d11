"""schemathesis against each service's OpenAPI description: no generated request may cause a 5xx.

Requests carry valid credentials so the fuzzing reaches the handlers, not just the auth check.
"""

from __future__ import annotations

import contextlib
import secrets

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from stellar_sdk import Keypair

from dlnet.services import bridge, compliance, federation
from dlnet.services.settings import BridgeSettings, ComplianceSettings, DatabaseSettings, FederationSettings
from tests.doubles.horizon import HorizonDouble
from tests.services.ledger_setup import Net

TOKEN = "fuzz-admin-token-0123456789abcdef"
PASS = "dlnet fuzz network"
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def env(pg_cluster, kubo_swarm, tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")

    def secret(name: str, value: str):
        p = d / name
        p.write_text(value + "\n")
        return p

    def database() -> DatabaseSettings:
        return DatabaseSettings(dsn=pg_cluster.dsn(pg_cluster.new_database()), password_file=pg_cluster.password_file)

    horizon = HorizonDouble(PASS)
    horizon.start()
    net = Net(horizon.url, PASS)
    issuer, _ = net.regulated_asset()
    payer = Keypair.random()
    net.fund(payer)
    apps = {
        "federation": federation.create_app(FederationSettings(
            network_passphrase=PASS, database=database(), home_domain="org1.fuzz", public_url="http://127.0.0.1",
            currencies=[{"code": "DLC", "issuer": issuer.public_key}], rate_limit_per_minute=0), admin_token=TOKEN),
        "compliance": compliance.create_app(ComplianceSettings(
            network_passphrase=PASS, database=database(), home_domain="org1.fuzz", web_auth_domain="c.org1.fuzz",
            horizon_url=horizon.url, ipfs_api_url=kubo_swarm[0], dlc={"issuer": issuer.public_key},
            signing_key_file=secret("sk", Keypair.random().secret),
            jwt_secret_file=secret("jwt", secrets.token_hex(16)),
            kyc_kek_file=secret("kek", secrets.token_hex(32)), issuer_seed_file=secret("iss", issuer.secret),
            rate_limit_per_minute=0), admin_token=TOKEN),
        "bridge": bridge.create_app(BridgeSettings(
            network_passphrase=PASS, database=database(), horizon_url=horizon.url, follow=False,
            accounts=[{"name": "rewards", "seed_file": secret("payer", payer.secret)}],
            webhook_secret_file=secret("hook", "h" * 32), rate_limit_per_minute=0), api_token=TOKEN),
    }
    clients = {k: TestClient(a) for k, a in apps.items()}
    for c in clients.values():
        c.__enter__()  # run the lifespan: migrations and the pool
    # A real participant token, so /kyc is fuzzed past authentication.
    alice = Keypair.random()
    ch = clients["compliance"].get("/auth", params={"account": alice.public_key}).json()["transaction"]
    from stellar_sdk import TransactionEnvelope

    envelope = TransactionEnvelope.from_xdr(ch, PASS)
    envelope.sign(alice)
    jwt = clients["compliance"].post("/auth", json={"transaction": envelope.to_xdr()}).json()["token"]
    yield {"apps": apps, "jwt": jwt}
    for c in clients.values():
        c.__exit__(None, None, None)
    horizon.stop()


def fuzz(app, token_for) -> list[str]:
    """Every operation, FUZZ examples each; return the failures (a 5xx, with the request that caused it)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert operations, "the OpenAPI description lists no operations"
    for op in operations:
        @given(case=op.as_strategy())
        @FUZZ
        def run(case) -> None:
            headers = {**(case.headers or {}), "Authorization": f"Bearer {token_for(case.path)}"}
            try:
                case.call_and_validate(headers=headers, checks=[not_a_server_error])
            except AssertionError as exc:
                failures.append(f"{case.method} {case.path}: {str(exc)[:300]}")
                raise

        with contextlib.suppress(AssertionError):  # recorded above, with the shrunk example
            run()
    return failures


def test_federation_no_server_errors(env):
    assert fuzz(env["apps"]["federation"], lambda path: TOKEN) == []


def test_compliance_no_server_errors(env):
    assert fuzz(env["apps"]["compliance"], lambda path: env["jwt"] if path.startswith("/kyc") else TOKEN) == []


def test_bridge_no_server_errors(env):
    assert fuzz(env["apps"]["bridge"], lambda path: TOKEN) == []
