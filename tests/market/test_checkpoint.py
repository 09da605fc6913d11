"""Checkpoints: safetensors round trip, kubo-exact CIDv0, MEMO_HASH mapping, tamper detection."""

from __future__ import annotations

import numpy as np
import pytest

from dlnet.chain import InputError
from dlnet.market import checkpoint as ck
from dlnet.market import trainer as tr

# `ipfs add -n -Q --cid-version=0` of kubo 0.39 on these bytes
KUBO = {
    b"hello world\n": "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
    b"": "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
    bytes(i * 7 % 251 for i in range(600000)): "QmWrVhTJ3Z9o4pXpwzbtu4MTMWFG5rE9ymuKhMuXihfLDL",  # 3 chunks
}


@pytest.mark.parametrize("data", list(KUBO), ids=["hello", "empty", "three-chunks"])
def test_cid_is_the_one_kubo_gives(data: bytes) -> None:
    assert ck.cid_of(data) == KUBO[data]


def test_cid_memo_hash_round_trip() -> None:
    cid = ck.cid_of(tr.initial())
    memo = ck.cid_to_memo(cid)
    assert len(memo) == 32
    assert ck.memo_to_cid(memo) == cid


@pytest.mark.parametrize("bad", ["not-a-cid", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
                                 "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5", "Qm0OIl"])
def test_a_cid_that_is_not_one_is_refused_in_one_line(bad: str) -> None:
    with pytest.raises(InputError) as exc:
        ck.check_cid(bad, "--cid")
    assert "\n" not in str(exc.value) and "CIDv0" in str(exc.value)


def test_tampered_bytes_are_refused_with_the_reason() -> None:
    data = tr.initial()
    cid = ck.cid_of(data)
    ck.verify(data, cid)
    tampered = bytearray(data)
    tampered[-3] ^= 0x01
    with pytest.raises(ck.CheckpointError, match="tampered"):
        ck.verify(bytes(tampered), cid)


def test_safetensors_round_trip_and_metadata() -> None:
    params = {"W": np.arange(640, dtype=np.float32).reshape(64, 10), "b": np.ones(10, np.float32)}
    data = ck.dumps(params, {"round": 3, "samples": 42})
    back, meta = ck.loads(data, tr.SHAPES)
    assert meta == {"round": "3", "samples": "42"}
    np.testing.assert_array_equal(back["W"], params["W"])
    assert ck.dumps(params, {"round": 3, "samples": 42}) == data  # deterministic: same bytes, same CID


def test_wrong_shapes_nan_and_garbage_are_refused() -> None:
    wrong = ck.dumps({"W": np.zeros((64, 9), np.float32), "b": np.zeros(10, np.float32)})
    with pytest.raises(ck.CheckpointError, match="expected the model's"):
        ck.loads(wrong, tr.SHAPES)
    nan = ck.dumps({"W": np.full((64, 10), np.nan, np.float32), "b": np.zeros(10, np.float32)})
    with pytest.raises(ck.CheckpointError, match="NaN"):
        ck.loads(nan, tr.SHAPES)
    with pytest.raises(ck.CheckpointError, match="safetensors"):
        ck.loads(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops", tr.SHAPES)
