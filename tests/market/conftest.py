"""Market tests: each test its own dlnet state directory; the real-network test reuses the session
`deployment` fixture of tests/deploy (re-exported here so pytest finds it for tests/market)."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import deployment  # noqa: F401 - re-exported session fixture


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLNET_STATE_DIR", str(tmp_path_factory.mktemp("state")))
