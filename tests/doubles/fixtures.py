"""Pytest fixtures for the doubles. Registered by tests/conftest.py (`pytest_plugins = ["tests.doubles.fixtures"]`).

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

from tests.doubles.core import CoreNetwork
from tests.doubles.horizon import HorizonDouble

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


@pytest.fixture
def core_factory() -> Iterator[Callable[..., CoreNetwork]]:
    """Start stellar-core admin doubles: core_factory(n=3, protocol_version=0, ...) -> started CoreNetwork."""
    started: list[CoreNetwork] = []

    def make(n: int = 3, **kwargs: Any) -> CoreNetwork:
        kwargs.setdefault("passphrase", PASSPHRASE)
        net = CoreNetwork(n, **kwargs).start()
        started.append(net)
        return net

    yield make
    for net in started:
        net.stop()


@pytest.fixture
def core_network(core_factory: Callable[..., CoreNetwork]) -> CoreNetwork:
    """Three validators v1..v3 at genesis (protocol 0, max tx set size 100) closing ledgers every 20 ms."""
    return core_factory()
