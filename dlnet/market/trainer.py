"""Training is pluggable: a trainer is a function (checkpoint bytes, local data) -> new checkpoint bytes.

The reference trainer is a softmax (multinomial logistic regression) classifier in numpy on
scikit-learn's digits data set (8x8 images, 10 classes, 1,797 samples, shipped with scikit-learn: no
download). `split()` gives every party its own data: a held-out test set, one benchmark per validator,
and one private shard per partner with a different class mix (non-IID, as fleets of cars see different
roads). A partner's data never leaves it; only the learned parameters travel. `malicious_trainer`
trains on random labels (a cheating partner). Everything runs on CPU in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dlnet.market import checkpoint as ck

FEATURES, CLASSES = 64, 10
SHAPES: dict[str, tuple[int, ...]] = {"W": (FEATURES, CLASSES), "b": (CLASSES,)}


@dataclass(frozen=True)
class LocalData:
    """One party's private samples (never uploaded)."""

    X: np.ndarray
    y: np.ndarray

    @property
    def samples(self) -> int:
        return len(self.y)


Trainer = Callable[[bytes, LocalData], bytes]


@dataclass(frozen=True)
class Split:
    test: LocalData  # held out: the initiator reports fused accuracy on it
    benchmarks: list[LocalData]  # one per validator
    shards: list[LocalData]  # one per partner


def digits() -> LocalData:
    from sklearn.datasets import load_digits

    d = load_digits()
    return LocalData(np.asarray(d.data, dtype=np.float32) / 16.0, np.asarray(d.target, dtype=np.int64))


def split(partners: int, validators: int, *, seed: int = 7, skew: float = 0.8, test_fraction: float = 0.2,
          benchmark_fraction: float = 0.1) -> Split:
    """Deterministic split: test set, validator benchmarks, then partner shards where partner i draws a
    fraction `skew` of its samples from its own few classes and the rest from all classes."""
    if partners < 1 or validators < 1:
        raise ck.InputError(f"split: expected at least 1 partner and 1 validator, got {partners} and {validators}")
    data = digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(data.samples)
    n_test = int(data.samples * test_fraction)
    n_bench = int(data.samples * benchmark_fraction)
    test = order[:n_test]
    benches = [order[n_test + i * n_bench : n_test + (i + 1) * n_bench] for i in range(validators)]
    pool = order[n_test + validators * n_bench :]
    per = len(pool) // partners
    if per < 20:
        raise ck.InputError(f"split: {partners} partners leave {per} samples each — expected at least 20; use fewer")
    # partner i's favourite classes: a window of 10/partners (at least 2) classes
    width = max(2, CLASSES // partners)
    by_class = {c: list(pool[data.y[pool] == c]) for c in range(CLASSES)}
    rest = list(rng.permutation(pool))
    taken: set[int] = set()
    shards = []
    for i in range(partners):
        fav = [(i * width + k) % CLASSES for k in range(width)]
        want_fav = int(per * skew)
        idx: list[int] = []
        for j in range(want_fav):
            c = fav[j % width]
            while by_class[c] and by_class[c][-1] in taken:
                by_class[c].pop()
            if by_class[c]:
                v = by_class[c].pop()
                taken.add(v)
                idx.append(v)
        while len(idx) < per and rest:
            v = rest.pop()
            if v not in taken:
                taken.add(v)
                idx.append(v)
        a = np.asarray(idx, dtype=np.int64)
        shards.append(LocalData(data.X[a], data.y[a]))
    return Split(LocalData(data.X[test], data.y[test]), [LocalData(data.X[b], data.y[b]) for b in benches], shards)


# ---- the model ---------------------------------------------------------------------------------------
def initial(model: str = "digits-softmax", seed: int = 0) -> bytes:
    """The initiator's first checkpoint: small random weights (about chance accuracy)."""
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(0, 0.01, SHAPES["W"]).astype(np.float32), "b": np.zeros(CLASSES, np.float32)}
    return ck.dumps(params, {"model": model, "round": "0", "samples": "0", "format": "dlnet-softmax-v1"})


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict(params: ck.Params, X: np.ndarray) -> np.ndarray:
    return np.argmax(X @ params["W"] + params["b"], axis=1)


def accuracy(checkpoint: bytes, data: LocalData) -> float:
    params, _ = ck.loads(checkpoint, SHAPES)
    return float(np.mean(predict(params, data.X) == data.y))


def _sgd(params: ck.Params, X: np.ndarray, y: np.ndarray, epochs: int, lr: float, l2: float) -> ck.Params:
    W, b = params["W"].astype(np.float64), params["b"].astype(np.float64)
    onehot = np.eye(CLASSES)[y]
    for _ in range(epochs):
        p = _softmax(X @ W + b)
        g = (p - onehot) / len(y)
        W -= lr * (X.T @ g + l2 * W)
        b -= lr * g.sum(axis=0)
    return {"W": W.astype(np.float32), "b": b.astype(np.float32)}


def make_trainer(epochs: int = 60, lr: float = 0.5, l2: float = 1e-3) -> Trainer:
    """Full-batch gradient descent on the local data, starting from the downloaded checkpoint."""

    def train(checkpoint: bytes, data: LocalData) -> bytes:
        params, meta = ck.loads(checkpoint, SHAPES)
        new = _sgd(params, data.X, data.y, epochs, lr, l2)
        return ck.dumps(new, {**meta, "samples": str(data.samples)})

    return train


def malicious_trainer(epochs: int = 200, lr: float = 3.0, seed: int = 13) -> Trainer:
    """A cheating partner: trains on random labels — a random relabelling of the classes where no class
    keeps its own label — and claims its sample count all the same."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(CLASSES)
    relabel = np.empty(CLASSES, np.int64)
    relabel[order] = np.roll(order, 1)  # each class takes the next one's label in a random cycle

    def train(checkpoint: bytes, data: LocalData) -> bytes:
        params, meta = ck.loads(checkpoint, SHAPES)
        new = _sgd(params, data.X, relabel[data.y], epochs, lr, 0.0)
        return ck.dumps(new, {**meta, "samples": str(data.samples)})

    return train


reference_trainer = make_trainer()
