"""Pytest fixtures for the doubles. Register with `pytest_plugins = ["doubles.fixtures"]` (tests/conftest.py).

Stable interface (issue 5 reuses it):
- `horizon_double` -> HorizonEndpoint(url, passphrase, double): a Horizon + ledger double on 127.0.0.1 with
  an ephemeral port, already upgraded (protocol 19, max tx set size 100); `double.ledger` is the state,
  `double.inject(...)` injects faults. The root account's seed is sha256(passphrase).
- `horizon_factory(**kwargs)` -> the same with other settings (protocol_version=0, max_tx_set_size=...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest

from doubles.horizon import HorizonDouble

PASSPHRASE = "dlnet test network ; 2026"


class HorizonEndpoint(NamedTuple):
    url: str
    passphrase: str
    double: HorizonDouble


@pytest.fixture
def horizon_factory() -> Iterator[Callable[..., HorizonEndpoint]]:
    started: list[HorizonDouble] = []

    def make(passphrase: str = PASSPHRASE, **kwargs: Any) -> HorizonEndpoint:
        d = HorizonDouble(passphrase, **kwargs)
        d.start()
        started.append(d)
        return HorizonEndpoint(d.url, passphrase, d)

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def horizon_double(horizon_factory: Callable[..., HorizonEndpoint]) -> HorizonEndpoint:
    return horizon_factory()
