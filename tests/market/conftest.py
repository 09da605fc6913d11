"""Market tests: each test gets its own dlnet state directory. The real-network test uses the session
`deployment` fixture of the tests/network.py plugin (registered by tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.services.conftest import pg_cluster  # noqa: F401  (the real-network test's services' database)


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLNET_STATE_DIR", str(tmp_path_factory.mktemp("state")))
