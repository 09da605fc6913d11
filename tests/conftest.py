"""Shared test setup: the doubles' fixtures (tests/doubles/) and an isolated dlnet state directory."""

from __future__ import annotations

import pytest

pytest_plugins = ["doubles.fixtures"]


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLNET_STATE_DIR", str(tmp_path_factory.mktemp("state")))
