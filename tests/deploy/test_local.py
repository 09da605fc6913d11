"""`make up` on one machine: what runs, where it listens, the private swarm, Prometheus, re-runs.

Tests run in file order on one deployment; the down/up test comes last.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import testinfra
import yaml

from tests.conftest import ROOT
from tests.network import ANSIBLE_PLAYBOOK, ENV, STATE, Deployment, api, containers, recap, wait_for

HOSTS = yaml.safe_load((ROOT / "inventories" / "local" / "hosts.yml").read_text())["all"]["children"]
IPFS = HOSTS["ipfs_bootstrap"]["hosts"]
API_PORTS = [h["ipfs_bootstrap_api_port"] for h in IPFS.values()]
VALIDATORS = set(HOSTS["stellar_core"]["hosts"])


@pytest.fixture(scope="module")
def host():  # type: ignore[no-untyped-def]
    return testinfra.get_host("local://")


def test_every_container_runs_healthy(deployment: Deployment) -> None:
    expected = {f"dlnet-{ENV}-postgres-pg1", f"dlnet-{ENV}-prometheus-prom1", f"dlnet-{ENV}-federation-svc1"}
    expected |= {f"dlnet-{ENV}-ipfs-{n}" for n in IPFS}
    if deployment.stellar:
        expected |= {f"dlnet-{ENV}-core-v{i}" for i in (1, 2, 3)} | {f"dlnet-{ENV}-horizon-horizon1"}
    healthy = wait_for(lambda: all("(healthy)" in s for s in containers().values()) and containers(), timeout=90)
    assert healthy, containers()
    assert expected <= set(containers())


def test_containers_run_as_non_root(deployment: Deployment) -> None:
    for name in containers():
        user = subprocess.run(
            ["docker", "inspect", "-f", "{{.Config.User}}", name], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert user and not user.startswith("0"), f"{name} runs as {user or 'root'}"


@pytest.mark.parametrize(
    "where,public",
    [(f"{h['ipfs_bootstrap_swarm_port']}", True) for h in IPFS.values()]
    + [(f"{h['ipfs_bootstrap_api_port']}", False) for h in IPFS.values()]
    + [(f"{h['ipfs_bootstrap_gateway_port']}", False) for h in IPFS.values()]
    + [("9090", False), ("15432", False), ("8001", False)],
)
def test_ports_listen_only_where_they_should(deployment: Deployment, host, where: str, public: bool) -> None:  # type: ignore[no-untyped-def]
    everywhere = host.socket(f"tcp://0.0.0.0:{where}")
    if public:
        assert wait_for(lambda: everywhere.is_listening, timeout=30)
    else:
        # Administrative ports (kubo RPC, gateway, Prometheus, PostgreSQL) listen on loopback only.
        assert wait_for(lambda: host.socket(f"tcp://127.0.0.1:{where}").is_listening, timeout=30)
        assert not everywhere.is_listening and not host.socket(f"tcp://:::{where}").is_listening


def test_secrets_are_private_files(deployment: Deployment, host) -> None:  # type: ignore[no-untyped-def]
    secrets = STATE / ENV / "secrets"
    assert host.file(str(secrets)).mode == 0o700
    for f in secrets.iterdir():
        if f.suffix != ".pub":
            assert host.file(str(f)).mode == 0o600, f
    for n in IPFS:
        key = host.file(f"/var/lib/dlnet/{ENV}/ipfs/{n}/swarm.key")
        assert key.mode == 0o600 and key.uid == 951


def test_no_secret_in_the_deployment_output(deployment: Deployment) -> None:
    secrets = STATE / ENV / "secrets"
    values = [f.read_text().strip().splitlines()[-1] for f in secrets.iterdir() if f.suffix != ".pub"]
    assert values
    logs = " ".join(run.stdout + run.stderr for run in deployment.runs)
    docker_logs = " ".join(
        subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False).stdout
        for name in containers()
    )
    for value in values:
        assert value not in logs and value not in docker_logs


def _peer_ids() -> dict[int, str]:
    return {port: api(port, "id").json()["ID"] for port in API_PORTS}


def test_swarm_peers_only_among_its_own_nodes(deployment: Deployment) -> None:
    ids = _peer_ids()
    for port in API_PORTS:
        peers = wait_for(lambda p=port: [x["Peer"] for x in api(p, "swarm/peers").json().get("Peers") or []])
        others = set(ids.values()) - {ids[port]}
        assert peers and set(peers) <= others, f"node on {port} peers with {peers}, expected only {others}"


def test_file_added_on_one_node_is_fetched_from_another(deployment: Deployment) -> None:
    payload = os.urandom(4096) + b"model checkpoint"
    added = httpx.post(
        f"http://127.0.0.1:{API_PORTS[0]}/api/v0/add",
        params={"cid-version": 0, "pin": "true"},
        files={"file": ("ckpt.bin", payload)},
        timeout=30,
    ).json()
    assert added["Hash"].startswith("Qm")  # CIDv0, the form that fits a MEMO_HASH
    # Bitswap may still be opening its session right after start: three bounded attempts.
    errors = []
    for _ in range(3):
        got = api(API_PORTS[1], "cat", arg=added["Hash"], timeout="20s")
        if got.status_code == 200:
            break
        errors.append(got.text.strip())
    assert got.status_code == 200, errors
    assert got.content == payload


def _every_node_has_a_peer() -> bool:
    try:
        return all(api(p, "swarm/peers").json().get("Peers") for p in API_PORTS)
    except httpx.HTTPError:  # still starting
        return False


def test_files_are_fetched_after_the_nodes_restart(deployment: Deployment) -> None:
    # kubo 0.39's bitswap ignores peers that connected while it started (images/kubo/entrypoint.sh);
    # without the re-dial about one restart in four left the nodes unable to exchange blocks, so ten
    # restarts catch a regression almost surely.
    names = [f"dlnet-{ENV}-ipfs-{n}" for n in IPFS]
    for attempt in range(10):
        subprocess.run(["docker", "restart", *names], check=True, capture_output=True)
        assert wait_for(_every_node_has_a_peer, timeout=60)
        payload = os.urandom(2048) + b"checkpoint %d" % attempt
        added = httpx.post(
            f"http://127.0.0.1:{API_PORTS[0]}/api/v0/add",
            params={"cid-version": 0},
            files={"file": ("ckpt.bin", payload)},
            timeout=30,
        ).json()
        got = api(API_PORTS[1], "cat", arg=added["Hash"], timeout="30s")
        assert got.status_code == 200 and got.content == payload, f"restart {attempt + 1}: {got.text[:200]}"


def _outside_node(tmp: Path, key: str | None, swarm: int, rpc: int) -> subprocess.Popen[bytes]:
    ipfs = str(ROOT / "build" / "bin" / "ipfs")
    env = {**os.environ, "IPFS_PATH": str(tmp), "LIBP2P_FORCE_PNET": "1"}
    subprocess.run([ipfs, "init", "--profile=autoconf-off", "--empty-repo"], env=env, check=True, capture_output=True)
    for k, v in (
        ("Addresses.API", f'"/ip4/127.0.0.1/tcp/{rpc}"'),
        ("Addresses.Gateway", '""'),
        ("Addresses.Swarm", f'["/ip4/127.0.0.1/tcp/{swarm}"]'),
        ("Bootstrap", "[]"),
        ("Discovery.MDNS.Enabled", "false"),
        ("Swarm.Transports.Network.QUIC", "false"),
        ("Swarm.Transports.Network.WebTransport", "false"),
        ("Swarm.Transports.Network.WebRTCDirect", "false"),
    ):
        subprocess.run([ipfs, "config", "--json", k, v], env=env, check=True, capture_output=True)
    if key is not None:
        (tmp / "swarm.key").write_text(key)
    return subprocess.Popen(
        [ipfs, "daemon", "--migrate=false"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _connect(rpc: int, target: str) -> bool:
    proc = wait_for(lambda: _rpc_up(rpc), timeout=30)
    assert proc, "outside node's RPC did not come up"
    r = api(rpc, "swarm/connect", arg=target, timeout="10s")
    return r.status_code == 200


def _rpc_up(rpc: int) -> bool:
    try:
        return api(rpc, "id").status_code == 200
    except httpx.HTTPError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.parametrize("with_right_key", [False, True], ids=["foreign-key", "swarm-key"])
def test_only_nodes_with_the_swarm_key_can_connect(
    deployment: Deployment, tmp_path: Path, with_right_key: bool
) -> None:
    from dlnet.keys import swarm_key_text

    target_port = next(iter(IPFS.values()))["ipfs_bootstrap_swarm_port"]
    target = f"/ip4/127.0.0.1/tcp/{target_port}/p2p/{_peer_ids()[API_PORTS[0]]}"
    key = (STATE / ENV / "secrets" / "swarm.key").read_text() if with_right_key else swarm_key_text()
    swarm, rpc = (14101, 15101) if with_right_key else (14102, 15102)
    node = _outside_node(tmp_path, key, swarm, rpc)
    try:
        # The control case proves the probe can succeed, so the refusal means the key, not the probe.
        assert _connect(rpc, target) is with_right_key
    finally:
        _stop(node)


def test_node_without_any_key_refuses_to_start(deployment: Deployment, tmp_path: Path) -> None:
    node = _outside_node(tmp_path, None, 14103, 15103)
    try:
        code = node.wait(timeout=60)
    except subprocess.TimeoutExpired:
        _stop(node)
        pytest.fail("a node without swarm.key started although LIBP2P_FORCE_PNET=1")
    output = (node.stdout.read() if node.stdout else b"").decode()
    assert code != 0 and "private network" in output.lower()


def test_prometheus_scrapes_every_target_up(deployment: Deployment) -> None:
    def targets() -> list[dict]:
        return httpx.get("http://127.0.0.1:9090/api/v1/targets", timeout=10).json()["data"]["activeTargets"]

    expected = {("prometheus", "prom1"), ("dlnet_exporter", "prom1"), ("federation", "svc1")}
    expected |= {("ipfs", n) for n in IPFS}
    if deployment.stellar:
        expected |= {("stellar_core", v) for v in VALIDATORS}
    up = wait_for(lambda: all(t["health"] == "up" for t in targets()) and targets(), timeout=90, every=3)
    assert up, [(t["labels"], t["health"], t.get("lastError")) for t in targets()]
    seen = {(t["labels"]["component"], t["labels"]["instance_name"]) for t in targets()}
    assert expected <= seen
    assert all(t["labels"]["environment"] == ENV for t in targets())


def test_federation_serves_stellar_toml_and_sep2(deployment: Deployment) -> None:
    base = "http://127.0.0.1:8001"
    toml = tomllib.loads(httpx.get(f"{base}/.well-known/stellar.toml", timeout=10).text)
    passphrase = yaml.safe_load((ROOT / "inventories/local/group_vars/all/network.yml").read_text())
    assert toml["NETWORK_PASSPHRASE"] == passphrase["dlnet_network_passphrase"]
    assert toml["FEDERATION_SERVER"].startswith("http://127.0.0.1:8001")
    # SEP-2: an unknown name is "not found", not an error.
    got = httpx.get(f"{base}/federation", params={"q": "nobody*org1.dlnet.local", "type": "name"}, timeout=10)
    assert got.status_code == 404, got.text


def _query(expr: str) -> list[dict]:
    return httpx.get("http://127.0.0.1:9090/api/v1/query", params={"query": expr}, timeout=10).json()["data"]["result"]


def test_exporters_report_every_validator(deployment: Deployment) -> None:
    if not deployment.stellar:
        pytest.skip("stellar-core is switched off in this deployment")

    def validators(expr: str) -> set[str]:
        return {r["metric"].get("validator", "") for r in _query(expr)}

    # dlnet's exporter and SDF's, both as deployed by `make up`, seen through Prometheus with the
    # labels the dashboards and alerts filter on.
    assert wait_for(lambda: validators(f'dlnet_validator_synced{{environment="{ENV}"}} == 1') >= VALIDATORS, 90, 3)
    assert wait_for(lambda: validators(f'dlnet_ledger_sequence{{environment="{ENV}"}} > 1') >= VALIDATORS, 60, 3)
    assert wait_for(lambda: validators(f'stellar_core_ledger_num{{environment="{ENV}"}} > 1') >= VALIDATORS, 90, 3)
    orgs = {r["metric"].get("organisation") for r in _query('stellar_core_ledger_num')}
    assert orgs == {"org1"}


def test_second_run_changes_nothing(deployment: Deployment) -> None:
    second = deployment.playbook("site.yml", log="site-2.log")
    assert second.returncode == 0, second.stdout[-3000:]
    changed = {h: r["changed"] for h, r in recap(second.stdout).items() if r["changed"]}
    assert recap(second.stdout) and not changed, f"second run changed {changed} (build/test-logs/site-2.log)"


def test_check_mode_on_a_deployed_network_predicts_no_change(deployment: Deployment) -> None:
    dry = deployment.playbook("site.yml", "--check", "--diff", log="site-check.log")
    assert dry.returncode == 0, dry.stdout[-3000:]
    changed = {h: r["changed"] for h, r in recap(dry.stdout).items() if r["changed"]}
    assert recap(dry.stdout) and not changed, f"--check predicts changes {changed} (build/test-logs/site-check.log)"


def test_preflight_refuses_before_touching_anything(deployment: Deployment, tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventories" / "local", inv)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    hosts["all"]["children"]["stellar_core"]["hosts"]["v2"]["stellar_core_peer_port"] = 11625
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    env = {**os.environ, "DLNET_STATE_DIR": str(tmp_path / "state"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inv), str(ROOT / "deploy" / "site.yml"), "-e", "dlnet_env=refused"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode != 0
    assert "port 11625 on 127.0.0.1 is used 2 times" in proc.stdout
    assert not containers("refused", all_=True)
    assert not Path("/var/lib/dlnet/refused").exists() and not (tmp_path / "state").exists()


def test_down_then_up_resumes_the_same_network(deployment: Deployment) -> None:
    ids_before = _peer_ids()
    psql = ["docker", "exec", f"dlnet-{ENV}-postgres-pg1", "psql", "-h", "/run/postgresql", "-p", "15432", "-tAc"]
    subprocess.run(
        [*psql, "CREATE TABLE IF NOT EXISTS survives (x int); INSERT INTO survives VALUES (42)"],
        check=True,
        capture_output=True,
    )
    down = deployment.playbook("stop-network.yml")
    assert down.returncode == 0, down.stdout[-2000:]
    assert containers(all_=True) and not containers()  # all still there, none running
    up = deployment.playbook("site.yml", log="site-3.log")
    assert up.returncode == 0, up.stdout[-3000:]
    assert _peer_ids() == ids_before  # same identities: same repositories, same keys
    rows = subprocess.run([*psql, "SELECT x FROM survives"], check=True, capture_output=True, text=True).stdout
    assert rows.split() == ["42"]
    time.sleep(1)
    again = deployment.playbook("site.yml", log="site-4.log")
    assert not {h: r["changed"] for h, r in recap(again.stdout).items() if r["changed"]}
