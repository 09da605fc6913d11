"""The roles render configs the services accept: each role's template, with the sample inventory's values,
loads through dlnet.services.settings (the same code the container runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from stellar_sdk import Keypair

from dlnet.services import settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "inventories" / "sample" / "group_vars" / "all" / "services.yml"


ROLE = ROOT / "roles" / "dlnet_service"


def render(kind: str, extra: dict, tmp: Path) -> Path:
    """The one participant-service role's entry point `kind`: its defaults, the sample's values, its vars."""
    out = tmp / f"{kind}.yml"
    play = [{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "vars": {"ansible_python_interpreter": sys.executable},
        "vars_files": [str(ROLE / "defaults" / f"{kind}.yml"), str(SAMPLE), str(ROLE / "vars" / f"{kind}.yml")],
        "tasks": [{"name": "Render", "ansible.builtin.template": {
            "src": str(ROLE / "templates" / "etc" / "dlnet" / "service.yml.j2"),
            "dest": str(out), "mode": "0600"}}],
    }]
    pb = tmp / f"{kind}-play.yml"
    pb.write_text(yaml.safe_dump(play))
    ev = tmp / f"{kind}-extra.json"
    ev.write_text(json.dumps(extra))
    exe = Path(sys.executable).parent / "ansible-playbook"
    r = subprocess.run([str(exe), "-i", "localhost,", str(pb), "-e", f"@{ev}"], capture_output=True, text=True,
                       check=False, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return out


@pytest.mark.parametrize("kind", ["federation", "compliance", "bridge"])
def test_role_template_renders_a_valid_config(kind, tmp_path):
    issuer = Keypair.random().public_key
    extra = {
        "dlnet_network_passphrase": "dlnet sample ; 2026", "dlnet_data_root": "/var/lib/dlnet/sample",
        "dlnet_container_prefix": "dlnet-sample", "dlnet_image_tag": "0.1.0", "dlnet_secrets_dir": "/nonexistent",
        "inventory_hostname": "svc1",
        "dlnet_federation_accounts": [issuer],
        "dlnet_federation_currencies": [{"code": "DLC", "issuer": issuer, "regulated": True}],
        "dlnet_compliance_dlc": {"issuer": issuer, "max_amount": "500"},
        "vault_dlnet_compliance_signing_seed": "unused", "vault_dlnet_compliance_issuer_seed": "unused",
        "vault_dlnet_bridge_rewards_seed": "unused",
    }
    path = render(kind, extra, tmp_path)
    text = path.read_text()
    assert "unused" not in text  # seeds go to secret files, never into the config
    loaded = settings.load(kind, path)
    assert loaded.network_passphrase == "dlnet sample ; 2026"
    assert loaded.database.password_file == Path("/etc/dlnet/secrets/database_password")
    assert "password=" not in loaded.database.dsn
    if kind == "bridge":
        assert [a.name for a in loaded.accounts] == ["rewards"]  # type: ignore[attr-defined]
    if kind == "compliance":
        assert loaded.dlc.max_amount == "500"  # type: ignore[attr-defined]
