"""`dlnet market ...` refuses bad input in one line, before any network is touched."""

from __future__ import annotations

import pytest
from stellar_sdk import Keypair

from dlnet.cli import main

SOMEONE = Keypair.random().public_key


@pytest.mark.parametrize(("args", "needle"), [
    (["demo", "--reward", "1.00000001"], "more than 7 decimals"),
    (["demo", "--stake-base", "-3"], "--stake-base: expected a positive amount"),
    (["demo", "--partners", "3", "--malicious", "3"], "--malicious 3: expected 0 to 2"),
    (["demo", "--baseline", "1.5"], "--baseline: expected an accuracy between 0 and 1"),
    (["demo", "--model", "Bad Name"], "model name 'Bad Name'"),
    (["fetch", "QmNotACid", "--out", "x"], "CID: CID 'QmNotACid' is not"),
    (["fetch", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", "--out", "x"], "expected a CIDv0"),
    (["partner", "submit", "--initiator", "GNOPE", "--name", "alice"], "--initiator: expected a Stellar account id"),
    (["validator", "review", "--initiator", SOMEONE, "--name", "v1", "--baseline", "2"], "--baseline"),
])
def test_bad_input_is_one_line_and_exit_1(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["market", *args, "-i", "inventories/does-not-exist"])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert needle in err and len(err.splitlines()) == 1, err


def test_a_checkpoint_that_is_not_one_is_refused(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    code = main(["market", "initiator", "publish", "--model", "m1", "--checkpoint", str(bad),
                 "-i", "inventories/does-not-exist"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "expected a safetensors file" in err, err
