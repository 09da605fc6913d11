"""`dlnet services migrate` / `dlnet serve` and the settings loader: clear one-line errors, no tracebacks."""

from __future__ import annotations

import yaml
from stellar_sdk import Keypair

from dlnet.cli import main


def test_migrate_applies_then_reports_up_to_date(database, tmp_path, capsys):
    cfg = tmp_path / "bridge.yml"
    seed = tmp_path / "seed"
    seed.write_text(Keypair.random().secret + "\n")
    cfg.write_text(yaml.safe_dump({"network_passphrase": "x", "horizon_url": "http://127.0.0.1:9",
                                   "database": database.model_dump(mode="json"),
                                   "accounts": [{"name": "a", "seed_file": str(seed)}],
                                   "webhook_secret_file": str(seed)}))
    assert main(["services", "migrate", "bridge", "--config", str(cfg)]) == 0
    assert "applied 001_bridge.sql" in capsys.readouterr().out
    assert main(["services", "migrate", "bridge", "--config", str(cfg)]) == 0
    assert "schema up to date" in capsys.readouterr().out


def test_bad_configs_are_one_clear_line(tmp_path, capsys):
    cfg = tmp_path / "f.yml"
    cfg.write_text(yaml.safe_dump({"network_passphrase": "x", "home_domain": "d", "public_url": "u",
                                   "database": {"dsn": "host=h password=oops"}, "accounts": ["GNOPE"],
                                   "surprise": 1}))
    assert main(["serve", "federation", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "database.dsn: the dsn must not carry a password" in err
    assert "accounts.0: expected a Stellar account id" in err
    assert "surprise: Extra inputs are not permitted" in err
    assert "oops" not in err and "Traceback" not in err
    assert main(["serve", "federation", "--config", str(tmp_path / "missing.yml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["services", "migrate", "nosuch", "--config", str(cfg)]) == 1
    assert "unknown service 'nosuch'" in capsys.readouterr().err


def test_unreadable_secret_names_the_file_not_the_content(database, tmp_path, capsys):
    cfg = tmp_path / "f.yml"
    cfg.write_text(yaml.safe_dump({"network_passphrase": "x", "home_domain": "d", "public_url": "u",
                                   "database": database.model_dump(mode="json"),
                                   "admin_token_file": str(tmp_path / "nope")}))
    assert main(["serve", "federation", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "admin token: cannot read" in err and "nope" in err
