"""The reference trainer, the malicious variant and early fusion, on scikit-learn's digits (no network)."""

from __future__ import annotations

import numpy as np
import pytest

from dlnet.chain import InputError
from dlnet.market import checkpoint as ck
from dlnet.market import fusion
from dlnet.market import trainer as tr


@pytest.fixture(scope="module")
def split() -> tr.Split:
    return tr.split(4, 2, seed=7)


def test_partners_hold_different_class_mixes(split: tr.Split) -> None:
    tops = [set(np.argsort(np.bincount(s.y, minlength=10))[-2:]) for s in split.shards]
    assert len({frozenset(t) for t in tops}) == len(tops)
    assert sum(s.samples for s in split.shards) + split.test.samples + sum(b.samples for b in split.benchmarks) <= 1797


def test_training_improves_accuracy(split: tr.Split) -> None:
    start = tr.initial()
    trained = tr.reference_trainer(start, split.shards[0])
    assert tr.accuracy(trained, split.test) > tr.accuracy(start, split.test) + 0.3
    assert ck.metadata(trained)["samples"] == str(split.shards[0].samples)


def test_malicious_update_falls_below_the_baseline(split: tr.Split) -> None:
    good = tr.reference_trainer(tr.initial(), split.shards[0])
    bad = tr.malicious_trainer()(good, split.shards[3])
    assert tr.accuracy(bad, split.benchmarks[0]) < 0.3 <= tr.accuracy(good, split.benchmarks[0])


def test_fusion_beats_every_honest_partner_alone(split: tr.Split) -> None:
    honest = split.shards[:3]
    current = tr.initial()
    for _ in range(3):
        updates = [(tr.reference_trainer(current, s), s.samples) for s in honest]
        current = fusion.fuse(updates, tr.SHAPES)
    alone = []
    for s in honest:
        c = tr.initial()
        for _ in range(3):
            c = tr.reference_trainer(c, s)
        alone.append(tr.accuracy(c, split.test))
    assert tr.accuracy(current, split.test) > max(alone)


def test_fusion_weights_by_sample_counts() -> None:
    a = ck.dumps({"W": np.zeros((64, 10), np.float32), "b": np.zeros(10, np.float32)})
    b = ck.dumps({"W": np.ones((64, 10), np.float32), "b": np.full(10, 4.0, np.float32)})
    fused, meta = ck.loads(fusion.fuse([(a, 1), (b, 3)], tr.SHAPES), tr.SHAPES)
    assert np.allclose(fused["W"], 0.75) and np.allclose(fused["b"], 3.0)
    assert meta["samples"] == "4"
    with pytest.raises(InputError, match="no accepted updates"):
        fusion.fuse([], tr.SHAPES)
