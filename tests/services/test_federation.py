"""Federation (SEP-2) and stellar.toml (SEP-1), against real PostgreSQL, through stellar-sdk's clients."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from stellar_sdk import Keypair
from stellar_sdk.sep import federation as sep2
from stellar_sdk.sep.exceptions import BadFederationResponseError
from stellar_sdk.sep.stellar_toml import fetch_stellar_toml

from dlnet.services import db
from dlnet.services.federation import create_app
from dlnet.services.settings import FederationSettings
from tests.services.conftest import live_server

PASSPHRASE = "dlnet test network ; federation"
TOKEN = "t0ken-for-the-admin-api-0123456789"
ISSUER = Keypair.random().public_key
VALIDATOR = Keypair.random().public_key


def settings(database, url: str = "http://127.0.0.1:1") -> FederationSettings:
    return FederationSettings(
        network_passphrase=PASSPHRASE, database=database, home_domain="org1.dlnet.test", public_url=url,
        org_name="Org One", accounts=[ISSUER],
        currencies=[{"code": "DLC", "issuer": ISSUER, "desc": "deep learning coin", "regulated": True,
                     "approval_server": "http://127.0.0.1:9/tx-approve"},
                    {"code": "DLM", "issuer": ISSUER}, {"code": "VLM", "issuer": ISSUER}],
        validators=[{"alias": "v1", "display_name": "Validator \"one\"", "public_key": VALIDATOR,
                     "host": "v1.org1.dlnet.test:11625", "history": "http://v1.org1.dlnet.test:11570"}],
        rate_limit_per_minute=0,
    )


@pytest.fixture
def client(database):
    with TestClient(create_app(settings(database), admin_token=TOKEN)) as c:
        yield c


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_admin_api_requires_token(client):
    acc = Keypair.random().public_key
    assert client.put("/admin/records/alice", json={"account_id": acc}).status_code == 401
    r = client.put("/admin/records/alice", json={"account_id": acc}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403, r.text
    assert client.get("/federation", params={"q": "alice*org1.dlnet.test", "type": "name"}).status_code == 404


def test_name_and_reverse_lookup_through_sdk_clients(database):
    alice, bob = Keypair.random().public_key, Keypair.random().public_key
    with live_server(lambda base: create_app(settings(database, base), admin_token=TOKEN)) as base:
        for name, acc, memo in (("alice", alice, None), ("Bob", bob, ("id", "42"))):
            body = {"account_id": acc} | ({"memo_type": memo[0], "memo": memo[1]} if memo else {})
            r = httpx.put(f"{base}/admin/records/{name}", json=body, headers=AUTH)
            assert r.status_code == 200, r.text
        domain = base.removeprefix("http://")
        toml = fetch_stellar_toml(domain, use_http=True)
        assert toml["FEDERATION_SERVER"] == f"{base}/federation"
        assert toml["NETWORK_PASSPHRASE"] == PASSPHRASE
        assert {c["code"] for c in toml["CURRENCIES"]} == {"DLC", "DLM", "VLM"}
        assert toml["VALIDATORS"][0]["PUBLIC_KEY"] == VALIDATOR
        assert toml["VALIDATORS"][0]["DISPLAY_NAME"] == 'Validator "one"'
        assert toml["ACCOUNTS"] == [ISSUER]
        rec = sep2.resolve_stellar_address("alice*org1.dlnet.test", federation_url=toml["FEDERATION_SERVER"])
        assert rec.account_id == alice and rec.memo_type is None
        rec = sep2.resolve_stellar_address("bob*org1.dlnet.test", federation_url=toml["FEDERATION_SERVER"])
        assert (rec.account_id, rec.memo_type, rec.memo) == (bob, "id", "42")
        rev = sep2.resolve_account_id(bob, federation_url=toml["FEDERATION_SERVER"])
        assert rev.stellar_address == "bob*org1.dlnet.test"
        with pytest.raises(BadFederationResponseError) as err:
            sep2.resolve_stellar_address("carol*org1.dlnet.test", federation_url=toml["FEDERATION_SERVER"])
        assert err.value.status == 404


@pytest.mark.parametrize("params, needle", [
    ({"q": "GBAD", "type": "id"}, "expected a Stellar account id"),
    ({"q": "no-star", "type": "name"}, "name*domain"),
    ({"q": "alice*org1.dlnet.test", "type": "txid"}, "type"),
    ({"q": "alice*org1.dlnet.test"}, "type"),
    ({"q": "x" * 500, "type": "name"}, "q"),
])
def test_malformed_lookups_are_400(client, params, needle):
    r = client.get("/federation", params=params)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


@pytest.mark.parametrize("body, needle", [
    ({"account_id": "GNOTANACCOUNT"}, "expected a Stellar account id"),
    ({"account_id": Keypair.random().public_key, "memo_type": "id"}, "go together"),
    ({"account_id": Keypair.random().public_key, "memo_type": "id", "memo": "-1"}, "unsigned 64-bit"),
    ({"account_id": Keypair.random().public_key, "memo_type": "text", "memo": "y" * 40}, "at most"),
    ({"account_id": Keypair.random().public_key, "extra": 1}, "extra"),
])
def test_bad_records_are_400(client, body, needle):
    r = client.put("/admin/records/alice", json=body, headers=AUTH)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_bad_name_and_wrong_domain(client):
    acc = Keypair.random().public_key
    assert client.put("/admin/records/al ice", json={"account_id": acc}, headers=AUTH).status_code == 400
    assert client.put("/admin/records/alice", json={"account_id": acc}, headers=AUTH).status_code == 200
    r = client.get("/federation", params={"q": "alice*other.example", "type": "name"})
    assert r.status_code == 404 and r.json()["detail"] == "not found"
    assert r.headers["access-control-allow-origin"] == "*"


def test_update_delete_and_reverse_lookup_order(client):
    acc = Keypair.random().public_key
    for name in ("zed", "amy"):
        assert client.put(f"/admin/records/{name}", json={"account_id": acc}, headers=AUTH).status_code == 200
    r = client.get("/federation", params={"q": acc, "type": "id"})
    assert r.json()["stellar_address"] == "zed*org1.dlnet.test"  # the oldest name wins
    assert client.delete("/admin/records/zed", headers=AUTH).status_code == 204
    assert client.delete("/admin/records/zed", headers=AUTH).status_code == 404
    assert client.get("/federation", params={"q": acc, "type": "id"}).json()["stellar_address"] == "amy*org1.dlnet.test"
    other = Keypair.random().public_key
    client.put("/admin/records/amy", json={"account_id": other}, headers=AUTH)
    assert client.get("/federation", params={"q": "AMY*org1.dlnet.test", "type": "name"}).json()["account_id"] == other
    listed = client.get("/admin/records", headers=AUTH).json()
    assert [r["name"] for r in listed] == ["amy"]


def test_health_and_metrics(client):
    assert client.get("/health").json() == {"ok": True, "database": "ok"}
    client.get("/federation", params={"q": "nobody*org1.dlnet.test", "type": "name"})
    text = client.get("/metrics").text
    assert 'dlnet_federation_lookups_total{result="not_found",type="name"} 1.0' in text


def test_oversize_body_is_413(client):
    r = client.put("/admin/records/alice", content=b"{" + b" " * 200_000 + b"}", headers=AUTH | {
        "content-type": "application/json"})
    assert r.status_code == 413


def test_rate_limit_on_public_endpoints(database):
    s = settings(database).model_copy(update={"rate_limit_per_minute": 60})
    with TestClient(create_app(s, admin_token=TOKEN)) as c:
        codes = [c.get("/federation", params={"q": "x*org1.dlnet.test", "type": "name"}).status_code
                 for _ in range(15)]
        assert codes[:10] == [404] * 10 and codes[-1] == 429
        assert c.get("/admin/records", headers=AUTH).status_code == 200  # admin API not limited


def test_migrations_are_idempotent_and_recorded(database):
    first = db.migrate(database.conninfo(), "federation")
    assert first == ["001_records.sql"]
    assert db.migrate(database.conninfo(), "federation") == []
    with psycopg.connect(database.conninfo()) as c:
        assert c.execute("SELECT version FROM federation.schema_migrations").fetchall() == [(1,)]
